"""No database needed: public names, URLs, exceptions, descriptor, lookups, lock."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

import sqlalchemy_objects
from sqlalchemy_objects import (
    ConfigurationError,
    Database,
    FieldError,
    Manager,
    ObjectDoesNotExist,
    ObjectsError,
    QuerySet,
)
from sqlalchemy_objects._dialects import backend_named, normalise_url
from sqlalchemy_objects.lookups import creation_values
from sqlalchemy_objects.session import SessionLock
from tests.models import Article, Base, User


def test_public_names_are_pinned() -> None:
    """__all__ is the public API; changing it is a deliberate act."""
    assert sqlalchemy_objects.__all__ == [
        "Avg",
        "ConfigurationError",
        "Count",
        "Database",
        "Exists",
        "F",
        "FieldError",
        "Manager",
        "ManagerMixin",
        "Max",
        "Min",
        "MultipleObjectsReturned",
        "NotSupportedError",
        "ObjectDoesNotExist",
        "ObjectsError",
        "OuterRef",
        "Page",
        "Prefetch",
        "Q",
        "QuerySet",
        "RawQuerySet",
        "Subquery",
        "Sum",
        "TransactionManagementError",
        "ValuesQuerySet",
        "__version__",
        "current_session",
    ]
    for name in sqlalchemy_objects.__all__:
        assert hasattr(sqlalchemy_objects, name)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgres://u@h/db", "postgresql+asyncpg"),
        ("mysql://u@h/db", "mysql+asyncmy"),
        ("mariadb://u@h/db", "mysql+asyncmy"),
        ("sqlite:///x.db", "sqlite+aiosqlite"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg"),
    ],
)
def test_urls_get_an_async_driver(raw: str, expected: str) -> None:
    """A URL that names only the backend gets its async driver."""
    assert normalise_url(raw).drivername == expected


def test_bad_urls_raise_configuration_error() -> None:
    """Unparseable or unsupported URLs say what is accepted."""
    with pytest.raises(ConfigurationError, match="Cannot parse database URL"):
        normalise_url("not a url")
    with pytest.raises(
        ConfigurationError, match="Unsupported database URL scheme 'oracle'"
    ):
        normalise_url("oracle://u@h/db")
    with pytest.raises(ConfigurationError, match="sqlite_begin must be"):
        Database("sqlite:///x.db", sqlite_begin="LAZY")  # type: ignore[arg-type]


def test_database_url_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Database() reads DATABASE_URL, and falls back to an embedded SQLite file."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://someone@db.invalid/app")
    assert (
        Database().url.render_as_string()
        == "postgresql+asyncpg://someone@db.invalid/app"
    )
    monkeypatch.delenv("DATABASE_URL")
    db = Database()
    assert db.url.drivername == "sqlite+aiosqlite"
    assert db.url.database == "sqlalchemy_objects.sqlite3"
    assert "sqlalchemy_objects.sqlite3" in repr(db)


def test_bind_refuses_a_class_without_metadata() -> None:
    """bind() takes a declarative base (or a model), and says so otherwise."""
    with pytest.raises(ConfigurationError, match="has no metadata"):
        Database("sqlite:///x.db").bind(int)


def test_exceptions_form_one_tree_and_pickle() -> None:
    """Every error we raise is an ObjectsError; per-model classes pickle by name."""
    assert issubclass(User.DoesNotExist, ObjectDoesNotExist)
    assert issubclass(User.DoesNotExist, LookupError)
    assert issubclass(FieldError, ObjectsError)
    assert issubclass(ConfigurationError, ObjectsError)
    assert User.DoesNotExist.__module__ == "tests.models"
    err = User.DoesNotExist("User matching id=1 does not exist.")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is User.DoesNotExist
    assert str(again) == "User matching id=1 does not exist."


def test_base_models_exceptions_are_parents_of_subclasses() -> None:
    """`except Base.DoesNotExist` catches every model's; siblings stay apart."""
    assert issubclass(User.DoesNotExist, Base.DoesNotExist)
    assert issubclass(Article.MultipleObjectsReturned, Base.MultipleObjectsReturned)
    assert not issubclass(User.MultipleObjectsReturned, Article.MultipleObjectsReturned)


def test_manager_is_bound_to_the_class_it_is_read_from() -> None:
    """User.objects is a Manager of User, cached; a custom manager keeps its class."""
    assert isinstance(User.objects, Manager)
    assert User.objects.model is User
    assert User.objects is User.objects
    assert type(Article.published_objects).__name__ == "PublishedManager"
    assert Article.published_objects.model is Article
    assert repr(User.objects) == "<Manager of User>"


def test_manager_of_an_unmapped_base_says_so() -> None:
    """The declarative base itself has no table: a clear error, not a SQLAlchemy one."""
    with pytest.raises(ConfigurationError, match="Base is not a mapped class"):
        Base.objects.filter(id=1)


def test_a_detached_manager_says_how_to_use_it() -> None:
    """A manager instance not declared on a model cannot query."""
    with pytest.raises(ConfigurationError, match="not attached to a model"):
        Manager[User]().get_queryset()


def test_creation_values_keep_only_exact_lookups() -> None:
    """`f` and `f__exact` create; `pk` names the primary key; other lookups only filter."""
    values = creation_values(
        User, {"username__exact": "a", "age__gte": 3, "pk": 7, "email": "e"}
    )
    assert values == {"username": "a", "id": 7, "email": "e"}


def test_unsupported_lookup_shapes_raise_field_error() -> None:
    """Chained operators, operators on to-many relationships and bad __in values are refused."""
    with pytest.raises(FieldError, match=r"Unsupported lookup 'gte__lt'"):
        User.objects.filter(age__gte__lt=1)
    with pytest.raises(
        FieldError, match=r"Unsupported lookup 'exact' on relationship User\.articles"
    ):
        User.objects.filter(articles=1)
    with pytest.raises(TypeError, match=r"User\.id__in needs a list"):
        User.objects.filter(id__in="123")
    # Django: ValueError ("The QuerySet value for an isnull lookup must be True
    # or False."), with the model and the lookup named.
    with pytest.raises(ValueError, match=r"isnull lookup must be True or False"):
        User.objects.filter(nickname__isnull="yes")
    with pytest.raises(ValueError, match=r"User\.articles__isnull got 1"):
        User.objects.filter(articles__isnull=1)
    with pytest.raises(
        ValueError, match=r"Cannot use None as a query value for User\.age__gte"
    ):
        User.objects.filter(age__gte=None)
    with pytest.raises(ValueError, match=r"User\.age__range needs exactly two values"):
        User.objects.filter(age__range=(1, 2, 3))
    with pytest.raises(TypeError, match=r"User\.age__range needs a \(low, high\) pair"):
        User.objects.filter(age__range=5)


def test_queryset_repr_never_queries() -> None:
    """repr() of a QuerySet is static text."""
    assert repr(User.objects.filter(age=1)) == "<QuerySet of User, 1 condition(s)>"


def test_unknown_backends_never_count_as_a_race() -> None:
    """Only the three known backends' codes are read; anything else is not a race."""
    exc = IntegrityError("INSERT", {}, Exception("duplicate"))
    assert not backend_named("oracle").is_unique_violation(exc)


async def test_session_lock_is_reentrant_for_its_owner_only() -> None:
    """The task that holds the lock may take it again; another task waits."""
    lock = SessionLock()
    order: list[str] = []

    async def other() -> None:
        async with lock.hold():
            order.append("other")

    async with lock.hold():
        waiter = asyncio.ensure_future(other())
        async with lock.hold():  # re-entered, no deadlock
            order.append("inner")
        await asyncio.sleep(0.01)
        order.append("outer")
    await waiter
    assert order == ["inner", "outer", "other"]


async def test_defaults_must_be_a_mapping() -> None:
    """A non-mapping defaults is a TypeError naming the model, before any SQL."""
    with pytest.raises(
        TypeError,
        match=r"User\.objects\.get_or_create\(defaults=\.\.\.\) takes a mapping",
    ):
        # a Database of its own: the answer must not depend on which test bound User
        await User.objects.using(Database("sqlite+aiosqlite://")).get_or_create(
            username="a",
            defaults="nope",  # type: ignore[arg-type]
        )


def test_pgbouncer_is_read_from_the_url_and_removed_from_it() -> None:
    """?pgbouncer=true (the spelling other tools use) sets the flag and never
    reaches the driver; the keyword wins over the URL; bad values and other
    backends are refused with a message."""
    db = Database("postgresql://u@h/db?pgbouncer=true&application_name=x")
    assert db.pgbouncer is True
    assert "pgbouncer" not in db.url.query
    assert db.url.query["application_name"] == "x"
    assert (
        Database("postgresql://u@h/db?pgbouncer=true", pgbouncer=False).pgbouncer
        is False
    )
    assert Database("postgresql://u@h/db", pgbouncer=True).pgbouncer is True
    assert Database("postgresql://u@h/db").pgbouncer is False
    with pytest.raises(ConfigurationError, match=r"\?pgbouncer= takes true or false"):
        Database("postgresql://u@h/db?pgbouncer=maybe")
    with pytest.raises(ConfigurationError, match="pgbouncer=True is for PostgreSQL"):
        Database("sqlite:///x.db", pgbouncer=True)


class FlaggedQuerySet(QuerySet[Article]):
    """Django's queryset_only flags on custom QuerySet methods."""

    def shown(self) -> FlaggedQuerySet:
        return self.filter(published=True)

    def hidden(self) -> FlaggedQuerySet:
        return self.filter(published=False)

    hidden.queryset_only = True  # type: ignore[attr-defined]

    def _private(self) -> FlaggedQuerySet:
        return self.all()

    _private.queryset_only = False  # type: ignore[attr-defined]


def test_from_queryset_honours_queryset_only() -> None:
    manager_class: Any = Manager.from_queryset(FlaggedQuerySet)
    assert hasattr(manager_class, "shown")
    assert not hasattr(manager_class, "hidden")  # queryset_only=True
    assert hasattr(manager_class, "_private")  # queryset_only=False


class KeywordQuerySet(QuerySet[Article]):
    """A QuerySet with an __init__ of its own, taking the model by keyword
    only, as Django's QuerySet(model=None, ...) is often called."""

    def __init__(self, *, model: type[Article], **kw: Any) -> None:
        super().__init__(model, **kw)
        self.tagged = True


def test_as_manager_passes_the_model_by_keyword() -> None:
    queryset = KeywordQuerySet.as_manager().__get__(None, Article)
    assert queryset.model is Article
    assert queryset.tagged

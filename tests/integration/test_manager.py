"""get, create, get_or_create and the manager, on every backend (SPEC §1, §3)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sqlalchemy_objects import (
    ConfigurationError,
    Database,
    FieldError,
    ManagerMixin,
    MultipleObjectsReturned,
    ObjectDoesNotExist,
)
from tests.conftest import StatementLog
from tests.models import Article, Base, Note, User


async def test_get_returns_the_one_matching_row(db: Database) -> None:
    """get() returns the row; its columns are loaded and readable without IO."""
    made = await User.objects.create(username="ann", email="a@x")
    got = await User.objects.get(username="ann")
    assert (got.id, got.username, got.email) == (made.id, "ann", "a@x")


async def test_get_missing_raises_the_models_does_not_exist(db: Database) -> None:
    """A miss raises User.DoesNotExist, naming the model and the lookup."""
    with pytest.raises(
        User.DoesNotExist, match=r"User matching username='zed' does not exist"
    ):
        await User.objects.get(username="zed")


async def test_does_not_exist_is_per_model(db: Database) -> None:
    """Article.DoesNotExist is not caught by `except User.DoesNotExist`."""
    assert issubclass(User.DoesNotExist, ObjectDoesNotExist)
    assert not issubclass(Article.DoesNotExist, User.DoesNotExist)
    assert User.DoesNotExist.__qualname__ == "User.DoesNotExist"
    with pytest.raises(Article.DoesNotExist) as info:  # noqa: PT012
        try:
            await Article.objects.get(title="none")
        except User.DoesNotExist:  # pragma: no cover - must not match
            pytest.fail("User.DoesNotExist caught an Article miss")
    assert info.value.model is Article
    assert info.value.lookup == {"title": "none"}


async def test_get_several_raises_multiple_objects_returned(db: Database) -> None:
    """More than one match raises User.MultipleObjectsReturned with the count."""
    for name in ("a1", "a2", "a3"):
        await User.objects.create(username=name, email="same")
    with pytest.raises(
        User.MultipleObjectsReturned,
        match=r"returned 3 User rows matching email='same'",
    ):
        await User.objects.get(email="same")
    assert issubclass(User.MultipleObjectsReturned, MultipleObjectsReturned)


async def test_get_reports_more_than_20(db: Database) -> None:
    """Like Django, get() fetches at most 21 rows and says "more than 20"."""
    async with db.session():
        for i in range(25):
            await User.objects.create(username=f"m{i}", email="many")
    with pytest.raises(User.MultipleObjectsReturned, match="more than 20"):
        await User.objects.get(email="many")


async def test_create_loads_primary_key_and_server_defaults(db: Database) -> None:
    """create() returns the instance with its id and server defaults, readable after commit."""
    user = await User.objects.create(username="ann")
    state = inspect(user)
    assert not state.expired_attributes
    assert isinstance(user.id, int)
    assert user.status == "new"  # server_default
    assert user.email == ""  # Python-side default


async def test_get_or_create_creates_then_finds(db: Database) -> None:
    """The first call creates from lookup + defaults; the second finds the same row."""
    user, created = await User.objects.get_or_create(
        username="ann", defaults={"email": "a@x"}
    )
    assert created is True
    assert (user.username, user.email, user.status) == ("ann", "a@x", "new")
    again, created_again = await User.objects.get_or_create(
        username="ann", defaults={"email": "other"}
    )
    assert created_again is False
    assert again.id == user.id
    assert again.email == "a@x"  # defaults are not applied to an existing row


async def test_defaults_win_over_lookup_values(db: Database) -> None:
    """When lookup and defaults name the same field, defaults wins (SPEC §3)."""
    user, created = await User.objects.get_or_create(
        email="lookup", defaults={"email": "defaults", "username": "d"}
    )
    assert created
    assert user.email == "defaults"


async def test_callable_defaults_are_called_only_when_creating(db: Database) -> None:
    """A callable in defaults runs once on create and never on a hit; awaitables are awaited."""
    calls: list[str] = []

    def make_email() -> str:
        calls.append("sync")
        return "made@x"

    async def make_nickname() -> str:
        calls.append("async")
        return "nick"

    user, created = await User.objects.get_or_create(
        username="ann", defaults={"email": make_email, "nickname": make_nickname}
    )
    assert created
    assert (user.email, user.nickname) == ("made@x", "nick")
    assert calls == ["sync", "async"]
    _, created = await User.objects.get_or_create(
        username="ann", defaults={"email": make_email}
    )
    assert not created
    assert calls == ["sync", "async"]


async def test_lookup_operators_filter_but_do_not_create(db: Database) -> None:
    """`field__exact` creates, other lookups only filter (Django's rule)."""
    user, created = await User.objects.get_or_create(username__exact="ann", age__gte=0)
    assert created
    assert (user.username, user.age) == ("ann", 0)
    found, created = await User.objects.get_or_create(username__iexact="ANN")
    assert not created
    assert found.id == user.id


async def test_field_error_before_any_sql(db: Database, sql: StatementLog) -> None:
    """Unknown fields and lookups raise FieldError naming model, name and choices; no SQL is sent."""
    with pytest.raises(
        FieldError,
        match=r"Cannot resolve 'usernme' into a field of User\. Choices are: .*username",
    ) as info:
        await User.objects.get(usernme="ann")
    assert info.value.model is User
    assert info.value.name == "usernme"
    assert "username" in info.value.valid
    with pytest.raises(
        FieldError, match=r"Unsupported lookup 'like' for User\.username"
    ):
        await User.objects.get_or_create(username__like="a%")
    with pytest.raises(
        FieldError,
        match=r"Invalid field name\(s\) for model User in get_or_create\(defaults=...\): 'colour'",
    ):
        await User.objects.get_or_create(username="ann", defaults={"colour": "red"})
    with pytest.raises(
        FieldError,
        match=r"Invalid field name\(s\) for model User in create\(\): 'bogus'",
    ):
        await User.objects.create(username="ann", bogus=1)
    with pytest.raises(FieldError, match=r"Cannot resolve '' into a field of User"):
        await User.objects.get(__class__=1)
    assert len(sql) == 0, sql.statements


async def test_lookups_across_relationships(db: Database) -> None:
    """`author__username=` follows a many-to-one, `articles__title=` a one-to-many."""
    ann = await User.objects.create(username="ann")
    bob = await User.objects.create(username="bob")
    await Article.objects.create(title="one", author_id=ann.id, published=True)
    await Article.objects.create(title="two", author_id=ann.id)
    article = await Article.objects.get(author__username="ann", published=True)
    assert article.title == "one"
    assert (await User.objects.get(articles__title="two")).id == ann.id
    assert (await User.objects.get(articles__isnull=True)).id == bob.id
    assert (await Article.objects.filter(author=ann).count()) == 2


async def test_custom_manager_get_queryset(db: Database) -> None:
    """A custom manager's get_queryset() narrows every call, as in Django."""
    ann = await User.objects.create(username="ann")
    await Article.objects.create(title="draft", author_id=ann.id)
    await Article.objects.create(title="live", author_id=ann.id, published=True)
    assert await Article.objects.count() == 2
    assert await Article.published_objects.count() == 1
    with pytest.raises(Article.DoesNotExist):
        await Article.published_objects.get(title="draft")
    live = await Article.published_objects.get(title="live")
    assert live.published


async def test_manager_is_not_reachable_from_an_instance(db: Database) -> None:
    """`user.objects` raises AttributeError naming the model (Django parity)."""
    user = await User.objects.create(username="ann")
    with pytest.raises(
        AttributeError, match="Manager isn't accessible via User instances"
    ):
        user.objects  # noqa: B018
    with pytest.raises(
        AttributeError, match="Manager isn't accessible via Article instances"
    ):
        Article(title="t", author_id=user.id).published_objects  # noqa: B018


async def test_no_database_raises_configuration_error(tmp_path: Path) -> None:
    """A model bound to nothing, outside any session, says how to bind one."""

    class Loose(ManagerMixin, DeclarativeBase):
        pass

    class Thing(Loose):
        __tablename__ = "things"
        id: Mapped[int] = mapped_column(primary_key=True)

    with pytest.raises(
        ConfigurationError,
        match=r"No session or database for Thing: call db\.bind\(Loose\)",
    ):
        await Thing.objects.get(id=1)


async def test_using_an_explicit_session_or_database(
    db: Database, tmp_path: Path
) -> None:
    """using(session) flushes into that session; using(db) runs in autocommit there."""
    async with db.sessionmaker() as session:
        user = await User.objects.using(session).create(username="ann")
        assert user.id is not None
        assert session.in_transaction()  # flushed, not committed
        await session.rollback()
    assert not await User.objects.filter(username="ann").exists()
    user = await User.objects.using(db).create(username="bob")
    assert (await User.objects.get(id=user.id)).username == "bob"
    with pytest.raises(
        TypeError, match="using\\(\\) takes an AsyncSession or a Database"
    ):
        User.objects.using("postgresql://")  # type: ignore[arg-type]


async def test_session_block_commits_on_exit_and_rolls_back_on_error(
    db: Database,
) -> None:
    """`async with db.session()` owns the transaction: commit on success, rollback on raise."""
    async with db.session():
        await User.objects.create(username="kept")
    with pytest.raises(RuntimeError, match="boom"):  # noqa: PT012
        async with db.session():
            await User.objects.create(username="lost")
            raise RuntimeError("boom")
    names = [u.username for u in await User.objects.all()]
    assert names == ["kept"]


async def test_gather_inside_one_session_is_serialised(db: Database) -> None:
    """Sibling tasks share the block's session; their calls queue instead of failing."""
    async with db.session():
        results = await asyncio.gather(
            *(User.objects.get_or_create(username=f"g{i % 4}") for i in range(40)),
            *(Note.objects.create(text=f"n{i}") for i in range(10)),
        )
        created = [r for r in results[:40] if isinstance(r, tuple) and r[1]]
        assert len(created) == 4
        assert await User.objects.count() == 4
    assert await Note.objects.count() == 10


async def test_sibling_sessions_do_not_see_each_others_rows(
    backend: str, db: Database
) -> None:
    """A db.session() opened in a task is its own: a sibling never sees its uncommitted rows."""
    # SQLite's default BEGIN IMMEDIATE serialises writer sessions, so the two
    # blocks could not overlap; DEFERRED lets them, which is what this test needs.
    deferred = Database(db.url, sqlite_begin="DEFERRED")
    deferred.bind(Base)
    written = asyncio.Event()
    checked = asyncio.Event()

    async def writer() -> None:
        with pytest.raises(RuntimeError):  # noqa: PT012
            async with deferred.session():
                await User.objects.create(username="secret")
                written.set()
                await checked.wait()
                raise RuntimeError("roll back")

    async def reader() -> bool:
        await written.wait()
        async with deferred.session():
            seen = await User.objects.filter(username="secret").exists()
        checked.set()
        return seen

    try:
        _, seen = await asyncio.gather(writer(), reader())
        assert seen is False
        assert not await User.objects.filter(username="secret").exists()
    finally:
        await deferred.dispose()
        db.bind(Base)


async def test_autocommit_objects_are_readable_after_the_call(db: Database) -> None:
    """Objects returned outside a session keep their values: no MissingGreenlet on access."""
    user, _ = await User.objects.get_or_create(
        username="ann", defaults={"email": "a@x"}
    )
    found = await User.objects.get(username="ann")
    for obj in (user, found):
        assert not inspect(obj).expired_attributes
        assert (obj.username, obj.email, obj.status) == ("ann", "a@x", "new")


async def test_first_exists_and_filters(db: Database) -> None:
    """The small QuerySet surface the foundation ships: filter, exclude, first, count, exists."""
    assert await User.objects.first() is None
    assert not await User.objects.exists()
    for i in range(3):
        await User.objects.create(username=f"u{i}", age=i)
    assert (await User.objects.first()) is not None
    assert await User.objects.filter(age__gte=1).count() == 2
    assert await User.objects.exclude(age=0).count() == 2
    assert [
        u.username for u in await User.objects.filter(username__in=["u0", "u2"])
    ] == ["u0", "u2"]
    assert await User.objects.get_or_none(username="nobody") is None
    stmt = User.objects.filter(age=1).statement
    async with db.session() as session:
        assert (await session.scalars(stmt)).one().username == "u1"
    with pytest.raises(TypeError, match=r"await qs\.exists\(\)"):
        bool(User.objects.all())


async def test_raw_select_in_a_session_still_works(db: Database) -> None:
    """Users can always drop to plain SQLAlchemy in the same session."""
    async with db.session() as session:
        await User.objects.create(username="ann")
        assert (await session.scalars(select(User.username))).all() == ["ann"]


async def test_get_or_create_integrity_errors_outside_a_session(
    db: Database, sql: StatementLog
) -> None:
    """In autocommit mode a conflict on another unique column re-raises the original error."""
    await User.objects.create(username="ann", nickname="taken")
    sql.statements.clear()
    with pytest.raises(IntegrityError):
        await User.objects.get_or_create(username="bob", defaults={"nickname": "taken"})
    assert sql.selects_on("users") == 2  # the get and exactly one retried get
    assert await User.objects.count() == 1


async def test_a_defaults_callable_may_query_the_same_session(db: Database) -> None:
    """The session lock is re-entrant: an async default that queries does not deadlock."""

    async def next_nickname() -> str:
        return f"user-{await User.objects.count() + 1}"

    async with db.session():
        await User.objects.create(username="first")
        user, created = await asyncio.wait_for(
            User.objects.get_or_create(
                username="ann", defaults={"nickname": next_nickname}
            ),
            timeout=10,
        )
    assert created
    assert user.nickname == "user-2"


async def test_autocommit_reads_skip_begin(db: Database) -> None:
    """On every backend an autocommit read runs without BEGIN/ROLLBACK (on
    MariaDB the connection is in the server's autocommit mode), a session and
    a chosen isolation level keep transactions."""
    await User.objects.create(username="ann")

    async def driver_in_transaction(session: AsyncSession) -> bool:
        raw = await (await session.connection()).get_raw_connection()
        await session.scalar(select(User.id).limit(1))
        driver: Any = raw.driver_connection
        if hasattr(driver, "is_in_transaction"):  # asyncpg
            return bool(driver.is_in_transaction())
        if hasattr(driver, "in_transaction"):  # aiosqlite
            return bool(driver.in_transaction)
        if hasattr(driver, "get_transaction_status"):  # asyncmy, aiomysql
            return bool(driver.get_transaction_status())
        return bool(driver.info.transaction_status != 0)  # psycopg: 0 is IDLE

    assert db.facts.autocommit_reads
    assert await db.run_read(driver_in_transaction) is False
    async with db.session() as session:
        await User.objects.get(username="ann")
        assert await driver_in_transaction(session) is True
    if db.backend == "sqlite":
        return  # SQLite has no isolation levels to choose
    strict = Database(db.url, isolation_level="REPEATABLE READ")
    try:
        assert await strict.run_read(driver_in_transaction) is True
    finally:
        await strict.dispose()

"""The QuerySet API (SPEC §4) on every backend: builders, terminal methods, Q,
aggregates, async iteration, related loading, update_or_create, bulk_create."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from sqlalchemy_objects import (
    Avg,
    Count,
    Database,
    F,
    FieldError,
    Manager,
    Max,
    Min,
    Q,
    Sum,
    TransactionManagementError,
)
from tests.conftest import StatementLog
from tests.models import Animal, Article, Counter, Dog, Item, Note, Tag, User


async def make_users() -> list[User]:
    """ann(30), bob(20, nickname b), cy(40), dee(20, nickname d)."""
    return [
        await User.objects.create(username="ann", email="a@x", age=30),
        await User.objects.create(username="bob", email="b@x", age=20, nickname="b"),
        await User.objects.create(username="cy", email="c@y", age=40),
        await User.objects.create(username="dee", email="d@y", age=20, nickname="d"),
    ]


def selects(sql: StatementLog) -> int:
    return sql.count(lambda s: s.lstrip().upper().startswith("SELECT"))


def names(users: list[User]) -> list[str]:
    return [u.username for u in users]


# -- laziness, chaining, Q ---------------------------------------------------------


async def test_building_a_queryset_sends_nothing(
    db: Database, sql: StatementLog
) -> None:
    qs = (
        User.objects.filter(age__gte=18)
        .exclude(username="x")
        .order_by("-age")
        .select_related()
        .prefetch_related("articles")[1:3]
    )
    assert len(sql) == 0
    assert qs.model is User
    await qs
    assert selects(sql) == 1


async def test_q_objects_combine_with_and_or_not(db: Database) -> None:
    await make_users()
    either = await User.objects.filter(Q(age=30) | Q(age=40)).order_by("username")
    assert names(either) == ["ann", "cy"]
    both = await User.objects.filter(Q(age=20) & Q(email__endswith="@y"))
    assert names(both) == ["dee"]
    negated = await User.objects.filter(~Q(age=20)).order_by("username")
    assert names(negated) == ["ann", "cy"]
    mixed = await User.objects.filter(Q(age=20) | Q(age=30), email__startswith="a")
    assert names(mixed) == ["ann"]
    assert await User.objects.filter(Q()).count() == 4  # an empty Q filters nothing


async def test_exclude_keeps_null_rows_like_django(db: Database) -> None:
    """exclude(nickname="b") keeps users without a nickname (SQL NOT would drop
    them); ~Q does the same."""
    await make_users()
    kept = await User.objects.exclude(nickname="b").order_by("username")
    assert names(kept) == ["ann", "cy", "dee"]
    kept_q = await User.objects.filter(~Q(nickname="b")).order_by("username")
    assert names(kept_q) == ["ann", "cy", "dee"]


async def test_q_unknown_field_is_a_field_error_before_sql(
    db: Database, sql: StatementLog
) -> None:
    with pytest.raises(FieldError, match="'nope' into a field of User"):
        User.objects.filter(Q(age=1) | Q(nope=2))
    assert len(sql) == 0
    with pytest.raises(TypeError, match="Cannot combine a Q object"):
        Q(age=1) | 3  # type: ignore[operator]


# -- ordering and slicing ------------------------------------------------------------


async def test_order_by_and_reverse(db: Database) -> None:
    await make_users()
    assert not User.objects.filter(age=1).ordered
    assert User.objects.order_by("age").ordered
    assert not User.objects.order_by("age").order_by().ordered
    by_age = await User.objects.order_by("age", "-username")
    assert names(by_age) == ["dee", "bob", "ann", "cy"]
    assert names(await User.objects.order_by("age", "-username").reverse()) == [
        "cy",
        "ann",
        "bob",
        "dee",
    ]
    assert names(await User.objects.all().reverse()) == ["dee", "cy", "bob", "ann"]
    assert names(await User.objects.order_by("-pk")) == ["dee", "cy", "bob", "ann"]
    with pytest.raises(FieldError, match="'nope' into a column of User"):
        User.objects.order_by("nope")
    with pytest.raises(FieldError, match="'author' of User is not a relationship"):
        User.objects.order_by("author__name")


async def test_slicing_is_limit_and_offset(db: Database, sql: StatementLog) -> None:
    await make_users()
    sql.statements.clear()
    qs = User.objects.order_by("username")
    assert names(await qs[1:3]) == ["bob", "cy"]
    assert names(await qs[2:]) == ["cy", "dee"]
    assert names(await qs[:2]) == ["ann", "bob"]
    assert names(await qs[1:][1:2]) == ["cy"]  # slices compose
    assert names(await qs[5:9]) == []
    assert any("LIMIT" in s.upper() for s in sql.statements)
    with pytest.raises(
        TypeError, match=r"must be slices.*`\(await qs\[0:1\]\)\[0\]`.*first\(\)"
    ):
        qs[0]  # type: ignore[index]
    with pytest.raises(TypeError, match=r"not int.*Use `\(await qs\[3:4\]\)\[0\]`"):
        qs[3]  # type: ignore[index]
    with pytest.raises(TypeError, match=r"not str.*`await qs.first\(\)`, or a slice"):
        qs["a"]  # type: ignore[index]
    assert (await qs[1:2])[0].username == "bob"  # what the message suggests works
    with pytest.raises(
        AttributeError,
        match=r"User\.objects has no delete\(\), as in Django.*User\.objects\.all\(\)\.delete\(\)",
    ):
        User.objects.delete()  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="Negative"):
        qs[-1:]
    with pytest.raises(TypeError, match="once a slice has been taken"):
        qs[:2].filter(age=1)
    with pytest.raises(TypeError, match="once a slice has been taken"):
        await qs[:2].delete()
    assert await qs[1:3].count() == 2
    assert await qs[1:3].exists()


async def test_first_and_last(db: Database) -> None:
    assert await User.objects.first() is None
    assert await User.objects.last() is None
    await make_users()
    first, last = await User.objects.first(), await User.objects.last()
    assert (first and first.username, last and last.username) == ("ann", "dee")
    oldest = await User.objects.order_by("age").last()
    assert oldest is not None
    assert oldest.username == "cy"
    youngest = await User.objects.filter(age=20).order_by("-username").first()
    assert youngest is not None
    assert youngest.username == "dee"


# -- values, values_list, in_bulk, aggregate ------------------------------------------


async def test_values_and_values_list(db: Database) -> None:
    users = await make_users()
    rows = (
        await User.objects.filter(age=20).order_by("username").values("username", "age")
    )
    assert rows == [{"username": "bob", "age": 20}, {"username": "dee", "age": 20}]
    everything = await User.objects.filter(username="ann").values()
    assert everything[0]["id"] == users[0].id
    assert set(everything[0]) == {
        "id",
        "username",
        "email",
        "nickname",
        "status",
        "age",
    }
    pairs = await User.objects.order_by("pk").values_list("username", "age")
    assert pairs[0] == ("ann", 30)
    flat = await User.objects.order_by("-age").values_list("username", flat=True)
    assert flat[:2] == ["cy", "ann"]
    with pytest.raises(TypeError, match="'flat' is not valid"):
        await User.objects.values_list("username", "age", flat=True)
    with pytest.raises(FieldError, match="'nope' into a column of Article"):
        await User.objects.values("articles__nope")


async def test_in_bulk(db: Database) -> None:
    users = await make_users()
    by_id = await User.objects.in_bulk([users[0].id, users[2].id, 10**6])
    assert {k: v.username for k, v in by_id.items()} == {
        users[0].id: "ann",
        users[2].id: "cy",
    }
    by_name = await User.objects.in_bulk(["bob", "dee"], field_name="username")
    assert set(by_name) == {"bob", "dee"}
    assert len(await User.objects.in_bulk()) == 4
    assert await User.objects.in_bulk([]) == {}
    with pytest.raises(ValueError, match="must be a unique field"):
        await User.objects.in_bulk([1], field_name="age")


async def test_in_bulk_with_tens_of_thousands_of_ids(db: Database) -> None:
    """40,000 ids: more than asyncpg's and SQLite's bind-parameter limits."""
    users = await make_users()
    ids = [*range(10**6, 10**6 + 40_000), users[1].id]
    found = await User.objects.in_bulk(ids)
    assert list(found) == [users[1].id]


async def test_aggregate(db: Database) -> None:
    assert await User.objects.aggregate(Count("id"), Sum("age"), Avg("age")) == {
        "id__count": 0,
        "age__sum": None,
        "age__avg": None,
    }
    await make_users()
    result = await User.objects.aggregate(
        Avg("age"), Sum("age"), oldest=Max("age"), youngest=Min("age"), n=Count("*")
    )
    assert result == {
        "age__avg": 27.5,
        "age__sum": 110,
        "oldest": 40,
        "youngest": 20,
        "n": 4,
    }
    assert type(result["age__sum"]) is int
    assert await User.objects.aggregate(ages=Count("age", distinct=True)) == {"ages": 3}
    assert await User.objects.aggregate(Count("nickname")) == {"nickname__count": 2}
    filtered = await User.objects.filter(age__lt=35).aggregate(total=Sum("age"))
    assert filtered == {"total": 70}
    sliced = await User.objects.order_by("-age")[:2].aggregate(total=Sum("age"))
    assert sliced == {"total": 70}
    with pytest.raises(TypeError, match="needs a keyword"):
        await User.objects.aggregate(Count("*"))
    with pytest.raises(FieldError, match="'nope' into a column of User"):
        await User.objects.aggregate(Max("nope"))


# -- update and delete -----------------------------------------------------------------


async def test_update_returns_the_matched_count(db: Database) -> None:
    await make_users()
    assert await User.objects.filter(age=20).update(email="young") == 2
    emails = await User.objects.order_by("username").values_list("email", flat=True)
    assert emails == ["a@x", "young", "c@y", "young"]
    # Matched, not changed (Django's and MySQL-with-FOUND_ROWS' meaning).
    assert await User.objects.filter(age=20).update(email="young") == 2
    assert await User.objects.update(status="all") == 4  # the whole table, as in Django
    with pytest.raises(FieldError, match="'nope' into a column of User"):
        await User.objects.update(nope=1)
    with pytest.raises(TypeError, match="needs values"):
        await User.objects.update()


async def test_update_in_a_session_refreshes_loaded_objects(db: Database) -> None:
    await make_users()
    async with db.session():
        bob = await User.objects.get(username="bob")
        await User.objects.filter(age=20).update(email="changed")
        assert bob.email == "changed"


async def test_delete(db: Database) -> None:
    await make_users()
    assert await User.objects.filter(age=20).delete() == (2, {"User": 2})
    assert await User.objects.filter(age=99).delete() == (0, {})
    assert not hasattr(User.objects, "delete")  # as in Django: use .all().delete()
    assert await User.objects.all().delete() == (2, {"User": 2})
    assert await User.objects.count() == 0


async def test_delete_and_update_through_relationships(db: Database) -> None:
    users = await make_users()
    await Article.objects.create(title="t1", author_id=users[0].id)
    await Note.objects.create(text="keep")
    assert (
        await Article.objects.filter(author__username="ann").update(published=True) == 1
    )
    assert await User.objects.filter(articles__title="t1").count() == 1
    assert await Article.objects.filter(author__age__gte=30).delete() == (
        1,
        {"Article": 1},
    )


# -- async iteration, related loading ------------------------------------------------


async def test_async_for_streams_rows(db: Database) -> None:
    for i in range(250):  # more than one chunk
        await Note.objects.create(text=f"n{i:03}")
    seen = [note.text async for note in Note.objects.order_by("text")]
    assert seen == [f"n{i:03}" for i in range(250)]
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    async with db.session():
        inside = [n.text async for n in Note.objects.filter(text__startswith="n00")]
    assert len(inside) == 10


async def test_breaking_out_of_async_for_returns_the_connection(db: Database) -> None:
    for i in range(150):
        await Note.objects.create(text=f"n{i}")
    iterator = Note.objects.all().__aiter__()
    assert (await anext(iterator)).text == "n0"
    await iterator.aclose()  # type: ignore[attr-defined]
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_select_related_and_prefetch_related(
    db: Database, sql: StatementLog
) -> None:
    users = await make_users()
    for i, user in enumerate(users[:2]):
        await Article.objects.create(title=f"t{i}", author_id=user.id)
    await Article.objects.create(title="t2", author_id=users[0].id)
    sql.statements.clear()
    articles = await Article.objects.select_related("author").order_by("title")
    assert [a.author.username for a in articles] == ["ann", "bob", "ann"]
    assert selects(sql) == 1  # one JOIN, no lazy loads
    sql.statements.clear()
    authors = await User.objects.prefetch_related("articles").order_by("username")
    assert {u.username: sorted(a.title for a in u.articles) for u in authors} == {
        "ann": ["t0", "t2"],
        "bob": ["t1"],
        "cy": [],
        "dee": [],
    }
    assert selects(sql) == 2  # the users, then one SELECT ... IN for their articles
    nested = await Article.objects.select_related("author").prefetch_related(
        "author__articles"
    )
    assert all(a.author.articles for a in nested)
    with pytest.raises(FieldError, match="use prefetch_related"):
        User.objects.select_related("articles")
    with pytest.raises(FieldError, match="Invalid field name 'writer'"):
        Article.objects.prefetch_related("writer")


# -- update_or_create --------------------------------------------------------------------


async def test_update_or_create_creates_then_updates(db: Database) -> None:
    user, created = await User.objects.update_or_create(
        username="ann", defaults={"email": "first"}
    )
    assert created
    assert user.email == "first"
    again, created = await User.objects.update_or_create(
        username="ann", defaults={"email": "second"}
    )
    assert not created
    assert again.id == user.id
    assert again.email == "second"
    assert (await User.objects.get(username="ann")).email == "second"


async def test_update_or_create_create_defaults_and_callables(db: Database) -> None:
    calls: list[str] = []

    def made() -> str:
        calls.append("create")
        return "made"

    user, created = await User.objects.update_or_create(
        username="ann",
        defaults={"email": "updated"},
        create_defaults={"email": made, "age": 5},
    )
    assert created
    assert (user.email, user.age) == ("made", 5)
    user, created = await User.objects.update_or_create(
        username="ann",
        defaults={"email": "updated"},
        create_defaults={"email": made},
    )
    assert not created
    assert (user.email, user.age) == ("updated", 5)
    assert calls == ["create"]


async def test_update_or_create_writes_only_changed_fields(
    db: Database, sql: StatementLog
) -> None:
    await User.objects.create(username="ann", email="same", age=1)
    sql.statements.clear()
    await User.objects.update_or_create(username="ann", defaults={"email": "same"})
    assert sql.count(lambda s: s.lstrip().upper().startswith("UPDATE")) == 0
    await User.objects.update_or_create(
        username="ann", defaults={"email": "same", "age": 2}
    )
    updates = [s for s in sql.statements if s.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1
    assert "age" in updates[0]
    assert "email" not in updates[0]


async def test_update_or_create_locks_the_row(db: Database, sql: StatementLog) -> None:
    await User.objects.create(username="ann")
    sql.statements.clear()
    await User.objects.update_or_create(username="ann", defaults={"age": 3})
    selects = [s for s in sql.statements if "FROM users" in s and "SELECT" in s]
    if db.backend == "sqlite":  # no row locks: BEGIN IMMEDIATE serialises writers
        assert "FOR UPDATE" not in selects[0]
    else:
        assert "FOR UPDATE" in selects[0]


async def test_update_or_create_in_session_keeps_callers_work(db: Database) -> None:
    """A failed create inside update_or_create costs only its savepoint: the
    caller's earlier writes in the block survive, and the session goes on."""
    await User.objects.create(username="ann", email="x")
    async with db.session():
        await Note.objects.create(text="mine")
        await User.objects.create(username="bob", nickname="n")
        # nickname is unique: a real conflict, not a race, so it is raised
        with pytest.raises(IntegrityError):
            await User.objects.update_or_create(
                username="cy", defaults={"nickname": "n"}
            )
        _, created = await User.objects.update_or_create(
            username="ann", defaults={"email": "y"}
        )
        assert not created
    assert await Note.objects.filter(text="mine").count() == 1
    assert await User.objects.filter(username="bob").exists()
    assert not await User.objects.filter(username="cy").exists()
    assert (await User.objects.get(username="ann")).email == "y"


async def test_update_or_create_race(db: Database) -> None:
    """16 callers on one new key: one creates, the others update it; no error."""
    results = await asyncio.gather(
        *(
            User.objects.update_or_create(username="hot", defaults={"age": i})
            for i in range(16)
        )
    )
    assert sum(created for _, created in results) == 1
    assert await User.objects.filter(username="hot").count() == 1


async def test_update_or_create_bad_arguments(db: Database, sql: StatementLog) -> None:
    with pytest.raises(FieldError, match="update_or_create"):
        await User.objects.update_or_create(username="a", defaults={"nope": 1})
    with pytest.raises(FieldError, match="create_defaults"):
        await User.objects.update_or_create(username="a", create_defaults={"nope": 1})
    with pytest.raises(TypeError, match="takes a mapping"):
        await User.objects.update_or_create(username="a", defaults=[1])  # type: ignore[arg-type]
    assert len(sql) == 0


# -- bulk_create ---------------------------------------------------------------------------


async def test_bulk_create_sets_primary_keys(db: Database, sql: StatementLog) -> None:
    users = [User(username=f"u{i}", email=f"{i}@x") for i in range(5)]
    returned = await User.objects.bulk_create(users, batch_size=2)
    assert returned is not users
    assert returned == users
    inserts = [s for s in sql.statements if s.lstrip().upper().startswith("INSERT")]
    if db.backend == "sqlite":
        # SQLAlchemy cannot match a multi-row INSERT's RETURNING rows to their
        # parameters on SQLite, so keys come back one INSERT per row.
        assert len(inserts) == 5
    else:
        assert len(inserts) == 3  # one multi-row INSERT per batch
    by_name = await User.objects.in_bulk(
        [u.username for u in users], field_name="username"
    )
    assert [u.id for u in users] == [by_name[u.username].id for u in users]
    assert inspect(users[0]).detached or inspect(users[0]).transient


async def test_bulk_create_applies_defaults(db: Database) -> None:
    await User.objects.bulk_create([User(username="a"), User(username="b", age=7)])
    rows = await User.objects.order_by("username").values_list(
        "username", "email", "age", "status"
    )
    assert rows == [("a", "", 0, "new"), ("b", "", 7, "new")]


async def test_bulk_create_ignore_conflicts(db: Database) -> None:
    await User.objects.create(username="taken", email="old")
    await User.objects.bulk_create(
        [User(username="taken", email="new"), User(username="free")],
        ignore_conflicts=True,
    )
    assert await User.objects.order_by("username").values_list("username", "email") == [
        ("free", ""),
        ("taken", "old"),
    ]


async def test_bulk_create_update_conflicts(db: Database) -> None:
    await User.objects.create(username="taken", email="old", age=1)
    await User.objects.bulk_create(
        [User(username="taken", email="new", age=9), User(username="free", email="f")],
        update_conflicts=True,
        update_fields=["email"],
        unique_fields=["username"],
    )
    assert await User.objects.order_by("username").values_list(
        "username", "email", "age"
    ) == [("free", "f", 0), ("taken", "new", 1)]


async def test_bulk_create_update_conflicts_sets_each_own_key(db: Database) -> None:
    """Existing and new rows mixed, in an order unlike their ids: each object
    gets the primary key of its own row (matched by its unique field), so a
    later write through it changes that row and no other."""
    existing = [
        await User.objects.create(username=name, email="old")
        for name in ("c", "a", "e")
    ]
    ids = {u.username: u.id for u in existing}
    names = ("e", "b", "a", "d", "c", "f")
    returned: list[User] = []
    for batch_size in (None, 2):
        returned = await User.objects.bulk_create(
            [User(username=n, email=f"new-{batch_size}") for n in names],
            update_conflicts=True,
            update_fields=["email"],
            unique_fields=["username"],
            batch_size=batch_size,
        )
        rows = dict(await User.objects.values_list("username", "id"))
        assert len(rows) == 6
        assert {o.username: o.id for o in returned} == rows
        assert all(rows[name] == ids[name] for name in ids)  # updated, not added
    # A write through a returned object reaches its own row and no other.
    by_name = {o.username: o for o in returned}
    await User.objects.filter(id=by_name["e"].id).update(email="only-e")
    assert await User.objects.filter(email="only-e").values_list(
        "username", flat=True
    ) == ["e"]


async def test_bulk_create_refuses_bad_options_before_sql(
    db: Database, sql: StatementLog
) -> None:
    two = [User(username="a"), User(username="a")]
    cases: list[tuple[dict[str, object], str]] = [
        ({"ignore_conflicts": True, "update_conflicts": True}, "mutually exclusive"),
        (
            {"update_conflicts": True, "unique_fields": ["username"]},
            "needs update_fields",
        ),
        ({"update_conflicts": True, "update_fields": ["email"]}, "needs unique_fields"),
        ({"update_fields": ["email"]}, "only apply with update_conflicts"),
        ({"batch_size": 0}, "positive int"),
        (
            {
                "update_conflicts": True,
                "update_fields": ["id"],
                "unique_fields": ["username"],
            },
            "primary key",
        ),
        (
            {
                "update_conflicts": True,
                "update_fields": ["email"],
                "unique_fields": ["username"],
            },
            "two User rows with username='a' in one batch",
        ),
    ]
    for options, message in cases:
        with pytest.raises(ValueError, match=message):
            await User.objects.bulk_create(two, **options)  # type: ignore[arg-type]
    with pytest.raises(FieldError, match="'nope' into a column of User"):
        await User.objects.bulk_create(
            two,
            update_conflicts=True,
            update_fields=["nope"],
            unique_fields=["username"],
        )
    with pytest.raises(TypeError, match="takes User instances, not Note"):
        await User.objects.bulk_create([Note(text="x")])  # type: ignore[list-item]
    assert len(sql) == 0
    saved = await User.objects.create(username="saved")
    with pytest.raises(ValueError, match="already saved"):
        await User.objects.bulk_create([saved])


async def test_bulk_create_is_one_transaction(db: Database) -> None:
    """A failing batch rolls back the batches before it (autocommit mode)."""
    await User.objects.create(username="taken")
    with pytest.raises(IntegrityError):
        await User.objects.bulk_create(
            [User(username="new1"), User(username="taken")], batch_size=1
        )
    assert await User.objects.count() == 1
    assert await User.objects.bulk_create([]) == []


# -- lookups: the per-backend differences docs/django-parity.md states ------------------


async def test_empty_in_matches_nothing(db: Database) -> None:
    await make_users()
    assert await User.objects.filter(username__in=[]).count() == 0
    assert await User.objects.exclude(username__in=[]).count() == 4


async def test_in_with_tens_of_thousands_of_values(
    db: Database, sql: StatementLog
) -> None:
    """40,000 values in one __in: beyond asyncpg's 32,767 and SQLite's 32,766
    bind parameters. Sent as one array (PostgreSQL) or one JSON text (SQLite)."""
    users = await make_users()
    ids = [*range(10**6, 10**6 + 40_000), users[1].id, users[3].id]
    assert names(await User.objects.filter(id__in=ids).order_by("id")) == ["bob", "dee"]
    assert await User.objects.exclude(id__in=ids).count() == 2
    assert await User.objects.filter(Q(id__in=ids) | Q(age=40)).count() == 3
    assert await User.objects.filter(id__in=ids).update(email="many") == 2
    names_in = [f"nobody-{i}" for i in range(40_000)] + ["cy"]
    assert await User.objects.filter(username__in=names_in).count() == 1
    # No statement carries the values in its SQL text.
    assert all("1000123" not in statement for statement in sql.statements)


async def test_case_of_contains_and_iexact_per_backend(db: Database) -> None:
    await User.objects.create(username="Ärger", email="MiXed")
    contains = await User.objects.filter(email__contains="mixed").exists()
    # Case-sensitive on PostgreSQL only: MariaDB's default collation and SQLite's
    # LIKE fold (ASCII) case.
    assert contains is (db.backend != "postgresql")
    assert await User.objects.filter(email__icontains="mixed").exists()
    unicode_fold = await User.objects.filter(username__iexact="ärger").exists()
    # SQLite's lower() folds ASCII only.
    assert unicode_fold is (db.backend != "sqlite")


async def test_regex_and_iregex(db: Database) -> None:
    """Case-sensitive ``regex`` and Unicode-folding ``iregex`` on every backend
    (MariaDB whatever the collation); the pattern is a bind parameter."""
    for i, text in enumerate(("Hello", "hello", "ÄBC", "äbc", "a.b", "axb")):
        await User.objects.create(username=f"u{i}", email=text)
    await User.objects.create(username="nobody", email="", nickname=None)

    async def matching(**lookup: str) -> list[str]:
        return (
            await User.objects.filter(**lookup)
            .order_by("id")
            .values_list("email", flat=True)
        )

    assert await matching(email__regex="^H") == ["Hello"]
    assert await matching(email__iregex="^h") == ["Hello", "hello"]
    assert await matching(email__regex="^ä") == ["äbc"]
    assert await matching(email__iregex="^ä") == ["ÄBC", "äbc"]
    assert await matching(email__regex=r"^a\.b$") == ["a.b"]
    assert await matching(email__regex="'; DROP TABLE users; --") == []
    # exclude keeps NULLs, as for every lookup
    assert await User.objects.exclude(nickname__regex="x").count() == 7
    with pytest.raises(TypeError, match=r"User.username__regex needs a pattern"):
        User.objects.filter(username__regex=3)


async def test_only_and_defer(db: Database) -> None:
    await make_users()
    async with db.session() as session:
        ann = await User.objects.only("username").get(username="ann")
        state = inspect(ann)
        assert {"id", "username"} <= set(state.dict)
        assert {"email", "age"} <= state.unloaded
        await session.refresh(ann, ["email"])  # the documented way to load later
        assert ann.email == "a@x"
    async with db.session():
        bob = await User.objects.defer("email", "age").get(username="bob")
        assert {"email", "age"} <= inspect(bob).unloaded
        assert bob.nickname == "b"
    async with db.session():
        # Django's rules: (only or all) minus deferred, the pk always loaded;
        # defer(None) clears the deferrals.
        cy = (
            await User.objects.only("username", "email")
            .defer("email")
            .get(username="cy")
        )
        assert inspect(cy).unloaded >= {"email", "age", "nickname"}
        assert "id" in inspect(cy).dict
        full = await User.objects.defer("email").defer(None).get(username="dee")
        assert not inspect(full).unloaded - {"articles"}
    with pytest.raises(FieldError, match="'articles' into a column of User in only"):
        User.objects.only("articles")
    with pytest.raises(TypeError, match=r"defer\(None\) clears"):
        User.objects.defer(None, "email")


async def test_custom_queryset_as_manager_and_from_queryset(db: Database) -> None:
    ann = await User.objects.create(username="ann")
    for title, published in (("a-1", True), ("a-2", False), ("b-1", True)):
        await Article.objects.create(title=title, published=published, author=ann)
    # as_manager(): the model attribute is the custom QuerySet; methods chain
    assert await Article.stories.published().titles() == ["a-1", "b-1"]
    assert await Article.stories.filter(title__startswith="a").published().titles() == [
        "a-1"
    ]
    assert await Article.stories.published().titled("b").count() == 1
    assert (await Article.stories.get(title="a-2")).published is False
    # from_queryset(): a Manager class with the custom methods copied on
    manager: Any = Article.story_manager  # its copied methods are run-time only
    assert type(manager).__name__ == "ManagerFromArticleQuerySet"
    assert await manager.titled("a").published().titles() == ["a-1"]
    assert await manager.filter(published=False).titles() == ["a-2"]
    assert await manager.titles() == ["a-1", "a-2", "b-1"]
    # As on a Manager, emptying the table takes an explicit all()
    with pytest.raises(TypeError, match=r"Article.objects.all\(\).delete\(\)"):
        await Article.stories.delete()
    assert not hasattr(Article.story_manager, "delete")
    assert await Article.stories.published().delete() == (2, {"Article": 2})
    assert await Article.stories.all().delete() == (1, {"Article": 1})
    with pytest.raises(TypeError, match="takes a QuerySet subclass"):
        Manager.from_queryset(Article)  # type: ignore[arg-type]


LOOKUP_CASES = [
    ("age", 20, ["bob", "dee"]),
    ("age__exact", 30, ["ann"]),
    ("username__iexact", "ANN", ["ann"]),
    ("email__contains", "@y", ["cy", "dee"]),
    ("email__icontains", "@Y", ["cy", "dee"]),
    ("age__in", [20, 40], ["bob", "cy", "dee"]),
    ("age__in", [], []),
    ("age__gt", 20, ["ann", "cy"]),
    ("age__gte", 30, ["ann", "cy"]),
    ("age__lt", 30, ["bob", "dee"]),
    ("age__lte", 30, ["ann", "bob", "dee"]),
    ("username__startswith", "b", ["bob"]),
    ("username__istartswith", "B", ["bob"]),
    ("email__endswith", "@x", ["ann", "bob"]),
    ("email__iendswith", "@X", ["ann", "bob"]),
    ("age__range", (25, 40), ["ann", "cy"]),
    ("nickname__isnull", True, ["ann", "cy"]),
    ("nickname__isnull", False, ["bob", "dee"]),
    ("nickname", None, ["ann", "cy"]),
    ("username__regex", "^(a|c)", ["ann", "cy"]),
    ("username__iregex", "^(A|C)", ["ann", "cy"]),
    ("pk__in", [], []),
    ("email__contains", "%", []),  # LIKE wildcards are matched literally
    ("email__startswith", "_", []),
]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    LOOKUP_CASES,
    ids=[f"{k}={v!r}" for k, v, _ in LOOKUP_CASES],
)
async def test_every_lookup(
    db: Database, key: str, value: object, expected: list[str]
) -> None:
    """Each Django lookup, filtered and excluded, on every backend."""
    await make_users()
    found = await User.objects.filter(**{key: value}).order_by("username")
    assert names(found) == expected
    # exclude() is the complement, NULL rows included (Django's semantics)
    rest = await User.objects.exclude(**{key: value}).order_by("username")
    assert sorted(names(rest) + expected) == ["ann", "bob", "cy", "dee"]


async def test_an_explicit_none_stores_null_not_the_default(db: Database) -> None:
    """Django writes NULL for a field given as None, even where the field has a
    default; only a field not given at all takes its default."""
    given = await Counter.objects.create(name="given", count=None, level=None)
    assert (given.count, given.level) == (None, None)
    defaulted = await Counter.objects.create(name="defaulted")
    assert (defaulted.count, defaulted.level) == (2, 3)
    made, created = await Counter.objects.get_or_create(
        name="goc", defaults={"count": None, "level": None}
    )
    assert created
    assert (made.count, made.level) == (None, None)
    async with db.session():
        inside, created = await Counter.objects.get_or_create(
            name="in-session", defaults={"count": None}
        )
    assert created
    assert inside.count is None
    updated, created = await Counter.objects.update_or_create(
        name="upd", defaults={"count": None}
    )
    assert created
    assert updated.count is None
    await Counter.objects.bulk_create(
        [Counter(name="b1", count=None, level=None), Counter(name="b2")]
    )
    rows = await Counter.objects.values_list("name", "count", "level")
    stored = {name: (count, level) for name, count, level in rows}
    assert stored == {
        "given": (None, None),
        "defaulted": (2, 3),
        "goc": (None, None),
        "in-session": (None, 3),
        "upd": (None, 3),
        "b1": (None, None),
        "b2": (2, 3),
    }


async def test_bulk_create_takes_foreign_keys_from_related_objects(
    db: Database, sql: StatementLog
) -> None:
    """``Article(author=ann)`` stores ann's key, as Django does; an unsaved
    related object is refused before any SQL, naming the relation."""
    ann = await User.objects.create(username="ann")
    bob = await User.objects.create(username="bob")
    await Article.objects.bulk_create(
        [
            Article(title="by relation", author=ann),
            Article(title="by key", author_id=bob.id),
        ]
    )
    assert await Article.objects.order_by("title").values_list(
        "title", "author_id"
    ) == [("by key", bob.id), ("by relation", ann.id)]
    sent = len(sql)
    with pytest.raises(ValueError, match="unsaved related object 'author'") as info:
        await Article.objects.bulk_create(
            [Article(title="orphan", author=User(username="unsaved"))]
        )
    assert "Article.author" in str(info.value)
    assert len(sql) == sent
    assert not await User.objects.filter(username="unsaved").exists()


async def test_lookup_values_are_prepared_for_their_field(db: Database) -> None:
    """Django's get_prep_value: text given for a number, a date or a boolean
    means that value, on every backend (PostgreSQL refused the comparison and
    SQLite answered no rows before)."""
    user = await User.objects.create(username="ann", age=30)
    seen = dt.datetime(2005, 7, 27, 0, 0, 0)
    await Counter.objects.create(
        name="c", seen=seen, day=dt.date(2005, 7, 27), active=True
    )
    assert (await User.objects.get(id=str(user.id))).id == user.id
    assert await User.objects.filter(id__in=[str(user.id), "0"]).count() == 1
    assert await User.objects.filter(age__gte="30", age__lt="31").count() == 1
    assert await User.objects.filter(age__range=("29", "31")).count() == 1
    assert await Counter.objects.filter(seen="2005-07-27 00:00:00").count() == 1
    assert await Counter.objects.filter(seen__gte=dt.date(2005, 7, 27)).count() == 1
    assert await Counter.objects.filter(day="2005-07-27").count() == 1
    assert await Counter.objects.filter(active="1").count() == 1
    assert await Counter.objects.filter(active="false").count() == 0
    # Text lookups on a number cast the column, as Django does.
    assert await User.objects.filter(age__startswith=3).count() == 1
    assert await User.objects.filter(age__contains="0").count() == 1


async def test_values_that_do_not_fit_their_field_name_it(
    db: Database, sql: StatementLog
) -> None:
    """ValueError with Django's wording and the model and field, before any
    SQL is sent."""
    with pytest.raises(
        ValueError, match=r"Field 'id' expected a number but got 'abc'\. \(User\.id\)"
    ):
        await User.objects.filter(id="abc").count()
    with pytest.raises(ValueError, match=r"Field 'age' expected a number.*User\.age"):
        await User.objects.create(username="old", age="old")
    with pytest.raises(ValueError, match=r"invalid format.*Counter\.seen"):
        await Counter.objects.filter(seen="yesterday").exists()
    with pytest.raises(ValueError, match=r"must be either True or False.*Counter"):
        await Counter.objects.filter(active="perhaps").exists()
    with pytest.raises(TypeError, match=r"User\.username__exact got a callable"):
        await User.objects.filter(username=str.upper).exists()
    assert len(sql) == 0
    # get_or_create looks first (as Django's does), then refuses to create.
    with pytest.raises(ValueError, match=r"Field 'age' expected a number.*User\.age"):
        await User.objects.get_or_create(username="old", defaults={"age": "old"})
    assert await User.objects.count() == 0
    # A value that fits is converted on the way in too.
    made = await User.objects.create(username="young", age="7")
    assert (await User.objects.get(id=made.id)).age == 7


async def test_relationships_take_a_primary_key_or_an_object(db: Database) -> None:
    """Django: ``filter(author=5)``, ``author__in=[ids or objects]`` and
    ``update(author=obj)`` go by the foreign key."""
    ann = await User.objects.create(username="ann")
    bob = await User.objects.create(username="bob")
    await Article.objects.create(title="a", author_id=ann.id)
    await Article.objects.create(title="b", author_id=bob.id)

    async def titles(**lookup: Any) -> list[str]:
        qs = Article.objects.filter(**lookup).order_by("title")
        return list(await qs.values_list("title", flat=True))

    assert await titles(author=ann.id) == ["a"]
    assert await titles(author=str(bob.id)) == ["b"]
    assert await titles(author=ann) == ["a"]
    assert await titles(author__in=[ann, bob.id]) == ["a", "b"]
    assert await titles(author__in=[]) == []
    assert await Article.objects.filter(title="a").update(author=bob) == 1
    assert await titles(author=bob) == ["a", "b"]
    assert await Article.objects.filter(title="b").update(author=ann.id) == 1
    assert await titles(author=ann) == ["b"]
    with pytest.raises(ValueError, match=r"unsaved User"):
        await titles(author=User(username="nobody"))


async def items_with_tags(db: Database) -> dict[str, int]:
    """red: tags a and b; blue: tag a; plain: no tag. grand > child > kid."""
    tags = {n: (await Tag.objects.create(name=n)).id for n in ("a", "b")}
    async with db.session() as session:
        tag_a = await session.get_one(Tag, tags["a"])
        tag_b = await session.get_one(Tag, tags["b"])
        grand = Item(name="grand")
        child = Item(name="child", parent=grand)
        session.add_all(
            [
                Item(name="red", tags=[tag_a, tag_b]),
                Item(name="blue", tags=[tag_a]),
                Item(name="plain"),
                grand,
                child,
                Item(name="kid", parent=child),
            ]
        )
    return tags


async def item_names(qs: Any) -> list[str]:
    return sorted(await qs.values_list("name", flat=True))


async def test_one_filter_call_means_one_related_row(db: Database) -> None:
    """Django, "Spanning multi-valued relationships": conditions in one filter()
    call hold for one related row together; in chained calls, for any rows."""
    tags = await items_with_tags(db)
    a, b = tags["a"], tags["b"]
    assert await item_names(Item.objects.filter(tags__id=a).filter(tags__id=b)) == [
        "red"
    ]
    assert await item_names(Item.objects.filter(Q(tags__id=a) & Q(tags__id=b))) == []
    assert await item_names(Item.objects.filter(Q(tags__id=a), Q(tags__id=b))) == []
    assert await item_names(Item.objects.filter(tags__id=a, tags__name="b")) == []
    assert await item_names(Item.objects.filter(tags__id=a, tags__name="a")) == [
        "blue",
        "red",
    ]
    assert await item_names(Item.objects.filter(Q(tags__id=a) | Q(tags__id=b))) == [
        "blue",
        "red",
    ]
    # exclude() does not tie its conditions to one row (Django's documented
    # difference): red has a tag a and a tag named b, so it goes.
    assert await item_names(
        Item.objects.filter(name__in=["red", "blue", "plain"]).exclude(
            tags__id=a, tags__name="b"
        )
    ) == ["blue", "plain"]


async def test_isnull_across_relationships_is_an_outer_join(db: Database) -> None:
    """Django: ``tags__id__isnull=True`` matches rows with no related row at
    all; ``exclude(parent__parent__isnull=True)`` keeps only rows whose
    grandparent exists."""
    await items_with_tags(db)
    assert await item_names(Item.objects.filter(tags__id__isnull=True)) == [
        "child",
        "grand",
        "kid",
        "plain",
    ]
    assert await item_names(Item.objects.filter(tags__id__isnull=False)) == [
        "blue",
        "red",
    ]
    assert await item_names(Item.objects.exclude(parent__parent__isnull=True)) == [
        "kid"
    ]
    assert await item_names(Item.objects.filter(parent__parent__isnull=False)) == [
        "kid"
    ]
    assert await item_names(
        Item.objects.filter(parent__parent__isnull=True, name__in=["child", "kid"])
    ) == ["child"]
    assert await item_names(
        Item.objects.filter(parent__isnull=True, tags__isnull=True)
    ) == [
        "grand",
        "plain",
    ]


async def test_small_django_answers(db: Database, sql: StatementLog) -> None:
    """aggregate() with nothing asks nothing; Avg over a Numeric column is a
    Decimal; a property with a setter works in create() and defaults."""
    assert await Counter.objects.aggregate() == {}
    assert len(sql) == 0
    await Counter.objects.create(name="x", ratio=Decimal("1.25"))
    await Counter.objects.create(name="y", ratio=Decimal("2.50"))
    average = (await Counter.objects.aggregate(Avg("ratio")))["ratio__avg"]
    assert isinstance(average, Decimal)
    assert round(average, 3) == Decimal("1.875")
    assert (await Counter.objects.aggregate(Avg("count")))["count__avg"] == 2.0
    made = await Counter.objects.create(title="Titled")
    assert made.name == "titled"
    found, created = await Counter.objects.get_or_create(
        name="other", defaults={"title": "Other"}
    )
    assert (created, found.name) == (True, "other")


async def test_bulk_create_and_in_bulk_refuse_what_django_refuses(
    db: Database,
) -> None:
    with pytest.raises(ValueError, match=r"concrete fields in update_fields"):
        await Article.objects.bulk_create(
            [Article(title="t", author_id=1)],
            update_conflicts=True,
            update_fields=["author"],
            unique_fields=["title"],
        )
    with pytest.raises(ValueError, match=r"concrete fields in unique_fields"):
        await Article.objects.bulk_create(
            [Article(title="t", author_id=1)],
            update_conflicts=True,
            update_fields=["title"],
            unique_fields=["author"],
        )
    with pytest.raises(ValueError, match=r"must be a unique field but Counter\.code"):
        await Counter.objects.in_bulk(["a"], field_name="code")


async def test_f_expressions(db: Database) -> None:
    """F() in update() (an atomic counter), filter(), order_by() with NULLs
    placed, and update_or_create() defaults."""
    await Counter.objects.create(name="hits", count=0, level=5)
    await Counter.objects.create(name="low", count=1, level=3)
    await Counter.objects.create(name="none", count=None, level=3)
    hits = Counter.objects.filter(name="hits")

    # 40 tasks each add one at once: the UPDATE computes it, nothing is lost.
    await asyncio.gather(*(hits.update(count=F("count") + 1) for _ in range(40)))
    assert (await hits.get()).count == 40

    assert await item_names(Counter.objects.filter(count__gt=F("level"))) == ["hits"]
    assert await item_names(Counter.objects.filter(level__lt=F("count") * 2 - 35)) == [
        "hits"
    ]
    assert await item_names(Counter.objects.filter(count=F("level") - 2)) == ["low"]

    order = Counter.objects.order_by(F("count").desc(nulls_last=True), "name")
    assert [c.name for c in await order] == ["hits", "low", "none"]
    assert [c.name for c in await order.reverse()] == ["none", "low", "hits"]
    order = Counter.objects.order_by(F("count").asc(nulls_first=True))
    assert [c.name for c in await order] == ["none", "low", "hits"]

    counter, created = await Counter.objects.update_or_create(
        name="low", defaults={"count": F("count") + 10}
    )
    assert (created, counter.count) == (False, 11)
    assert (await Counter.objects.get(name="low")).count == 11
    with pytest.raises(FieldError, match="'nope'"):
        await hits.update(count=F("nope") + 1)


async def test_none_distinct_latest_earliest_iterator(
    db: Database, sql: StatementLog
) -> None:
    for name, count in (("a", 3), ("b", 1), ("c", 2)):
        await Counter.objects.create(name=name, count=count)
    sent = len(sql)
    nothing = Counter.objects.none()
    assert await nothing == []
    assert await nothing.count() == 0
    assert not await nothing.exists()
    assert await nothing.filter(name="a").values_list("name") == []
    assert await nothing.update(count=9) == 0
    assert await nothing.delete() == (0, {})
    assert await Counter.objects.filter(name="a").none().get_or_none() is None
    assert [c async for c in nothing] == []
    assert len(sql) == sent  # none() sends nothing, as in Django
    assert (await Counter.objects.latest("count")).name == "a"
    assert (await Counter.objects.earliest("count")).name == "b"
    assert (await Counter.objects.latest("-count")).name == "b"
    assert (await Counter.objects.filter(count__gte=2).earliest("name")).name == "a"
    with pytest.raises(Counter.DoesNotExist):
        await Counter.objects.filter(name="zzz").latest("count")
    with pytest.raises(ValueError, match="needs field names"):
        await Counter.objects.latest()
    await Article.objects.create(
        title="t1", author=await User.objects.create(username="u")
    )
    authors = User.objects.filter(articles__title__startswith="t")
    assert await authors.distinct().count() == 1
    seen = [
        c.name async for c in Counter.objects.order_by("name").iterator(chunk_size=2)
    ]
    assert seen == ["a", "b", "c"]
    with pytest.raises(ValueError, match="strictly positive"):
        [c async for c in Counter.objects.iterator(chunk_size=0)]


async def test_select_for_update_claims_each_job_once(db: Database) -> None:
    """Workers claiming jobs with select_for_update(skip_locked=True), the
    canonical use: 8 workers, 24 jobs, each job claimed exactly once."""
    for n in range(24):
        await Counter.objects.create(name=f"job-{n:02}")
    claims: list[str] = []

    async def worker() -> None:
        while True:
            async with db.session():
                job = await (
                    Counter.objects.filter(active=None)
                    .order_by("id")
                    .select_for_update(skip_locked=True)
                    .first()
                )
                if job is None:
                    return
                await Counter.objects.filter(id=job.id).update(active=True)
                await asyncio.sleep(0.005)  # hold the lock a little
            claims.append(job.name)

    await asyncio.gather(*(worker() for _ in range(8)))
    assert sorted(claims) == [f"job-{n:02}" for n in range(24)]
    assert await Counter.objects.filter(active=True).count() == 24
    with pytest.raises(TransactionManagementError, match="outside of a transaction"):
        await Counter.objects.select_for_update().filter(name="job-00")
    with pytest.raises(
        ValueError, match="nowait option cannot be used with skip_locked"
    ):
        Counter.objects.select_for_update(nowait=True, skip_locked=True)
    with pytest.raises(FieldError, match="select_for_update"):
        Counter.objects.select_for_update(of=("nope",))


async def test_get_or_create_on_a_field_with_a_partial_unique_index(
    db: Database,
) -> None:
    """A partial unique index (postgresql_where=) is no ON CONFLICT target:
    get_or_create falls back to its other path instead of failing (it raised
    "Boolean value of this clause is not defined" on PostgreSQL before)."""
    first, created = await Counter.objects.get_or_create(
        code="x", defaults={"name": "p"}
    )
    again, created_again = await Counter.objects.get_or_create(code="x")
    assert (created, created_again, again.id) == (True, False, first.id)


DATE_PARTS = {
    # 2021-01-03 is a Sunday in ISO week 53 of 2020; 2024-07-15 a Monday.
    "sun": (dt.datetime(2021, 1, 3, 10, 20, 30), dt.date(2021, 1, 3)),
    "mon": (dt.datetime(2024, 7, 15, 23, 59, 59, 500000), dt.date(2024, 7, 15)),
}


@pytest.mark.parametrize(
    ("lookup", "value", "expected"),
    [
        ("seen__year", 2021, ["sun"]),
        ("seen__year__gte", 2022, ["mon"]),
        ("seen__iso_year", 2020, ["sun"]),
        ("seen__quarter", 3, ["mon"]),
        ("seen__month__in", [1, 7], ["mon", "sun"]),
        ("seen__week", 53, ["sun"]),
        ("seen__week", 29, ["mon"]),
        ("seen__week_day", 1, ["sun"]),  # Django: 1 = Sunday
        ("seen__iso_week_day", 1, ["mon"]),  # ISO: 1 = Monday
        ("seen__iso_week_day", 7, ["sun"]),
        ("seen__day", 15, ["mon"]),
        ("seen__hour__lt", 12, ["sun"]),
        ("seen__minute", 59, ["mon"]),
        ("seen__second", 59, ["mon"]),
        ("seen__second", "30", ["sun"]),  # prepared as a number
        ("seen__date", dt.date(2024, 7, 15), ["mon"]),
        ("seen__date__gt", "2022-01-01", ["mon"]),
        ("seen__date__range", (dt.date(2021, 1, 1), dt.date(2021, 1, 31)), ["sun"]),
        ("seen__time", dt.time(10, 20, 30), ["sun"]),
        (
            "seen__time__range",
            (dt.time(23, 59, 59), dt.time(23, 59, 59, 999999)),
            ["mon"],
        ),
        ("seen__time__gte", dt.time(12), ["mon"]),
        ("seen__time__lt", "12:00", ["sun"]),  # prepared as a time
        ("day__year", 2024, ["mon"]),
        ("day__week_day", 2, ["mon"]),
        ("day__week", 53, ["sun"]),
        ("seen__year__isnull", True, ["none"]),
    ],
)
async def test_date_transforms(
    db: Database, lookup: str, value: Any, expected: list[str]
) -> None:
    """Django's date and time transforms, chained with lookups, with Django's
    numbering, the same on every backend."""
    for name, (seen, day) in DATE_PARTS.items():
        await Counter.objects.create(name=name, seen=seen, day=day)
    await Counter.objects.create(name="none")
    assert await item_names(Counter.objects.filter(**{lookup: value})) == expected


async def test_date_transforms_refuse_what_a_type_has_not(db: Database) -> None:
    with pytest.raises(FieldError, match=r"Unsupported lookup 'hour' for Counter\.day"):
        Counter.objects.filter(day__hour=1)
    with pytest.raises(
        FieldError, match=r"Unsupported lookup 'year' for Counter\.name"
    ):
        Counter.objects.filter(name__year=2020)
    with pytest.raises(ValueError, match=r"expected a number"):
        Counter.objects.filter(seen__year="soon")
    with pytest.raises(FieldError, match=r"Unsupported lookup 'time' for Counter\.day"):
        Counter.objects.filter(day__time=dt.time(1))


async def test_values_and_order_by_across_relationships(db: Database) -> None:
    """Django's ``values("author__username")`` and ``order_by("author__username")``
    through many-to-one steps (a missing link gives None) and to-many steps
    (a row per related row); a column object is refused with a clear error."""
    ann = await User.objects.create(username="ann")
    zed = await User.objects.create(username="zed")
    await Article.objects.create(title="b", author_id=zed.id)
    await Article.objects.create(title="a", author_id=ann.id)
    rows = await Article.objects.order_by("author__username").values(
        "title", "author__username"
    )
    assert rows == [
        {"title": "a", "author__username": "ann"},
        {"title": "b", "author__username": "zed"},
    ]
    assert await Article.objects.order_by("-author__username").values_list(
        "title", flat=True
    ) == ["b", "a"]
    await items_with_tags(db)
    pairs = await Item.objects.order_by("name").values_list(
        "name", "parent__parent__name"
    )
    assert pairs == [
        ("blue", None),
        ("child", None),
        ("grand", None),
        ("kid", "grand"),
        ("plain", None),
        ("red", None),
    ]
    # through a to-many relationship: a row per related row, as Django's JOIN
    two = Item.objects.filter(name__in=["red", "blue"])
    by_tag = two.order_by("tags__name", "name")
    assert [i.name for i in await by_tag] == ["blue", "red", "red"]
    assert [i.name for i in await two.order_by("-tags__name", "name")] == [
        "red",
        "blue",
        "red",
    ]
    assert await by_tag.count() == 2  # Django's count() drops the order
    assert await by_tag.values_list("name", "tags__name") == [
        ("blue", "a"),
        ("red", "a"),
        ("red", "b"),
    ]  # one JOIN for the column and the order
    with pytest.raises(FieldError, match="'nope' into a column of Tag"):
        Item.objects.order_by("tags__nope")
    with pytest.raises(TypeError, match=r"takes field names as strings.*'title'"):
        await Article.objects.values_list(Article.title)  # type: ignore[call-overload]


async def test_update_on_a_joined_inheritance_subclass(db: Database) -> None:
    """Django: ``Dog.objects.filter(...).update(name=..., breed=...)`` sets the
    parent table's column and the child's, on the matching rows only."""
    rex = await Dog.objects.create(name="rex", breed="pug")
    await Dog.objects.create(name="fido", breed="pug")
    await Animal.objects.create(name="rex")  # an Animal, not a Dog: untouched
    matched = await Dog.objects.filter(name="rex").update(name="max", breed="lab")
    assert matched == 1
    assert await Dog.objects.order_by("name").values_list("name", "breed") == [
        ("fido", "pug"),
        ("max", "lab"),
    ]
    assert (await Dog.objects.get(name="max")).animal_id == rex.animal_id
    assert await Animal.objects.order_by("name").values_list("name", flat=True) == [
        "fido",
        "max",
        "rex",
    ]
    assert await Dog.objects.filter(breed="pug").update(name="pugs") == 1
    assert await Dog.objects.filter(name="nobody").update(name="x", breed="y") == 0


async def test_a_queryset_as_a_lookup_value_is_a_subquery(
    db: Database, sql: StatementLog
) -> None:
    """``author__in=User.objects.filter(...)``: one statement, no round trip."""
    ann = await User.objects.create(username="ann", age=30)
    bob = await User.objects.create(username="bob", age=20)
    await Article.objects.create(title="a", author_id=ann.id)
    await Article.objects.create(title="b", author_id=bob.id)
    selects = sql.count(lambda s: s.lstrip().startswith("SELECT"))
    adults = User.objects.filter(age__gte=25)
    titles = await Article.objects.filter(author__in=adults).values_list(
        "title", flat=True
    )
    assert titles == ["a"]
    assert sql.count(lambda s: s.lstrip().startswith("SELECT")) == selects + 1
    assert await User.objects.filter(id__in=adults).count() == 1
    assert await Article.objects.filter(author__in=User.objects.none()).count() == 0
    assert await Article.objects.exclude(author__in=adults).count() == 1


async def test_annotate(db: Database) -> None:
    """Django's annotate(): aggregates over a relationship per row, with
    distinct= and filter=, then filtered on, ordered by and read back."""
    ann = await User.objects.create(username="ann", age=30)
    bob = await User.objects.create(username="bob", age=20)
    await User.objects.create(username="cy", age=40)
    for title, author, published in (
        ("a1", ann, True),
        ("a2", ann, False),
        ("a3", ann, True),
        ("b1", bob, True),
    ):
        await Article.objects.create(
            title=title, author_id=author.id, published=published
        )
    # Annotations are attributes added at run time: typed as Any here.
    users: list[Any] = await User.objects.annotate(
        n=Count("articles"),
        shown=Count("articles", filter=Q(articles__published=True)),
    ).order_by("-n", "username")
    assert [(u.username, u.n, u.shown) for u in users] == [
        ("ann", 3, 2),
        ("bob", 1, 1),
        ("cy", 0, 0),
    ]
    busy = User.objects.annotate(n=Count("articles")).filter(n__gte=2)
    assert [u.username for u in await busy] == ["ann"]
    assert await busy.count() == 1
    bob_counted: Any = await User.objects.annotate(Count("articles")).get(
        username="bob"
    )
    assert bob_counted.articles__count == 1
    # Two annotations over different relationships do not multiply each other.
    await items_with_tags(db)
    tagged: list[Any] = await Item.objects.annotate(
        tags_n=Count("tags"), kids=Count("tags__id", distinct=True)
    ).filter(name="red")
    assert [(i.tags_n, i.kids) for i in tagged] == [(2, 2)]
    rows = (
        await User.objects.annotate(n=Count("articles"))
        .order_by("username")
        .values("username", "n")
    )
    assert rows == [
        {"username": "ann", "n": 3},
        {"username": "bob", "n": 1},
        {"username": "cy", "n": 0},
    ]
    oldest: Any = (
        await Article.objects.annotate(age=Max("author__age"))
        .order_by("-age", "title")
        .first()
    )
    assert oldest is not None
    assert (oldest.title, oldest.age) == ("a1", 30)
    with pytest.raises(ValueError, match="conflicts with a field"):
        User.objects.annotate(age=Count("articles"))


async def test_contains_and_explain(db: Database) -> None:
    """Django's ``contains(obj)`` (by primary key, Django's errors) and
    ``explain()`` (the database's plan, as text)."""
    ann = await User.objects.create(username="ann", age=30)
    bob = await User.objects.create(username="bob", age=20)
    older = User.objects.filter(age__gt=25)
    assert await older.contains(ann) is True
    assert await older.contains(bob) is False
    with pytest.raises(ValueError, match="cannot be used on unsaved objects"):
        await older.contains(User(username="new"))
    with pytest.raises(TypeError, match="'obj' must be a User instance"):
        await older.contains(Article(title="t"))  # type: ignore[arg-type]
    plan = await older.order_by("username").explain()
    assert isinstance(plan, str)
    assert "users" in plan  # every backend names the table it reads

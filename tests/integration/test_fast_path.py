"""get_or_create's one-statement miss path (PostgreSQL, autocommit): taken only
where it cannot behave differently, and then indistinguishable from the ORM
path. `make test` also runs the get_or_create suites with the path off
(SQLALCHEMY_OBJECTS_FAST_PATH=0)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sqlalchemy_objects import Database, FieldError, QuerySet, _fast_insert
from tests.conftest import StatementLog
from tests.models import Article, User


def on_conflict_inserts(sql: StatementLog) -> list[str]:
    return [s for s in sql.statements if "ON CONFLICT" in s.upper()]


@pytest.fixture
def fast(db: Database) -> bool:
    """Whether this run takes the one-statement path for an eligible miss."""
    return db.backend == "postgresql" and db.fast_get_or_create


async def test_an_eligible_miss_is_one_insert(
    db: Database, sql: StatementLog, fast: bool
) -> None:
    user, created = await User.objects.get_or_create(
        username="ann", defaults={"email": "a@x"}
    )
    assert created
    inserts = on_conflict_inserts(sql)
    if fast:
        assert len(inserts) == 1, sql.statements
        assert "ON CONFLICT (username) DO NOTHING RETURNING" in inserts[0]
    else:
        assert inserts == []
    sql.statements.clear()
    again, created = await User.objects.get_or_create(username="ann")
    assert (again.id, created) == (user.id, False)
    assert sql.count(lambda s: not s.startswith("BEGIN")) == 1  # a hit: one SELECT
    by_pk, created = await User.objects.get_or_create(
        pk=user.id, defaults={"username": "x"}
    )
    assert (by_pk.username, created) == ("ann", False)


async def test_both_paths_leave_the_same_object_state(db: Database) -> None:
    """Server and Python defaults loaded, detached with an identity,
    relationships unloaded: the same after either path."""
    states = []
    for on, name in ((True, "fast"), (False, "orm")):
        db.fast_get_or_create = on
        user, created = await User.objects.get_or_create(
            username=name, defaults={"age": 7}
        )
        assert created
        state = inspect(user)
        states.append(
            (
                state.detached,
                state.identity is not None,
                sorted(state.unloaded),
                user.email,
                user.status,
                user.age,
                user.nickname,
            )
        )
        assert (await User.objects.get(username=name)).id == user.id
    assert states[0] == states[1]
    assert states[0] == (True, True, ["articles"], "", "new", 7, None)


@pytest.mark.parametrize(
    ("lookup", "defaults"),
    [
        ({"username__iexact": "ann"}, {"username": "ann"}),  # operator lookup
        ({"email": "a@x"}, {"username": "ann"}),  # not a unique key
        ({"username": "ann", "email": "a@x"}, {}),  # more than the key
    ],
    ids=["operator", "not-unique", "key-plus-more"],
)
async def test_lookups_that_are_not_exactly_a_unique_key_take_the_orm_path(
    db: Database, sql: StatementLog, lookup: dict[str, Any], defaults: dict[str, Any]
) -> None:
    _, created = await User.objects.get_or_create(defaults=defaults, **lookup)
    assert created
    assert on_conflict_inserts(sql) == []


async def test_insert_and_flush_listeners_send_it_to_the_orm_path(
    db: Database, sql: StatementLog
) -> None:
    seen: list[str] = []

    def before_insert(mapper: Any, connection: Any, target: User) -> None:
        seen.append(f"insert {target.username}")

    def before_flush(session: Session, context: Any, instances: Any) -> None:
        seen.append("flush")

    event.listen(User, "before_insert", before_insert)
    try:
        await User.objects.get_or_create(username="ann")
    finally:
        event.remove(User, "before_insert", before_insert)
    event.listen(Session, "before_flush", before_flush)
    try:
        await User.objects.get_or_create(username="bob")
    finally:
        event.remove(Session, "before_flush", before_flush)
    assert seen == ["insert ann", "flush"]
    assert on_conflict_inserts(sql) == []


async def test_a_clash_on_another_unique_key_raises_on_both_paths(
    db: Database,
) -> None:
    """The conflict target is named, so a duplicate nickname is still an
    IntegrityError (after its one retried get), never a silent no-op."""
    await User.objects.create(username="ann", nickname="x")
    for on in (True, False):
        db.fast_get_or_create = on
        with pytest.raises(IntegrityError):
            await User.objects.get_or_create(username="bob", defaults={"nickname": "x"})
    assert await User.objects.count() == 1


async def test_a_lost_race_returns_the_winner(db: Database, fast: bool) -> None:
    """The row appears between our read and our insert: the insert does nothing
    (or raises, on the ORM path), one retried get returns the winner,
    created=False."""
    winner = await User.objects.create(username="ann", email="winner")
    calls = 0
    if fast:
        owner: Any = _fast_insert
        name = "select_one"
    else:
        owner = QuerySet
        name = "_first_or_none"
    original = getattr(owner, name)

    async def miss_once(*args: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:  # as if the winner committed just after our read
            return (True, None) if fast else None
        return await original(*args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(owner, name, miss_once)
        user, created = await User.objects.get_or_create(
            username="ann", defaults={"email": "loser"}
        )
    assert (user.id, user.email, created) == (winner.id, "winner", False)
    assert calls == 2
    assert await User.objects.count() == 1


async def test_load_listeners_and_none_lookups_take_the_orm_path(
    db: Database, sql: StatementLog
) -> None:
    """A load listener must see rows loaded by get_or_create, and a lookup on
    NULL cannot rely on a unique key (NULLs repeat): both take the ORM path."""
    await User.objects.create(username="ann")
    loaded: list[str] = []

    def on_load(target: User, context: Any) -> None:
        loaded.append(target.username)

    event.listen(User, "load", on_load)
    try:
        user, created = await User.objects.get_or_create(username="ann")
    finally:
        event.remove(User, "load", on_load)
    assert (user.username, created, loaded) == ("ann", False, ["ann"])
    _, created = await User.objects.get_or_create(
        nickname=None, defaults={"username": "bob"}
    )
    assert created is False  # ann has no nickname: found, not created
    assert on_conflict_inserts(sql) == []


async def test_a_filtered_manager_keeps_its_filter_after_the_shape_is_cached(
    db: Database,
) -> None:
    """Once Article(title=...) is a known eligible shape, the plain manager
    reads with a prepared SELECT; a manager that pre-filters must not."""
    ann = await User.objects.create(username="ann")
    draft, created = await Article.objects.get_or_create(
        title="x", defaults={"author_id": ann.id}
    )
    assert created
    again, created = await Article.objects.get_or_create(title="x")
    assert (again.id, created) == (draft.id, False)  # the cached shape
    with pytest.raises(IntegrityError):  # the draft is not published
        await Article.published_objects.get_or_create(
            title="x", defaults={"author_id": ann.id}
        )
    with pytest.raises(FieldError):
        await Article.objects.get_or_create(titel="x")

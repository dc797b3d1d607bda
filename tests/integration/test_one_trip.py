"""get_or_create in one round trip on PostgreSQL: a lookup shape that mostly
misses reads and inserts in one statement (``WITH found AS (SELECT ...), ins
AS (INSERT ... SELECT ... WHERE NOT EXISTS (SELECT 1 FROM found) ON CONFLICT
DO NOTHING RETURNING ...)``). A hit through it writes nothing and takes no
sequence value; a concurrent insert that committed after its snapshot is read
by one more SELECT; races stay exact."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from sqlalchemy_objects import Database, _on_conflict
from tests.conftest import StatementLog
from tests.models import Tag, User

pytestmark = pytest.mark.postgresql


@pytest.fixture(name="backend")
def _postgresql_only() -> str:
    """This file's tests run on PostgreSQL only (the conftest's db fixture
    takes its backend from here)."""
    return "postgresql"


@pytest.fixture
def pg(db: Database) -> Database:
    if not (db.one_statement_get_or_create and db.facts.one_trip_get_or_insert):
        pytest.skip("the one-trip miss is PostgreSQL's, with the fast path on")
    return db


async def warm(prefix: str, n: int = 8) -> None:
    """Misses enough to put Tag's ``name`` shape in miss mode."""
    for i in range(n):
        _, created = await Tag.objects.get_or_create(name=f"{prefix}{i}")
        assert created
    assert _on_conflict.expects_miss((Tag, frozenset({"name"})))


def combined(sql: StatementLog) -> list[str]:
    return [s for s in sql.statements if s.lstrip().upper().startswith("WITH FOUND")]


async def sequence_value(db: Database) -> tuple[int, bool]:
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT last_value, is_called FROM tags_id_seq"))
        ).one()
    return int(row[0]), bool(row[1])


async def test_a_mostly_missing_shape_misses_in_one_statement(
    pg: Database, sql: StatementLog
) -> None:
    sql.statements.clear()
    await Tag.objects.get_or_create(name="first")
    assert combined(sql) == []  # a new shape starts with SELECT, then INSERT
    await warm("w")
    sql.statements.clear()
    tag, created = await Tag.objects.get_or_create(name="new", defaults={"label": "L"})
    assert created
    assert (tag.name, tag.label) == ("new", "L")
    assert tag.id is not None
    assert len(sql.statements) == 1, sql.statements  # one round trip
    assert len(combined(sql)) == 1
    assert (await Tag.objects.get(name="new")).id == tag.id
    # the object is as the two-statement path leaves it
    state: Any = inspect(tag)
    assert state.detached
    assert state.identity == (tag.id,)


async def test_a_hit_through_it_writes_nothing(pg: Database, sql: StatementLog) -> None:
    await warm("w")
    existing = await Tag.objects.get(name="w3")
    before = await sequence_value(pg)
    async with pg.engine.connect() as conn:
        xmin = (
            await conn.execute(text("SELECT xmin::text FROM tags WHERE name = 'w3'"))
        ).scalar()
    sql.statements.clear()
    tag, created = await Tag.objects.get_or_create(name="w3", defaults={"label": "no"})
    assert (tag.id, tag.label, created) == (existing.id, existing.label, False)
    assert len(combined(sql)) == 1
    assert len(sql.statements) == 1
    assert await sequence_value(pg) == before  # no sequence value taken
    async with pg.engine.connect() as conn:
        again = (
            await conn.execute(text("SELECT xmin::text FROM tags WHERE name = 'w3'"))
        ).scalar()
    assert again == xmin  # the row was not touched
    assert await Tag.objects.count() == 8


async def test_a_concurrent_insert_after_its_snapshot_is_read_again(
    pg: Database,
) -> None:
    """Another transaction inserted the key and commits while our statement
    waits on it: both parts of our statement are empty, one more SELECT reads
    the winner's row."""
    await warm("w")
    other = create_async_engine(pg.url)
    try:
        async with other.connect() as conn:
            await conn.execute(
                text("INSERT INTO tags (name, label) VALUES ('race', 'theirs')")
            )
            call = asyncio.create_task(
                Tag.objects.get_or_create(name="race", defaults={"label": "ours"})
            )
            await asyncio.sleep(0.5)  # our INSERT waits on their uncommitted row
            assert not call.done()
            await conn.commit()
        tag, created = await call
    finally:
        await other.dispose()
    assert (tag.name, tag.label, created) == ("race", "theirs", False)
    assert await Tag.objects.filter(name="race").count() == 1


async def test_tasks_racing_in_miss_mode(pg: Database) -> None:
    await warm("w")
    for key in ("k1", "k2", "k3"):
        results = await asyncio.gather(
            *(Tag.objects.get_or_create(name=key) for _ in range(24)),
            return_exceptions=True,
        )
        assert not [r for r in results if isinstance(r, BaseException)]
        assert sum(1 for _, created in results if created) == 1  # type: ignore[misc]
        assert len({tag.id for tag, _ in results}) == 1  # type: ignore[misc]
        assert await Tag.objects.filter(name=key).count() == 1


async def test_another_unique_key_still_raises(pg: Database) -> None:
    await warm("w")
    await Tag.objects.create(name="coded", code="C1")
    with pytest.raises(IntegrityError):
        await Tag.objects.get_or_create(name="other", defaults={"code": "C1"})
    assert not await Tag.objects.filter(name="other").exists()
    # and a lookup that the winner of that key satisfies is its row
    tag, created = await Tag.objects.get_or_create(
        name="coded", defaults={"code": "C1"}
    )
    assert (tag.code, created) == ("C1", False)


async def test_callable_defaults_keep_the_two_statement_path(
    pg: Database, sql: StatementLog
) -> None:
    """Django calls a callable default only when creating: the one-trip
    statement would need its value before knowing, so it is not used."""
    await warm("w")
    calls: list[str] = []

    def label() -> str:
        calls.append("called")
        return "made"

    sql.statements.clear()
    tag, created = await Tag.objects.get_or_create(name="w1", defaults={"label": label})
    assert (created, calls) == (False, [])
    assert combined(sql) == []
    tag, created = await Tag.objects.get_or_create(
        name="fresh", defaults={"label": label}
    )
    assert (created, tag.label, calls) == (True, "made", ["called"])


async def test_python_defaults_are_written_by_the_one_trip_insert(pg: Database) -> None:
    for i in range(8):
        await User.objects.get_or_create(username=f"u{i}")
    assert _on_conflict.expects_miss((User, frozenset({"username"})))
    user, created = await User.objects.get_or_create(username="dflt")
    assert created
    stored = await User.objects.get(username="dflt")
    assert (stored.email, stored.age, stored.nickname, stored.status) == (
        "",
        0,
        None,
        "new",
    )
    assert (user.email, user.age, user.status) == ("", 0, "new")

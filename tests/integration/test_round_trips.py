"""What a call outside a session costs the driver, counted where it is paid.

On SQLite every step through aiosqlite is a trip to the connection's thread;
on MariaDB every ROLLBACK is a round trip to the server. These tests count
them on the real drivers (aiosqlite's own dispatch, MariaDB's per-connection
``Com_rollback`` counter), so a change that brings back a needless BEGIN or
ROLLBACK fails here, not only in a benchmark.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite.core
import pytest
from sqlalchemy import inspect, text

from sqlalchemy_objects import _cursor, _on_conflict
from tests.conftest import open_database
from tests.models import Tag, User


@pytest.fixture(name="trips")
def _trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every function aiosqlite runs on a connection's thread."""
    seen: list[str] = []
    plain: Any = aiosqlite.core.Connection._execute

    async def counting(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await plain(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counting)
    return seen


async def test_sqlite_calls_outside_a_session_take_one_trip_per_statement(
    tmp_path: Path, trips: list[str]
) -> None:
    db = await open_database("sqlite", tmp_path)
    try:
        first, created = await Tag.objects.get_or_create(name="a")
        assert created
        await Tag.objects.get_or_create(name="a")  # warm: pool, prepared plans
        trips.clear()
        again, created_again = await Tag.objects.get_or_create(name="a")
        assert (again.id, created_again) == (first.id, False)
        # the SELECT alone: no BEGIN, no ROLLBACK, no cursor bookkeeping
        assert trips == ["_execute_fetchall"], trips
        trips.clear()
        _, created_b = await Tag.objects.get_or_create(name="b")
        assert created_b
        # the SELECT, then one autocommit INSERT ... ON CONFLICT DO NOTHING
        # RETURNING (Tag.label's server default comes back with it), each in
        # one trip that runs it to its end: no BEGIN, COMMIT or ROLLBACK
        assert trips == ["_execute_fetchall", "_execute_fetchall"], trips
        assert (await Tag.objects.get(name="b")).label == ""
        # a model with a Python-side default (User.age) is inserted by the
        # ORM, in a write transaction: BEGIN IMMEDIATE, INSERT, COMMIT
        await User.objects.get_or_create(username="u0")  # the shape is prepared
        trips.clear()
        _, created_user = await User.objects.get_or_create(username="u")
        assert created_user
        assert trips[0] == "_execute_fetchall", trips
        assert trips.count("commit") == 1, trips
        assert "rollback" not in trips, trips
        trips.clear()
        assert (await Tag.objects.get(name="b")).name == "b"
        assert await Tag.objects.filter(name__in=["a", "b"]).count() == 2
        # each one statement (the SELECT: no BEGIN before it), and nothing
        # rolled back that was never begun
        assert trips.count("execute") == 2, trips
        assert "rollback" not in trips, trips
        # and no connection was left inside a transaction
        pool: Any = db.engine.sync_engine.pool
        assert pool.checkedout() == 0
        async with db.engine.connect() as conn:
            raw: Any = await conn.get_raw_connection()
            assert raw.driver_connection.in_transaction is False
    finally:
        await db.drop_all()
        await db.dispose()


@pytest.mark.mariadb
async def test_mariadb_calls_outside_a_session_take_one_statement_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection is in the server's autocommit mode: a read or a
    get_or_create hit outside a session is its SELECT alone (no BEGIN, no
    ROLLBACK from the call or from the pool's reset on return); a miss is
    one autocommit INSERT; a session still has a transaction."""
    db = await open_database("mariadb", tmp_path, pool_size=1, max_overflow=0)
    names = ("begin", "commit", "rollback", "select", "insert")
    try:
        await Tag.objects.create(name="a")

        async def counters() -> dict[str, int]:
            async with db.engine.connect() as conn:  # the pool's one connection
                rows = (await conn.execute(text("SHOW SESSION STATUS"))).all()
                await conn.rollback()
            found = {str(row[0]).lower(): row[1] for row in rows}
            return {name: int(found[f"com_{name}"]) for name in names}

        async def spent(work: Any) -> dict[str, int]:
            before = await counters()
            await work()
            after = await counters()
            # less the counter's own BEGIN, SHOW and ROLLBACK
            own = {"begin": 1, "rollback": 1}
            return {n: after[n] - before[n] - own.get(n, 0) for n in names}

        async def reads() -> None:
            for _ in range(10):
                assert (await Tag.objects.get(name="a")).name == "a"
                _, created = await Tag.objects.get_or_create(name="a")
                assert not created

        assert await spent(reads) == dict.fromkeys(names, 0) | {"select": 20}

        async def miss() -> None:
            _, created = await Tag.objects.get_or_create(name="b")
            assert created

        # the SELECT, then one autocommit INSERT ... RETURNING
        assert await spent(miss) == dict.fromkeys(names, 0) | {
            "select": 1,
            "insert": 1,
        }

        async def raced() -> None:
            # a miss whose key another caller has just written: the INSERT
            # fails on the duplicate key, one more SELECT (and one ROLLBACK:
            # after a failed statement the connection is not taken for idle)
            monkeypatch.setattr(_on_conflict, "select_one", first_finds_nothing)
            _, created = await Tag.objects.get_or_create(name="a")
            assert not created

        plain_select_one = _on_conflict.select_one
        calls = {"n": 0}

        def first_finds_nothing(*args: Any) -> Any:
            calls["n"] += 1
            found = plain_select_one(*args)
            return (True, None) if calls["n"] == 1 else found

        assert await spent(raced) == dict.fromkeys(names, 0) | {
            "select": 2,
            "insert": 1,
            "rollback": 1,
        }

        async def in_session() -> None:
            async with db.session():
                assert (await Tag.objects.get(name="b")).name == "b"

        trips = await spent(in_session)
        assert trips["begin"] == trips["commit"] == 1, trips
    finally:
        await db.drop_all()
        await db.dispose()


async def _in_transaction(session: Any) -> bool:
    """Whether the server has a transaction open for *session*'s connection."""
    raw: Any = await (await session.connection()).get_raw_connection()
    return bool(raw.driver_connection.is_in_transaction())  # asyncpg


@pytest.mark.postgresql
@pytest.mark.asyncpg
async def test_a_session_that_only_reads_by_get_or_create_sends_no_begin(
    tmp_path: Path,
) -> None:
    """On PostgreSQL at READ COMMITTED, a get_or_create hit that is the first
    statement of a session's transaction runs without BEGIN, so a request
    that only finds its row costs one round trip; the transaction begins with
    the next statement and keeps its writes together (rolled back as one)."""
    db = await open_database("postgresql", tmp_path)
    try:
        await Tag.objects.create(name="a")
        async with db.session() as session:
            found, created = await Tag.objects.get_or_create(name="a")
            assert (found.name, created) == ("a", False)
            assert found in session  # the session's object, as before
            assert await _in_transaction(session) is False
            found.label = "changed"  # flushed and committed by the session
        assert (await Tag.objects.get(name="a")).label == "changed"

        async def read_then_write() -> None:
            async with db.session() as session:
                await Tag.objects.get_or_create(name="a")
                await Tag.objects.create(name="b")
                assert await _in_transaction(session) is True
                _, created = await Tag.objects.get_or_create(name="c")
                assert created
                raise RuntimeError("roll the session back")

        with pytest.raises(RuntimeError):
            await read_then_write()
        assert not await Tag.objects.filter(name__in=["b", "c"]).exists()

        async def miss() -> None:  # creates inside the transaction, as before
            async with db.session() as session:
                _, created = await Tag.objects.get_or_create(name="d")
                assert created
                assert await _in_transaction(session) is True
                raise RuntimeError("roll the session back")

        with pytest.raises(RuntimeError):
            await miss()
        assert not await Tag.objects.filter(name="d").exists()

        # a transaction already under way keeps the read inside it
        async with db.session() as session:
            assert await Tag.objects.count() == 1
            assert await _in_transaction(session) is True
            await Tag.objects.get_or_create(name="a")
            assert await _in_transaction(session) is True
    finally:
        await db.drop_all()
        await db.dispose()

    # a chosen isolation level keeps every statement in the transaction
    strict = await open_database(
        "postgresql", tmp_path, isolation_level="REPEATABLE READ"
    )
    try:
        await Tag.objects.create(name="a")
        async with strict.session() as session:
            await Tag.objects.get_or_create(name="a")
            assert await _in_transaction(session) is True
    finally:
        await strict.drop_all()
        await strict.dispose()


@pytest.mark.postgresql
@pytest.mark.asyncpg
async def test_a_sessions_leading_hit_goes_through_the_cursor_into_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leading read of a session (no BEGIN) takes the bare cursor; the
    object it makes is the session's, as the ORM's load would leave it: the
    same object for the same row, its changes flushed by the session, and
    anything the session still has to flush sends the read through the ORM
    (whose autoflush runs first)."""
    sent: list[str] = []
    plain = _cursor.cursor_rows

    def spy(conn: Any, plan: Any, args: Any) -> Any:
        sent.append(plan.sql.split()[0])
        return plain(conn, plan, args)

    monkeypatch.setattr(_cursor, "cursor_rows", spy)
    db = await open_database("postgresql", tmp_path)
    try:
        tag = await Tag.objects.create(name="a")
        await Tag.objects.get_or_create(name="a")  # the shape is known now
        sent.clear()
        async with db.session() as session:
            found, created = await Tag.objects.get_or_create(name="a")
            assert sent == ["SELECT"]
            assert (found.id, found.name, created) == (tag.id, "a", False)
            assert found in session
            assert not inspect(found).modified
            again, _ = await Tag.objects.get_or_create(name="a")
            assert again is found  # the session's own object
            found.label = "changed"
        assert (await Tag.objects.get(name="a")).label == "changed"

        sent.clear()
        async with db.session() as session:
            session.add(Tag(name="pending"))  # not flushed yet
            found, created = await Tag.objects.get_or_create(name="pending")
            assert not created  # the ORM's autoflush wrote it before the SELECT
            assert sent == []
    finally:
        await db.drop_all()
        await db.dispose()

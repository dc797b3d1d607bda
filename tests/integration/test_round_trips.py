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
from sqlalchemy import text

from tests.conftest import open_database
from tests.models import Tag


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
        # the SELECT, then the write transaction: BEGIN IMMEDIATE, INSERT,
        # the read of Tag.label's server default, COMMIT; no ROLLBACK
        assert trips[0] == "_execute_fetchall", trips
        assert trips.count("execute") == 3, trips
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
async def test_mariadb_sends_one_rollback_per_read(tmp_path: Path) -> None:
    """A read outside a session ends its transaction once; the pool's own
    reset on return sends nothing when the server says none is open."""
    db = await open_database("mariadb", tmp_path, pool_size=1, max_overflow=0)
    try:
        await Tag.objects.create(name="a")

        async def rollbacks() -> int:
            async with db.engine.connect() as conn:  # the pool's one connection
                result = await conn.execute(
                    text("SHOW SESSION STATUS LIKE 'Com_rollback'")
                )
                value = int(result.one()[1])
                await conn.rollback()
            return value

        before = await rollbacks()
        for _ in range(10):
            assert (await Tag.objects.get(name="a")).name == "a"
        after = await rollbacks()
        # 10 reads: one ROLLBACK each, plus the counter's own connection
        # (the pool's reset after it sends none: nothing is open by then).
        assert after - before == 11, after - before
    finally:
        await db.drop_all()
        await db.dispose()

"""What each layer under a get_or_create hit costs, on PostgreSQL.

    .venv/bin/python benchmarks/layers.py

One coroutine reads one row by key through each layer in turn (interleaved
blocks, median µs): the asyncpg pool (the floor), SQLAlchemy's pool and the
DBAPI cursor inside one greenlet switch (what our one-statement path does),
``Connection.execute()`` inside one switch, and ``AsyncConnection.execute()``.
Then the pieces of our own hit path, each timed alone. Prints a table; these
figures back the profile in docs/performance.md.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import timeit
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy import Integer, Text, bindparam, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.util import greenlet_spawn

from sqlalchemy_objects import (
    Database,
    ManagerMixin,
    _on_conflict,
    _shapes,
    lookups,
)
from sqlalchemy_objects._cursor import cursor_allowed

URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TABLE = "layer_items"
SQL = f"SELECT id, key, value FROM {TABLE} WHERE key = $1 LIMIT 2"


class Base(ManagerMixin, DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = TABLE

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(Text, unique=True)
    value: Mapped[str] = mapped_column(Text)


async def main() -> None:
    db = Database(URL, pool_size=5)
    db.bind(Base)
    await db.drop_all()
    await db.create_all()
    raw = await asyncpg.connect(URL.replace("+asyncpg", ""))
    await raw.executemany(
        f"INSERT INTO {TABLE} (key, value) VALUES ($1, 'v')",
        [(f"hot-{i}",) for i in range(1000)],
    )
    await raw.close()
    pool = await asyncpg.create_pool(
        URL.replace("+asyncpg", ""), min_size=5, max_size=5
    )
    autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")
    sync_engine = autocommit.sync_engine
    stmt = select(Item.id, Item.key, Item.value).where(Item.key == bindparam("p0"))
    stmt = stmt.limit(2)

    async def floor(key: str) -> Any:
        async with pool.acquire() as conn:
            return await conn.fetch(SQL, key)

    def _cursor(key: str) -> Any:
        with sync_engine.connect() as conn:
            cursor = conn.connection.cursor()
            cursor.execute(SQL, (key,))
            rows = cursor.fetchall()
            cursor.close()
            return rows

    async def cursor_one_switch(key: str) -> Any:
        return await greenlet_spawn(_cursor, key)

    def _execute(key: str) -> Any:
        with sync_engine.connect() as conn:
            return conn.execute(stmt, {"p0": key}).all()

    async def execute_one_switch(key: str) -> Any:
        return await greenlet_spawn(_execute, key)

    async def async_connection(key: str) -> Any:
        async with autocommit.connect() as conn:
            return (await conn.execute(stmt, {"p0": key})).all()

    async def ours(key: str) -> Any:
        return await Item.objects.get_or_create(key=key)

    layers: dict[str, Callable[[str], Awaitable[Any]]] = {
        "asyncpg pool + fetch (the floor)": floor,
        "SQLAlchemy pool + DBAPI cursor, one greenlet switch": cursor_one_switch,
        "Connection.execute(), one greenlet switch": execute_one_switch,
        "AsyncConnection.execute() (three switches)": async_connection,
        "Item.objects.get_or_create(key=...), a hit": ours,
    }
    samples: dict[str, list[float]] = {name: [] for name in layers}
    for call in layers.values():
        for i in range(200):
            await call(f"hot-{i}")
    for block in range(20):
        for name, call in layers.items():
            for i in range(200):
                t0 = time.perf_counter_ns()
                await call(f"hot-{(block * 200 + i) % 1000}")
                samples[name].append((time.perf_counter_ns() - t0) / 1000)
    print(f"{'layer':<56} {'median µs':>10}")
    for name, xs in samples.items():
        print(f"{name:<56} {statistics.median(xs):>10.1f}")

    mapper = lookups.mapper_of(Item)
    n = 20_000

    def each(fn: Callable[[], object]) -> float:
        return timeit.timeit(fn, number=n) / n * 1e6

    def _connection_pieces() -> dict[str, float]:
        with sync_engine.connect() as conn:
            allowed = each(lambda: cursor_allowed(conn))

        def checkout() -> None:
            sync_engine.connect().close()

        return {
            "Connection checkout and return (isolation level set and reset)": each(
                checkout
            ),
            "the cursor's eligibility check": allowed,
        }

    pieces = await greenlet_spawn(_connection_pieces)
    pieces["a row made into a detached instance"] = each(
        lambda: _shapes.detached(mapper, (1, "k", "v"))
    )
    pieces["the flush-listener check of a miss"] = each(
        lambda: _on_conflict.sessions_have_flush_listeners(db.autocommit_sessionmaker)
    )
    pieces["the one-statement eligibility check"] = each(
        lambda: _on_conflict.conflict_target(Item, {"key": "x"})
    )
    pieces["the prepared SELECT and its parameters"] = each(
        lambda: _on_conflict.prepared_select(Item, {"key": "x"})
    )
    print(f"\n{'piece of our hit path':<66} {'µs':>6}")
    for name, us in pieces.items():
        print(f"{name:<66} {us:>6.1f}")
    await pool.close()
    await db.drop_all()
    await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())

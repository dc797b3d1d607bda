"""Time get_or_create against raw asyncpg and hand-written SQLAlchemy, in one run.

    make bench                                   # PostgreSQL on 127.0.0.1
    .venv/bin/python benchmarks/get_or_create.py --calls 3000

Each path looks up (hit) or creates (miss) rows of the same table
``(id serial pk, key text unique not null, value text not null)``. Paths are
interleaved in blocks so that machine noise hits them alike; medians and p99 in
microseconds, and the ratio to the raw-asyncpg floor, are printed and written
to benchmarks/results/<date>.json. Ratios are the result; absolute numbers move
with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import sqlalchemy
from sqlalchemy import String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sqlalchemy_objects import Database, ManagerMixin, __version__, _on_conflict

PG = "postgresql://postgres@127.0.0.1:5432/test"


class Base(ManagerMixin, DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "bench_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String, unique=True)
    value: Mapped[str] = mapped_column(String)


Path_ = Callable[[int], Awaitable[object]]


def results_dir() -> Path:
    """Where results go: benchmarks/results/, or $BENCH_RESULTS (the quick
    mode of benchmarks/all.py, so its figures never replace a full run's)."""
    folder = Path(
        os.environ.get("BENCH_RESULTS", Path(__file__).resolve().parent / "results")
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=PG)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per path")
    parser.add_argument("--hot", type=int, default=1000, help="existing keys")
    args = parser.parse_args()

    db = Database(args.url, pool_size=5)
    db.bind(Base)
    await db.drop_all()
    await db.create_all()
    async with db.session():
        for i in range(args.hot):
            await Item.objects.create(key=f"hot-{i}", value="v")
    pool = await asyncpg.create_pool(
        args.url.replace("+asyncpg", ""), min_size=5, max_size=5
    )
    open_session = db.sessionmaker()
    misses = iter(range(10**9))

    async def raw_hit(i: int) -> object:
        async with pool.acquire() as conn:
            return await conn.fetchrow(
                "SELECT id, key, value FROM bench_items WHERE key = $1",
                f"hot-{i % args.hot}",
            )

    async def raw_miss(i: int) -> object:
        # The floor as docs/performance.md defines it: SELECT; INSERT ... ON
        # CONFLICT (key) DO NOTHING RETURNING; re-SELECT if nothing returned.
        key = f"raw-{next(misses)}"
        select_row = "SELECT id, key, value FROM bench_items WHERE key = $1"
        async with pool.acquire() as conn:
            row = await conn.fetchrow(select_row, key)
            if row is not None:
                return row
            row = await conn.fetchrow(
                "INSERT INTO bench_items (key, value) VALUES ($1, 'v') "
                "ON CONFLICT (key) DO NOTHING RETURNING id, key, value",
                key,
            )
            if row is None:
                row = await conn.fetchrow(select_row, key)
            return row

    async def sa_session_scalar(i: int) -> object:
        return await open_session.scalar(
            select(Item).where(Item.key == f"hot-{i % args.hot}")
        )

    async def ours_in_session_hit(i: int) -> object:
        return await Item.objects.using(open_session).get_or_create(
            key=f"hot-{i % args.hot}"
        )

    async def ours_autocommit_hit(i: int) -> object:
        return await Item.objects.get_or_create(key=f"hot-{i % args.hot}")

    async def ours_autocommit_miss(i: int) -> object:
        return await Item.objects.get_or_create(
            key=f"ours-{next(misses)}", defaults={"value": "v"}
        )

    miss_mode_shape = (Item, frozenset({"key"}))

    async def ours_one_trip_hit(i: int) -> object:
        # A hit while the shape is in miss mode (most recent calls missed):
        # the one statement that reads or inserts, finding the row.
        _on_conflict.note_outcome(miss_mode_shape, missed=True)
        _on_conflict.note_outcome(miss_mode_shape, missed=True)
        return await Item.objects.get_or_create(key=f"hot-{i % args.hot}")

    async def sa_handwritten_hit(i: int) -> object:
        return await handwritten(db, f"hot-{i % args.hot}")

    async def sa_handwritten_miss(i: int) -> object:
        return await handwritten(db, f"hand-{next(misses)}")

    paths: dict[str, Path_] = {
        "raw asyncpg hit": raw_hit,
        "raw asyncpg miss (SELECT, then ON CONFLICT)": raw_miss,
        "SQLAlchemy session.scalar(select) in an open session": sa_session_scalar,
        "ours: get_or_create hit, in an open session": ours_in_session_hit,
        "ours: get_or_create hit, autocommit": ours_autocommit_hit,
        "ours: get_or_create miss, autocommit": ours_autocommit_miss,
        "ours: get_or_create hit, autocommit, one-trip statement": ours_one_trip_hit,
        "hand-written SQLAlchemy hit (session per call)": sa_handwritten_hit,
        "hand-written SQLAlchemy miss (session + SAVEPOINT)": sa_handwritten_miss,
    }
    timings: dict[str, list[float]] = {name: [] for name in paths}
    for path in paths.values():  # warm-up
        for i in range(100):
            await path(i)
    block = 100
    for start in range(0, args.calls, block):
        for name, path in paths.items():
            samples = timings[name]
            for i in range(start, start + block):
                t0 = time.perf_counter_ns()
                await path(i)
                samples.append((time.perf_counter_ns() - t0) / 1000)

    await open_session.close()
    await pool.close()
    await db.drop_all()
    await db.dispose()
    report(args, timings)


async def handwritten(db: Database, key: str) -> Item:
    """The usual blog-post get_or_create: a session per call, SAVEPOINT, re-select."""
    async with AsyncSession(db.engine, expire_on_commit=False) as session:
        item = await session.scalar(select(Item).where(Item.key == key))
        if item is not None:
            return item
        try:
            async with session.begin_nested():
                item = Item(key=key, value="v")
                session.add(item)
            await session.commit()
        except IntegrityError:
            await session.rollback()
            item = await session.scalar(select(Item).where(Item.key == key))
            assert item is not None
        return item


def report(args: argparse.Namespace, timings: dict[str, list[float]]) -> None:
    def p99(xs: list[float]) -> float:
        return sorted(xs)[int(len(xs) * 0.99) - 1]

    medians = {name: statistics.median(xs) for name, xs in timings.items()}
    hit_floor = medians["raw asyncpg hit"]
    miss_floor = medians["raw asyncpg miss (SELECT, then ON CONFLICT)"]
    in_session = medians["SQLAlchemy session.scalar(select) in an open session"]
    rows = []
    for name, median in medians.items():
        floor = miss_floor if "miss" in name else hit_floor
        rows.append(
            {
                "path": name,
                "median_us": round(median, 1),
                "p99_us": round(p99(timings[name]), 1),
                "x_floor": round(median / floor, 2),
            }
        )
    command = " ".join([Path(sys.executable).name, *sys.argv])
    print(f"command: {command}")
    print(
        f"calls per path: {args.calls}; sqlalchemy {sqlalchemy.__version__}, asyncpg {asyncpg.__version__}, sqlalchemy-objects {__version__}, Python {platform.python_version()}"
    )
    print(f"{'path':<56} {'median µs':>10} {'p99 µs':>9} {'× floor':>8}")
    for row in rows:
        print(
            f"{row['path']:<56} {row['median_us']:>10} {row['p99_us']:>9} {row['x_floor']:>8}"
        )
    ratio = medians["ours: get_or_create hit, in an open session"] / in_session
    print(f"in-session get_or_create hit / session.scalar(select): {ratio:.2f}×")
    out = results_dir() / f"{datetime.date.today().isoformat()}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "command": command,
                "calls": args.calls,
                "versions": {
                    "python": platform.python_version(),
                    "sqlalchemy": sqlalchemy.__version__,
                    "asyncpg": asyncpg.__version__,
                    "sqlalchemy_objects": __version__,
                },
                "rows": rows,
                "in_session_hit_vs_scalar": round(ratio, 3),
            },
            indent=2,
        )
        + "\n"
    )
    print(
        f"written: {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}"
    )


if __name__ == "__main__":
    asyncio.run(main())

"""get_or_create on every backend and driver, against that driver's raw floor.

    .venv/bin/python benchmarks/backends.py                  # all four
    .venv/bin/python benchmarks/backends.py --only sqlite --calls 500

For each backend (SQLite/aiosqlite, MariaDB/asyncmy, PostgreSQL/psycopg 3,
PostgreSQL/asyncpg) one process runs, on a fresh table ``(id pk, key unique,
value)`` holding ``--hot`` keys: hit (existing keys, one coroutine), miss (new
keys) and hit-conc (32 coroutines sharing the hits), for our
``Model.objects.get_or_create`` and for the raw driver doing the same work by
hand (SELECT; on a miss INSERT ... ON CONFLICT / INSERT IGNORE, then SELECT
if it inserted nothing). The two are interleaved in blocks, so the machine's
noise hits both alike; medians of per-call microseconds per block, and each
ratio to the floor, are printed and written to
``benchmarks/results/backends-<date>.json``. Ratios are the result.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sqlalchemy_objects import Database, ManagerMixin, __version__

BACKENDS = {
    "sqlite": "sqlite+aiosqlite:///{tmp}/bench.sqlite3",
    "mariadb": "mysql+asyncmy://root@127.0.0.1:3306/test",
    "psycopg": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "asyncpg": "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
}
CONC = 32


class Base(ManagerMixin, DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "bench_backend_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    value: Mapped[str] = mapped_column(String(64))


TABLE = Item.__tablename__


class Raw:
    """The driver by hand: one connection (a pool of CONC for hit-conc)."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.conns: list[Any] = []
        self.free: asyncio.Queue[Any] = asyncio.Queue()

    async def open(self, size: int) -> None:
        for _ in range(size):
            conn = await self._connect()
            self.conns.append(conn)
            self.free.put_nowait(conn)

    async def _connect(self) -> Any:
        if self.name == "sqlite":
            import aiosqlite

            # autocommit: each statement its own transaction
            return await aiosqlite.connect(
                self.url.split("///", 1)[1], timeout=30, isolation_level=None
            )
        if self.name == "mariadb":
            import asyncmy

            return await asyncmy.connect(
                host="127.0.0.1", port=3306, user="root", db="test", autocommit=True
            )
        if self.name == "psycopg":
            import psycopg

            return await psycopg.AsyncConnection.connect(
                "postgresql://postgres@127.0.0.1:5432/test", autocommit=True
            )
        import asyncpg

        return await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")

    async def close(self) -> None:
        for conn in self.conns:
            closed = conn.close()  # asyncmy's close() is not a coroutine
            if asyncio.iscoroutine(closed):
                await closed

    async def get_or_create(self, key: str) -> Any:
        conn = await self.free.get()
        try:
            row = await self._select(conn, key)
            if row is None:
                row = await self._insert(conn, key)
                if row is None:
                    row = await self._select(conn, key)
            return row
        finally:
            self.free.put_nowait(conn)

    async def _select(self, conn: Any, key: str) -> Any:
        sql = f"SELECT id, key, value FROM {TABLE} WHERE key = "
        if self.name == "sqlite":
            rows = await conn.execute_fetchall(sql + "?", (key,))
            return rows[0] if rows else None
        if self.name == "mariadb":
            async with conn.cursor() as cur:
                await cur.execute(sql.replace("key", "`key`") + "%s", (key,))
                return await cur.fetchone()
        if self.name == "psycopg":
            cur = await conn.execute(sql + "%s", (key,), prepare=True)
            return await cur.fetchone()
        return await conn.fetchrow(sql + "$1", key)

    async def _insert(self, conn: Any, key: str) -> Any:
        cols = f"INSERT INTO {TABLE} (key, value) VALUES "
        tail = " ON CONFLICT (key) DO NOTHING RETURNING id, key, value"
        if self.name == "sqlite":
            rows = await conn.execute_fetchall(cols + "(?, ?)" + tail, (key, "v"))
            return rows[0] if rows else None
        if self.name == "mariadb":
            async with conn.cursor() as cur:
                sql = f"INSERT IGNORE INTO {TABLE} (`key`, value) VALUES (%s, %s)"
                await cur.execute(sql + " RETURNING id, `key`, value", (key, "v"))
                return await cur.fetchone()
        if self.name == "psycopg":
            cur = await conn.execute(cols + "(%s, %s)" + tail, (key, "v"), prepare=True)
            return await cur.fetchone()
        return await conn.fetchrow(cols + "($1, $2)" + tail, key, "v")


async def timed(calls: int, one: Callable[[int], Awaitable[object]]) -> float:
    """Microseconds per call, one coroutine."""
    start = time.perf_counter()
    for i in range(calls):
        await one(i)
    return (time.perf_counter() - start) / calls * 1e6


async def throughput(calls: int, one: Callable[[int], Awaitable[object]]) -> float:
    """Calls per second with CONC coroutines sharing *calls*."""
    counter = iter(range(calls))

    async def worker() -> None:
        for i in counter:
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONC)))
    return calls / (time.perf_counter() - start)


async def run_one(name: str, calls: int, hot: int, blocks: int) -> dict[str, Any]:
    tmp = tempfile.mkdtemp()
    url = BACKENDS[name].format(tmp=tmp)
    db = Database(url, pool_size=CONC)
    db.bind(Base)
    await db.drop_all()
    await db.create_all()
    await Item.objects.bulk_create([Item(key=f"hot{i}", value="v") for i in range(hot)])
    raw = Raw(name, url)
    await raw.open(CONC)
    fresh = iter(range(10**9))

    async def ours_hit(i: int) -> object:
        return await Item.objects.get_or_create(
            key=f"hot{i % hot}", defaults={"value": "v"}
        )

    async def ours_miss(i: int) -> object:
        return await Item.objects.get_or_create(
            key=f"o{next(fresh)}", defaults={"value": "v"}
        )

    async def raw_hit(i: int) -> object:
        return await raw.get_or_create(f"hot{i % hot}")

    async def raw_miss(i: int) -> object:
        return await raw.get_or_create(f"r{next(fresh)}")

    for _ in range(2):  # warm-up: connections, statement caches
        await timed(100, ours_hit)
        await timed(100, raw_hit)
    samples: dict[str, list[float]] = {}
    per_block = max(calls // blocks, 1)
    for block in range(blocks):
        order = [("ours", ours_hit, ours_miss), ("raw", raw_hit, raw_miss)]
        if block % 2:
            order.reverse()
        for who, hit, miss in order:
            samples.setdefault(f"{who}_hit", []).append(await timed(per_block, hit))
            samples.setdefault(f"{who}_miss", []).append(await timed(per_block, miss))
            samples.setdefault(f"{who}_conc", []).append(
                await throughput(per_block * 4, hit)
            )
    await raw.close()
    await db.drop_all()
    await db.dispose()
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "backend": name,
        "url": url.split("@")[-1],
        "us": med,
        "hit_x_floor": med["ours_hit"] / med["raw_hit"],
        "miss_x_floor": med["ours_miss"] / med["raw_miss"],
        "conc_pct_floor": 100 * med["ours_conc"] / med["raw_conc"],
    }


def results_dir() -> Path:
    """Where results go: benchmarks/results/, or $BENCH_RESULTS (the quick
    mode of benchmarks/all.py, so its figures never replace a full run's)."""
    folder = Path(
        os.environ.get("BENCH_RESULTS", Path(__file__).resolve().parent / "results")
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(BACKENDS), action="append")
    parser.add_argument("--calls", type=int, default=1000, help="timed calls per path")
    parser.add_argument("--hot", type=int, default=1000)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = asyncio.run(run_one(args.child, args.calls, args.hot, args.blocks))
        print(json.dumps(result))
        return
    results = []
    for name in args.only or list(BACKENDS):
        # each backend in its own process, as the peers are measured
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                name,
                "--calls",
                str(args.calls),
                "--hot",
                str(args.hot),
                "--blocks",
                str(args.blocks),
            ],
            check=True,
            capture_output=True,
            text=True,
            env=os.environ,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(result)
        us = result["us"]
        print(
            f"{name:8} hit {us['ours_hit']:7.0f} us ({result['hit_x_floor']:.2f}x raw "
            f"{us['raw_hit']:.0f})  miss {us['ours_miss']:7.0f} us "
            f"({result['miss_x_floor']:.2f}x raw {us['raw_miss']:.0f})  hit-conc "
            f"{us['ours_conc']:6.0f}/s ({result['conc_pct_floor']:.0f}% of raw "
            f"{us['raw_conc']:.0f}/s)",
            flush=True,
        )
    today = datetime.date.today().isoformat()
    path = results_dir() / f"backends-{today}.json"
    path.write_text(
        json.dumps(
            {
                "command": "benchmarks/backends.py " + " ".join(sys.argv[1:]),
                "python": platform.python_version(),
                "sqlalchemy_objects": __version__,
                "calls": args.calls,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()

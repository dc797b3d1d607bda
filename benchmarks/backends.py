"""get_or_create on every backend and driver, against that driver's raw floor.

    .venv/bin/python benchmarks/backends.py                  # all four
    .venv/bin/python benchmarks/backends.py --only sqlite --calls 500
    .venv/bin/python benchmarks/backends.py --no-tortoise    # ours only

For each backend (SQLite/aiosqlite, MariaDB/asyncmy, PostgreSQL/psycopg 3,
PostgreSQL/asyncpg) one process runs, on a fresh table ``(id pk, key unique,
value)`` holding ``--hot`` keys: hit (existing keys, one coroutine), miss (new
keys), hit-conc (32 coroutines sharing the hits) and a race (32 callers
released together on one new key, ``--rounds`` times: exceptions, and rounds
without exactly one ``created=True``), for our ``Model.objects.get_or_create``
and for the raw driver doing the same work by hand (SELECT; on a miss INSERT
... ON CONFLICT / INSERT IGNORE, then SELECT if it inserted nothing). The two
are interleaved in blocks, so the machine's noise hits both alike; medians of
per-call microseconds per block, and each ratio to the floor. Tortoise ORM's
own ``get_or_create`` is measured the same way beside its own raw floor, in
a process of its own virtualenv (benchmarks/.venvs/tortoise_backends, made on
first use; benchmarks/peers/tortoise_backends_peer.py). Printed, and written
to ``benchmarks/results/backends-<date>.json``. Ratios are the result."""

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

BACKENDS = {
    "sqlite": "sqlite+aiosqlite:///{tmp}/bench.sqlite3",
    "mariadb": "mysql+asyncmy://root@127.0.0.1:3306/test",
    "psycopg": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "asyncpg": "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
}
CONC = 32
TABLE = "bench_backend_items"
#: The drivers at our venv's versions, so that both processes' floors match.
TORTOISE_REQUIREMENTS = [
    "tortoise-orm[asyncpg,asyncmy,psycopg]==1.1.9",
    "asyncpg==0.32.0",
    "asyncmy==0.2.18",
    "aiosqlite==0.22.1",
    "psycopg[binary]==3.3.9",
]


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

    async def get_or_create(self, key: str) -> tuple[Any, bool]:
        conn = await self.free.get()
        try:
            row = await self._select(conn, key)
            if row is not None:
                return row, False
            row = await self._insert(conn, key)
            if row is not None:
                return row, True
            return await self._select(conn, key), False
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


async def race(rounds: int, call: Callable[[str], Awaitable[bool]]) -> dict[str, Any]:
    """CONC callers released together on one new key, *rounds* times."""
    exceptions: dict[str, int] = {}
    wrong = 0
    for r in range(rounds):
        gate = asyncio.Event()

        async def caller(key: str = f"race{r}", gate: asyncio.Event = gate) -> bool:
            await gate.wait()
            return await call(key)

        tasks = [asyncio.ensure_future(caller()) for _ in range(CONC)]
        await asyncio.sleep(0.01)
        gate.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        created = 0
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                kind = type(outcome).__name__
                exceptions[kind] = exceptions.get(kind, 0) + 1
            else:
                created += bool(outcome)
        wrong += created != 1
    return {
        "rounds": rounds,
        "exceptions": sum(exceptions.values()),
        "exception_types": sorted(exceptions),
        "rounds_without_exactly_one_created": wrong,
    }


async def compare(
    system: Callable[[str], Awaitable[bool]],
    raw: Raw,
    calls: int,
    hot: int,
    blocks: int,
    rounds: int,
) -> dict[str, Any]:
    """*system*'s get_or_create (returning created) against *raw*'s, both on
    the same table holding *hot* keys, interleaved in *blocks*."""
    fresh = iter(range(10**9))

    async def sys_hit(i: int) -> object:
        return await system(f"hot{i % hot}")

    async def sys_miss(i: int) -> object:
        return await system(f"s{next(fresh)}")

    async def raw_hit(i: int) -> object:
        return await raw.get_or_create(f"hot{i % hot}")

    async def raw_miss(i: int) -> object:
        return await raw.get_or_create(f"r{next(fresh)}")

    for _ in range(2):  # warm-up: connections, statement caches
        await timed(100, sys_hit)
        await timed(100, raw_hit)
    samples: dict[str, list[float]] = {}
    per_block = max(calls // blocks, 1)
    for block in range(blocks):
        order = [("ours", sys_hit, sys_miss), ("raw", raw_hit, raw_miss)]
        if block % 2:
            order.reverse()
        for who, hit, miss in order:
            samples.setdefault(f"{who}_hit", []).append(await timed(per_block, hit))
            samples.setdefault(f"{who}_miss", []).append(await timed(per_block, miss))
            samples.setdefault(f"{who}_conc", []).append(
                await throughput(per_block * 4, hit)
            )
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "us": med,
        "hit_x_floor": med["ours_hit"] / med["raw_hit"],
        "miss_x_floor": med["ours_miss"] / med["raw_miss"],
        "conc_pct_floor": 100 * med["ours_conc"] / med["raw_conc"],
        "race": await race(rounds, system),
    }


async def run_ours(
    name: str, calls: int, hot: int, blocks: int, rounds: int
) -> dict[str, Any]:
    # Imported here: Tortoise's process (another venv) imports this module too.
    # (No Mapped[...] annotations: with postponed annotations SQLAlchemy
    # resolves them among the module's names, and these are local.)
    from sqlalchemy import Integer, String
    from sqlalchemy.orm import DeclarativeBase, mapped_column

    from sqlalchemy_objects import Database, ManagerMixin

    class Base(ManagerMixin, DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = TABLE

        id = mapped_column(Integer, primary_key=True)
        key = mapped_column(String(64), unique=True, nullable=False)
        value = mapped_column(String(64), nullable=False)

    tmp = tempfile.mkdtemp()
    url = BACKENDS[name].format(tmp=tmp)
    db = Database(url, pool_size=CONC)
    db.bind(Base)
    await db.drop_all()
    await db.create_all()
    await Item.objects.bulk_create([Item(key=f"hot{i}", value="v") for i in range(hot)])
    raw = Raw(name, url)
    await raw.open(CONC)

    async def ours(key: str) -> bool:
        _, created = await Item.objects.get_or_create(key=key, defaults={"value": "v"})
        return created

    try:
        result = await compare(ours, raw, calls, hot, blocks, rounds)
    finally:
        await raw.close()
        await db.drop_all()
        await db.dispose()
    return {"backend": name, "url": url.split("@")[-1], **result}


def tortoise_python() -> Path:
    """The Python of Tortoise's venv for this benchmark (made if missing)."""
    from web_requests import venv_python

    venv = Path(__file__).resolve().parent / ".venvs" / "tortoise_backends"
    return venv_python(venv, TORTOISE_REQUIREMENTS)


def child(python: Path | str, script: Path, name: str, args: Any) -> dict[str, Any]:
    """One backend measured in a process of its own."""
    out = subprocess.run(
        [
            str(python),
            str(script),
            "--child",
            name,
            *("--calls", str(args.calls), "--hot", str(args.hot)),
            *("--blocks", str(args.blocks), "--rounds", str(args.rounds)),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=os.environ,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def line(who: str, name: str, result: dict[str, Any]) -> str:
    us, race_ = result["us"], result["race"]
    return (
        f"{name:8} {who:9} hit {us['ours_hit']:6.0f} us ({result['hit_x_floor']:.2f}x "
        f"raw {us['raw_hit']:.0f})  miss {us['ours_miss']:6.0f} us "
        f"({result['miss_x_floor']:.2f}x raw {us['raw_miss']:.0f})  hit-conc "
        f"{us['ours_conc']:5.0f}/s ({result['conc_pct_floor']:.0f}% of raw "
        f"{us['raw_conc']:.0f}/s)  race: {race_['exceptions']} exceptions, "
        f"{race_['rounds_without_exactly_one_created']} of {race_['rounds']} "
        "rounds without one created"
    )


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
    parser.add_argument("--rounds", type=int, default=20, help="race rounds")
    parser.add_argument("--no-tortoise", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = asyncio.run(
            run_ours(args.child, args.calls, args.hot, args.blocks, args.rounds)
        )
        print(json.dumps(result))
        return
    from sqlalchemy_objects import __version__

    here = Path(__file__).resolve().parent
    tortoise = None if args.no_tortoise else tortoise_python()
    results = []
    for name in args.only or list(BACKENDS):
        # each backend, and each system, in its own process
        result = child(sys.executable, Path(__file__), name, args)
        print(line("ours", name, result), flush=True)
        if tortoise is not None:
            peer = here / "peers" / "tortoise_backends_peer.py"
            result["tortoise"] = child(tortoise, peer, name, args)
            print(line("Tortoise", name, result["tortoise"]), flush=True)
        results.append(result)
    today = datetime.date.today().isoformat()
    path = results_dir() / f"backends-{today}.json"
    path.write_text(
        json.dumps(
            {
                "command": "benchmarks/backends.py " + " ".join(sys.argv[1:]),
                "python": platform.python_version(),
                "sqlalchemy_objects": __version__,
                "tortoise": None if tortoise is None else TORTOISE_REQUIREMENTS,
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

"""How get_or_create scales, against the raw-asyncpg floor, in one run.

    make bench                                   # runs this after the peers
    .venv/bin/python benchmarks/scaling.py

On PostgreSQL, table ``(id serial pk, key text unique not null, value text not
null)``, pools of 20 connections on both sides:

- table size: hit and miss latency (one coroutine, median µs) with 10³, 10⁴,
  10⁵ and 10⁶ rows, hits spread over the whole table;
- tasks: hit throughput (ops/s) with 1, 4, 16 and 64 coroutines;
- processes: hit throughput of 1, 2 and 4 OS processes of 32 coroutines each;
- memory: our process's resident set size every 10,000 calls over 100,000
  get_or_create calls (one in ten a miss), which must stay flat after warm-up.

The floor and ours alternate in blocks within each measurement, so that noise
hits both alike. Results go to benchmarks/results/scaling-<date>.json and
markdown tables on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import multiprocessing
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import Integer, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sqlalchemy_objects import Database, ManagerMixin

URL = "postgresql://postgres@127.0.0.1:5432/test"
TABLE = "scale_items"
SELECT = f"SELECT id, key, value FROM {TABLE} WHERE key = $1"
INSERT = (
    f"INSERT INTO {TABLE} (key, value) VALUES ($1, 'v') "
    "ON CONFLICT (key) DO NOTHING RETURNING id, key, value"
)


class Base(ManagerMixin, DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = TABLE

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(Text, unique=True)
    value: Mapped[str] = mapped_column(Text)


Call = Callable[[str], Awaitable[Any]]


class Systems:
    """The floor and ours, each with a pool of 20, in this process (or one of
    them: four processes with both would pass PostgreSQL's 100 connections)."""

    async def open(self, which: tuple[str, ...] = ("floor", "ours")) -> None:
        self.pool: Any = None
        if "floor" in which:
            self.pool = await asyncpg.create_pool(URL, min_size=20, max_size=20)
        self.db = Database(URL, pool_size=20, max_overflow=0)
        if "ours" in which:
            self.db.bind(Base)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        await self.db.dispose()

    async def floor(self, key: str) -> Any:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(SELECT, key)
            if row is not None:
                return row
            row = await conn.fetchrow(INSERT, key)
            return row if row is not None else await conn.fetchrow(SELECT, key)

    async def ours(self, key: str) -> Any:
        return await Item.objects.get_or_create(key=key, defaults={"value": "v"})

    def both(self) -> dict[str, Call]:
        return {"floor": self.floor, "ours": self.ours}


async def fill(rows: int) -> None:
    """Grow the table to *rows* rows: hot-0 .. hot-<rows-1>."""
    conn = await asyncpg.connect(URL)
    try:
        have = await conn.fetchval(
            f"SELECT count(*) FROM {TABLE} WHERE key LIKE 'hot-%'"
        )
        if have < rows:
            await conn.execute(
                f"INSERT INTO {TABLE} (key, value) "
                "SELECT 'hot-' || g, 'v' FROM generate_series($1::int, $2::int) g",
                have,
                rows - 1,
            )
            await conn.execute(f"ANALYZE {TABLE}")
    finally:
        await conn.close()


async def fresh_table() -> None:
    conn = await asyncpg.connect(URL)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        await conn.execute(
            f"CREATE TABLE {TABLE} (id serial PRIMARY KEY, "
            "key text UNIQUE NOT NULL, value text NOT NULL)"
        )
    finally:
        await conn.close()


async def latencies(
    calls: dict[str, Call], keys: Callable[[str, int], str], n: int, block: int = 100
) -> dict[str, float]:
    """Median µs per call of each system, *n* calls each, in alternating blocks."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for start in range(0, n, block):
        order = list(calls.items())
        if (start // block) % 2:
            order.reverse()
        for name, call in order:
            for i in range(start, min(n, start + block)):
                key = keys(name, i)
                t0 = time.perf_counter_ns()
                await call(key)
                samples[name].append((time.perf_counter_ns() - t0) / 1000)
    return {name: statistics.median(xs) for name, xs in samples.items()}


async def throughput(call: Call, keys: list[str], tasks: int, calls: int) -> float:
    """ops/s of *calls* hits shared by *tasks* coroutines."""
    todo = iter(range(calls))

    async def worker() -> None:
        for i in todo:
            await call(keys[i % len(keys)])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return calls / (time.perf_counter() - started)


async def by_table_size(systems: Systems, sizes: list[int]) -> list[dict[str, Any]]:
    out = []
    for rows in sizes:
        await fill(rows)
        rng = random.Random(rows)
        tag = time.time_ns()

        def hit(name: str, i: int, rng: random.Random = rng, rows: int = rows) -> str:
            return f"hot-{rng.randrange(rows)}"

        def miss(name: str, i: int, tag: int = tag) -> str:
            return f"new-{tag}-{name}-{i}"

        await latencies(systems.both(), hit, 200)  # warm-up
        hits = await latencies(systems.both(), hit, 2000)
        misses = await latencies(systems.both(), miss, 600)
        out.append({"rows": rows, "hit_us": hits, "miss_us": misses})
        print(f"rows {rows:>9,}: hit {hits}, miss {misses}", flush=True)
    return out


async def by_tasks(systems: Systems, counts: list[int]) -> list[dict[str, Any]]:
    keys = [f"hot-{i}" for i in range(1000)]
    out = []
    for tasks in counts:
        ops: dict[str, list[float]] = {"floor": [], "ours": []}
        for repeat in range(2):
            order = list(systems.both().items())
            if repeat:
                order.reverse()
            for name, call in order:
                ops[name].append(await throughput(call, keys, tasks, 3000))
        row = {"tasks": tasks, "ops": {n: max(v) for n, v in ops.items()}}
        out.append(row)
        print(f"tasks {tasks:>3}: {row['ops']}", flush=True)
    return out


def _process_worker(system: str, seconds: float, start_at: float, queue: Any) -> None:
    async def run() -> int:
        systems = Systems()
        await systems.open((system,))
        call = systems.both()[system]
        keys = [f"hot-{i}" for i in range(1000)]
        for key in keys[:100]:
            await call(key)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = time.monotonic() + seconds
        done = 0

        async def worker(offset: int) -> None:
            nonlocal done
            i = offset
            while time.monotonic() < deadline:
                await call(keys[i % len(keys)])
                i += 7
                done += 1

        await asyncio.gather(*(worker(n) for n in range(32)))
        await systems.close()
        return done

    try:
        queue.put(asyncio.run(run()))
    except BaseException as exc:
        queue.put(f"{type(exc).__name__}: {exc}")
        raise


def by_processes(counts: list[int], seconds: float) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    out = []
    for processes in counts:
        ops: dict[str, float] = {}
        for system in ("floor", "ours"):
            queue = ctx.Queue()
            start_at = time.time() + 3.0  # every process connected and warm
            workers = [
                ctx.Process(
                    target=_process_worker, args=(system, seconds, start_at, queue)
                )
                for _ in range(processes)
            ]
            for w in workers:
                w.start()
            counts = [queue.get(timeout=120) for _ in workers]
            if not all(isinstance(c, int) for c in counts):
                raise SystemExit(f"a {system} process failed: {counts}")
            total = sum(counts)
            for w in workers:
                w.join()
            ops[system] = total / seconds
        out.append({"processes": processes, "ops": ops})
        print(f"processes {processes}: {ops}", flush=True)
    return out


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def memory(systems: Systems, calls: int, every: int) -> list[dict[str, int]]:
    """Our RSS every *every* calls of get_or_create (one in ten a miss)."""
    tag = time.time_ns()
    series = [{"calls": 0, "rss_kib": _rss_kib()}]
    for i in range(1, calls + 1):
        key = f"mem-{tag}-{i}" if i % 10 == 0 else f"hot-{i % 1000}"
        await systems.ours(key)
        if i % every == 0:
            series.append({"calls": i, "rss_kib": _rss_kib()})
    print(f"rss KiB: {[p['rss_kib'] for p in series]}", flush=True)
    return series


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| rows | floor hit µs | ours hit µs | × floor | floor miss µs "
        "| ours miss µs | × floor |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["table_size"]:
        h, m = r["hit_us"], r["miss_us"]
        lines.append(
            f"| {r['rows']:,} | {h['floor']:.0f} | {h['ours']:.0f} "
            f"| {h['ours'] / h['floor']:.2f} | {m['floor']:.0f} | {m['ours']:.0f} "
            f"| {m['ours'] / m['floor']:.2f} |"
        )
    for key, heading in (
        ("tasks", "coroutines"),
        ("processes", "processes × 32 coroutines"),
    ):
        lines += ["", f"| {heading} | floor ops/s | ours ops/s | % of floor |"]
        lines.append("| ---: | ---: | ---: | ---: |")
        for r in result[key]:
            o = r["ops"]
            lines.append(
                f"| {r[key]} | {o['floor']:.0f} | {o['ours']:.0f} "
                f"| {o['ours'] / o['floor']:.0%} |"
            )
    rss = result["memory"]
    warm = next(p for p in rss if p["calls"] >= rss[-1]["calls"] // 5)
    lines += [
        "",
        f"Our RSS over {rss[-1]['calls']:,} calls: {rss[0]['rss_kib'] / 1024:.1f} MiB "
        f"at start, {warm['rss_kib'] / 1024:.1f} MiB after {warm['calls']:,} calls, "
        f"{rss[-1]['rss_kib'] / 1024:.1f} MiB at the end "
        f"({(rss[-1]['rss_kib'] - warm['rss_kib']) / 1024:+.1f} MiB after warm-up).",
    ]
    return "\n".join(lines)


async def measure_in_process(args: argparse.Namespace) -> dict[str, Any]:
    await fresh_table()
    systems = Systems()
    await systems.open()
    try:
        sizes = [10**k for k in range(3, 3 + args.sizes)]
        result = {"table_size": await by_table_size(systems, sizes)}
        result["tasks"] = await by_tasks(systems, [1, 4, 16, 64])
        result["memory"] = await memory(
            systems, args.memory_calls, args.memory_calls // 10
        )
    finally:
        await systems.close()
    return result


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
    parser.add_argument("--sizes", type=int, default=4, help="10^3 .. 10^(2+N) rows")
    parser.add_argument("--memory-calls", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=3.0, help="per process run")
    args = parser.parse_args()
    started = time.monotonic()
    result = asyncio.run(measure_in_process(args))
    result["processes"] = by_processes([1, 2, 4], args.seconds)
    command = " ".join(["python", "benchmarks/scaling.py", *sys.argv[1:]])
    table = markdown(result)
    out = results_dir() / f"scaling-{datetime.date.today()}.json"
    out.write_text(
        json.dumps(
            {
                "command": command,
                "machine": platform.platform(),
                "python": platform.python_version(),
                "args": vars(args),
                "seconds": round(time.monotonic() - started),
                **result,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\ncommand: {command}\n\n{table}\n\nwritten: {out}")


if __name__ == "__main__":
    main()

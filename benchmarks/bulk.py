"""bulk_get_or_create against the alternatives, on PostgreSQL (asyncpg).

    .venv/bin/python benchmarks/bulk.py --keys 1000 --repeats 5

1,000 keys of which half exist already, three ways, each on a fresh table,
interleaved so machine noise hits them alike:

- ``sequential``: 1,000 ``get_or_create`` calls, one after the other;
- ``bulk``: one ``bulk_get_or_create`` call;
- ``asyncpg``: the same work hand-written on raw asyncpg (a SELECT with
  ``= ANY($1)``, ``INSERT ... SELECT FROM unnest($1) ON CONFLICT DO NOTHING
  RETURNING``, a SELECT of the rest), in one transaction.

Then 100,000 keys in one bulk call: wall time and the peak of Python's
allocations (tracemalloc) against 10,000 keys, to show memory grows with the
result only. Medians in ms and the ratios; JSON to
benchmarks/results/bulk-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from sqlalchemy import String  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column  # noqa: E402

from sqlalchemy_objects import Database, ManagerMixin  # noqa: E402

URL = "postgresql://postgres@127.0.0.1:5432/test"


class Base(ManagerMixin, DeclarativeBase):
    pass


class Event(Base):
    __tablename__ = "bench_bulk_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="x")


async def fresh(db: Database, keys: int) -> list[dict[str, Any]]:
    await db.drop_all()
    await db.create_all()
    await Event.objects.bulk_create([Event(name=f"e{i}") for i in range(0, keys, 2)])
    return [{"name": f"e{i}"} for i in range(keys)]


async def sequential(db: Database, lookups: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for lookup in lookups:
        await Event.objects.get_or_create(**lookup)
    return time.perf_counter() - start


async def bulk(db: Database, lookups: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    await Event.objects.bulk_get_or_create(lookups)
    return time.perf_counter() - start


async def raw(conn: asyncpg.Connection, lookups: list[dict[str, Any]]) -> float:
    names = [lk["name"] for lk in lookups]
    start = time.perf_counter()
    async with conn.transaction():
        found = {
            r["name"]: r
            for r in await conn.fetch(
                "SELECT id, name, kind FROM bench_bulk_events WHERE name = ANY($1)",
                names,
            )
        }
        missing = [n for n in names if n not in found]
        created = {
            r["name"]
            for r in await conn.fetch(
                "INSERT INTO bench_bulk_events (name, kind) SELECT n, 'x' FROM unnest($1::text[]) AS n "
                "ON CONFLICT (name) DO NOTHING RETURNING name",
                missing,
            )
        }
        rest = await conn.fetch(
            "SELECT id, name, kind FROM bench_bulk_events WHERE name = ANY($1)", missing
        )
        found.update({r["name"]: r for r in rest})
    [(found[n], n in created) for n in names]
    return time.perf_counter() - start


def results_dir() -> Path:
    """Where results go: benchmarks/results/, or $BENCH_RESULTS (the quick
    mode of benchmarks/all.py, so its figures never replace a full run's)."""
    folder = Path(
        os.environ.get("BENCH_RESULTS", Path(__file__).resolve().parent / "results")
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def main(keys: int, repeats: int) -> dict[str, Any]:
    db = Database(URL)
    db.bind(Base)
    conn = await asyncpg.connect(URL)
    times: dict[str, list[float]] = {"sequential": [], "bulk": [], "asyncpg": []}
    try:
        for _ in range(repeats):
            for name in times:
                lookups = await fresh(db, keys)
                if name == "sequential":
                    times[name].append(await sequential(db, lookups))
                elif name == "bulk":
                    times[name].append(await bulk(db, lookups))
                else:
                    times[name].append(await raw(conn, lookups))
        medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
        memory = {}
        for n in (10_000, 100_000):
            lookups = await fresh(db, n)
            tracemalloc.start()
            start = time.perf_counter()
            results = await Event.objects.bulk_get_or_create(lookups)
            elapsed = time.perf_counter() - start
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert sum(c for _, c in results) == n // 2
            del results
            memory[str(n)] = {
                "seconds": round(elapsed, 2),
                "peak_mib": round(peak / 2**20, 1),
            }
        await db.drop_all()
    finally:
        await conn.close()
        await db.dispose()
    return {
        "keys": keys,
        "repeats": repeats,
        "median_ms": {k: round(v, 1) for k, v in medians.items()},
        "sequential_over_bulk": round(medians["sequential"] / medians["bulk"], 1),
        "bulk_over_asyncpg": round(medians["bulk"] / medians["asyncpg"], 2),
        "large": memory,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(main(args.keys, args.repeats))
    result["command"] = (
        f"benchmarks/bulk.py --keys {args.keys} --repeats {args.repeats}"
    )
    print(json.dumps(result, indent=2))
    out = results_dir() / f"bulk-{datetime.date.today()}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")

"""Replication lag as a user's code sees it, and what read-your-writes buys.

    .venv/bin/python benchmarks/replicas.py --calls 1000

Starts a PostgreSQL primary and a streaming replica of its own
(tests/deployments/replica.py), then, for ``Database(primary,
replicas=[replica], read_your_writes=...)``: a get_or_create miss on the
primary followed at once by a get of that key, which the routing sends to the
replica unless read-your-writes keeps it on the primary. Counted one task at
a time and with 8 tasks at once, read_your_writes 0 (off) and 2.0 (the
default). For each miss the extra wait until the replica showed the row.
Also the median hit latency of a get on the primary and on the replica. JSON
to benchmarks/results/replicas-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import datetime
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import String  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column  # noqa: E402

from sqlalchemy_objects import Database, ManagerMixin  # noqa: E402
from tests.deployments.replica import running_cluster  # noqa: E402


class Base(ManagerMixin, DeclarativeBase):
    pass


class Key(Base):
    __tablename__ = "replica_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)


async def miss_then_get(db: Database, replica: Database, key: str) -> float | None:
    """None if the get found the row; else seconds until the replica had it."""
    await Key.objects.using(db).get_or_create(name=key)
    if await Key.objects.using(db).get_or_none(name=key) is not None:
        return None
    start = time.perf_counter()
    while True:  # poll the replica (its replay is not an event we can wait on)
        if await Key.objects.using(replica).get_or_none(name=key) is not None:
            return time.perf_counter() - start
        await asyncio.sleep(0.0005)


async def measure(
    primary: str, replica_url: str, calls: int, ryw: float, tasks: int
) -> dict[str, Any]:
    db = Database(primary, replicas=[replica_url], read_your_writes=ryw)
    replica = Database(replica_url)
    waits: list[float] = []
    prefix = f"ryw{ryw}-t{tasks}-"

    async def worker(w: int) -> None:
        for i in range(w, calls, tasks):
            wait = await miss_then_get(db, replica, f"{prefix}{i}")
            if wait is not None:
                waits.append(wait)

    try:
        # Each worker in a context of its own (as separate requests would be).
        await asyncio.gather(
            *(
                asyncio.create_task(worker(w), context=contextvars.Context())
                for w in range(tasks)
            )
        )
    finally:
        await db.dispose()
        await replica.dispose()
    return {
        "read_your_writes": ryw,
        "tasks": tasks,
        "calls": calls,
        "missed": len(waits),
        "extra_wait_ms_median": round(statistics.median(waits) * 1000, 2)
        if waits
        else None,
        "extra_wait_ms_max": round(max(waits) * 1000, 2) if waits else None,
    }


async def hit_latency(url: str, calls: int) -> float:
    db = Database(url)
    try:
        await Key.objects.using(db).get(name="ryw0.0-t1-0")
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            await Key.objects.using(db).get(name="ryw0.0-t1-0")
            times.append(time.perf_counter() - start)
        return round(statistics.median(times) * 1e6, 1)
    finally:
        await db.dispose()


async def main(calls: int) -> dict[str, Any]:
    with running_cluster() as cluster:
        setup = Database(cluster.primary_url)
        setup.bind(Base)
        await setup.create_all()
        await setup.dispose()
        await asyncio.sleep(0.5)  # the table reaches the replica
        runs = [
            await measure(cluster.primary_url, cluster.replica_url, calls, ryw, tasks)
            for ryw in (0.0, 2.0)
            for tasks in (1, 8)
        ]
        latency = {
            "get_hit_us_primary": await hit_latency(cluster.primary_url, calls),
            "get_hit_us_replica": await hit_latency(cluster.replica_url, calls),
        }
    return {"runs": runs, **latency}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    result = asyncio.run(main(args.calls))
    result["command"] = f"benchmarks/replicas.py --calls {args.calls}"
    print(json.dumps(result, indent=2))
    out = ROOT / "benchmarks" / "results" / f"replicas-{datetime.date.today()}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")

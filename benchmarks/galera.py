"""get_or_create races across a 3-node MariaDB Galera cluster, with counts.

    .venv/bin/python benchmarks/galera.py --rounds 20 --tasks 16

Starts a cluster of its own (tests/deployments/galera.py), then one OS
process per node, *tasks* tasks each, racing on one new key per round: in
autocommit mode, and inside ``run_in_transaction`` with a side row per
caller. Reports per mode the rows per key, the created=True per key, the
exceptions, and how many aborted transactions the library reran (its INFO
log lines, counted in each process). JSON to
benchmarks/results/galera-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from sqlalchemy_objects import Database  # noqa: E402
from tests.concurrency import worker  # noqa: E402
from tests.deployments.galera import running_galera  # noqa: E402
from tests.models import Base  # noqa: E402


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.reruns = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "rerunning" in record.getMessage():
            self.reruns += 1


def counted(
    mode: str, url: str, rounds: int, tasks: int, barrier: Any, p: int, out: Any
) -> None:
    """A worker process that also counts the library's rerun log lines."""
    counter = _Count()
    log = logging.getLogger("sqlalchemy_objects")
    log.setLevel(logging.INFO)
    log.addHandler(counter)

    class Out:
        def put(self, report: Any) -> None:
            out.put({"report": report, "reruns": counter.reruns})

    if mode == "autocommit":
        worker.run(url, rounds, tasks, barrier, False, Out())
    else:
        worker.run_transactions(url, rounds, tasks, barrier, p, Out())


async def reset(url: str) -> None:
    db = Database(url)
    db.bind(Base)
    try:
        await db.drop_all()
        await db.create_all()
    finally:
        await db.dispose()


async def rows(url: str) -> tuple[dict[str, int], int]:
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            await conn.execute(text("SET SESSION wsrep_sync_wait = 1"))
            result = await conn.execute(
                text("SELECT username, count(*) FROM users GROUP BY username")
            )
            users: dict[Any, Any] = {row[0]: row[1] for row in result}
            notes = (
                await conn.execute(text("SELECT count(*) FROM notes"))
            ).scalar_one()
            return {str(k): int(v) for k, v in users.items()}, int(notes)
    finally:
        await db.dispose()


def main(rounds: int, tasks: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with running_galera() as cluster:
        urls = [n.url() for n in cluster.nodes]
        for mode in ("autocommit", "run_in_transaction"):
            asyncio.run(reset(urls[0]))
            start = time.perf_counter()

            def args_for(
                p: int, barrier: Any, q: Any, mode: str = mode
            ) -> tuple[Any, ...]:
                return (mode, urls[p], rounds, tasks, barrier, p, q)

            reports = worker.run_in_processes(3, counted, args_for)
            elapsed = time.perf_counter() - start
            created = [sum(r["report"][i][0] for r in reports) for i in range(rounds)]
            errors = [e for r in reports for _, errs in r["report"] for e in errs]
            per_key, notes = asyncio.run(rows(urls[2]))
            out[mode] = {
                "rounds": rounds,
                "callers_per_round": 3 * tasks,
                "rounds_with_one_created": sum(c == 1 for c in created),
                "rows_per_key": sorted(set(per_key.values())),
                "keys": len(per_key),
                "side_rows": notes,
                "exceptions": len(errors),
                "reruns": sum(r["reruns"] for r in reports),
                "seconds": round(elapsed, 1),
            }
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=16)
    args = parser.parse_args()
    result = main(args.rounds, args.tasks)
    result["command"] = (
        f"benchmarks/galera.py --rounds {args.rounds} --tasks {args.tasks}"
    )
    print(json.dumps(result, indent=2))
    out = ROOT / "benchmarks" / "results" / f"galera-{datetime.date.today()}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")

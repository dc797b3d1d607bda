"""Repeat the SQLite cancellation storm and report rounds that stall.

    .venv/bin/python benchmarks/sqlite_storm.py --runs 20

Each run is a fresh process and a fresh database file: 10 rounds of 100
``db.session()`` blocks (a side row, then get_or_create / create / get on 20
keys), 70 % cancelled at a random point in 0-200 ms. A round that takes longer
than ``--stall`` seconds counts as a stall (before the fix of 2026-11-22 a
stalled round waited for the 30 s busy timeout or for ever); a run that takes
longer than ``--timeout`` is killed and counts as a hang. Exits non-zero if
any run stalled, hung or raised.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.models


async def storm(seed: int, mode: str, stall: float) -> int:
    from sqlalchemy_objects import Database
    from tests.concurrency.worker import storm_call
    from tests.models import Base

    stalls = 0
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{tmp}/storm.sqlite3", pool_size=40)
        db.bind(Base)
        await db.create_all()
        rng = random.Random(seed)
        loop = asyncio.get_running_loop()

        async def call(i: int) -> None:
            op = rng.choice(["get_or_create", "create", "get"])
            await storm_call(db, f"k{i % 20}", op, mode == "session")

        for _ in range(10):
            start = time.monotonic()
            tasks = [asyncio.ensure_future(call(i)) for i in range(100)]
            for task in tasks:
                if rng.random() < 0.7:
                    loop.call_later(rng.uniform(0, 0.2), task.cancel)
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if result is not None and not isinstance(
                    result, asyncio.CancelledError
                ):
                    raise result
            stalls += time.monotonic() - start > stall
        await db.dispose()
    return stalls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mode", choices=["session", "autocommit"], default="session")
    parser.add_argument("--stall", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed is not None:  # one run, in this process
        return asyncio.run(storm(args.seed, args.mode, args.stall))
    bad = 0
    for seed in range(args.runs):
        command = [sys.executable, __file__, "--seed", str(seed), "--mode", args.mode]
        command += ["--stall", str(args.stall)]
        start = time.monotonic()
        try:
            done = subprocess.run(command, timeout=args.timeout, capture_output=True)
            outcome = (
                f"{done.returncode} stalled rounds"
                if done.returncode >= 0
                else "killed"
            )
            if done.returncode not in (0,) and done.stderr:
                outcome = f"error: {done.stderr.decode().strip().splitlines()[-1]}"
        except subprocess.TimeoutExpired:
            outcome = f"hang (> {args.timeout:.0f} s)"
            done = None
        bad += done is None or done.returncode != 0
        print(
            f"run {seed:3d}: {time.monotonic() - start:6.1f} s  {outcome}", flush=True
        )
    print(f"{args.runs} runs ({args.mode}), {bad} with a stall, hang or error")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Timing loop shared by every peer script (stdlib only: each peer runs in its
own virtualenv). A peer supplies ``get_or_create(key) -> (obj, created)``; the
table ``(id serial pk, key text unique not null, value text not null)`` with
its hot keys is made by benchmarks/peers/run.py before the peer starts."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

GetOrCreate = Callable[[str], Awaitable[tuple[Any, bool]]]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--table", required=True)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--hot", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument("--tag", default="0")
    return parser.parse_args()


def _p99(xs: list[float]) -> float:
    return sorted(xs)[max(0, round(len(xs) * 0.99) - 1)]


async def measure(args: argparse.Namespace, get_or_create: GetOrCreate) -> None:
    """Time hit-seq and miss-seq, run the race, print one JSON line."""
    hot = [f"hot-{i}" for i in range(args.hot)]
    for i in range(200):
        await get_or_create(hot[i % len(hot)])
    timings: dict[str, list[float]] = {"hit": [], "miss": []}
    for i in range(args.calls):
        started = time.perf_counter()
        _, created = await get_or_create(hot[i % len(hot)])
        timings["hit"].append((time.perf_counter() - started) * 1e6)
        assert not created
    for i in range(args.calls):
        started = time.perf_counter()
        _, created = await get_or_create(f"miss-{args.tag}-{i}")
        timings["miss"].append((time.perf_counter() - started) * 1e6)
        assert created
    # hit-conc: 32 coroutines share the calls (pool of 20 in every system)
    hot_calls = iter(range(args.calls * 2))

    async def worker() -> None:
        for i in hot_calls:
            await get_or_create(hot[i % len(hot)])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.callers)))
    ops = args.calls * 2 / (time.perf_counter() - started)
    exceptions: list[str] = []
    bad_rounds = 0
    for round_no in range(args.rounds):
        gate = asyncio.Event()
        key = f"race-{args.tag}-{round_no}"

        async def caller(key: str = key, gate: asyncio.Event = gate) -> Any:
            await gate.wait()
            return await get_or_create(key)

        tasks = [asyncio.ensure_future(caller()) for _ in range(args.callers)]
        await asyncio.sleep(0.01)
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [x for x in results if isinstance(x, BaseException)]
        exceptions += [type(e).__name__ for e in errors]
        n_created = sum(1 for x in results if isinstance(x, tuple) and x[1])
        bad_rounds += n_created != 1
    out: dict[str, Any] = {
        name: {"median": statistics.median(xs), "p99": _p99(xs)}
        for name, xs in timings.items()
    }
    out["hit_conc_ops"] = ops
    out["race"] = {
        "rounds": args.rounds,
        "callers": args.callers,
        "exceptions": len(exceptions),
        "exception_types": sorted(set(exceptions)),
        "rounds_without_exactly_one_created": bad_rounds,
    }
    print(json.dumps(out))

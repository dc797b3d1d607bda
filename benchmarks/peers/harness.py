"""Timing loop shared by every peer script (stdlib only: each peer runs in its
own virtualenv). A peer supplies ``get_or_create(key) -> (obj, created)`` and
``in_transaction(side_key, key) -> created``, which in one transaction of its
own inserts ``side_key`` into the side table, runs get_or_create(key) and
commits. The table ``(id serial pk, key text unique not null, value text not
null)`` with its hot keys, and the side table ``<table>_side (id serial pk,
key text unique not null)``, are made by benchmarks/peers/run.py before the
peer starts."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

GetOrCreate = Callable[[str], Awaitable[tuple[Any, bool]]]
InTransaction = Callable[[str, str], Awaitable[bool]]


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


async def race(
    args: argparse.Namespace, name: str, call: Callable[[int, str], Awaitable[bool]]
) -> tuple[dict[str, Any], list[str]]:
    """*args.rounds* rounds of *args.callers* calls released together on one new
    key each; return the tally and the ids of the calls that returned."""
    exceptions: list[str] = []
    returned: list[str] = []
    bad_rounds = 0
    for round_no in range(args.rounds):
        gate = asyncio.Event()
        key = f"{name}-{args.tag}-{round_no}"

        async def caller(
            i: int, key: str = key, gate: asyncio.Event = gate, round_no: int = round_no
        ) -> bool:
            await gate.wait()
            created = await call(i, key)
            returned.append(f"{name}-{args.tag}-{round_no}-{i}")
            return created

        tasks = [asyncio.ensure_future(caller(i)) for i in range(args.callers)]
        await asyncio.sleep(0.01)
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [x for x in results if isinstance(x, BaseException)]
        exceptions += [type(e).__name__ for e in errors]
        bad_rounds += sum(1 for x in results if x is True) != 1
    tally = {
        "rounds": args.rounds,
        "callers": args.callers,
        "exceptions": len(exceptions),
        "exception_types": sorted(set(exceptions)),
        "rounds_without_exactly_one_created": bad_rounds,
    }
    return tally, returned


async def measure(
    args: argparse.Namespace,
    get_or_create: GetOrCreate,
    in_transaction: InTransaction,
) -> None:
    """Time hit-seq, miss-seq and hit-conc, run both races, print one JSON line."""
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

    async def plain(i: int, key: str) -> bool:
        return (await get_or_create(key))[1]

    race_tally, _ = await race(args, "race", plain)

    async def in_tx(i: int, key: str) -> bool:
        return await in_transaction(f"{key}-{i}", key)

    # The side keys of the calls that returned: their rows must all be there.
    tx_tally, confirmed = await race(args, "race_tx", in_tx)
    out: dict[str, Any] = {
        name: {"median": statistics.median(xs), "p99": _p99(xs)}
        for name, xs in timings.items()
    }
    out["hit_conc_ops"] = ops
    out["race"] = race_tally
    out["race_tx"] = {**tx_tally, "confirmed_side_keys": confirmed}
    print(json.dumps(out))

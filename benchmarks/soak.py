"""Soak: N processes x M tasks of get_or_create / create / get for a given time,
with random cancellations and periodic connection kills, against PostgreSQL.

    .venv/bin/python benchmarks/soak.py --duration 300

Prints calls, errors by type, duplicate rows (must be 0), lost rows (must be 0)
and the peak RSS of each worker after warm-up and at the end (must not grow), and
writes benchmarks/results/soak-<date>.json. Exits non-zero if a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime
import json
import multiprocessing
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import String, func, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sqlalchemy_objects import Database, ManagerMixin

APP = "sqlalchemy-objects-soak"


class Base(ManagerMixin, DeclarativeBase):
    pass


class SoakKey(Base):
    __tablename__ = "soak_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    value: Mapped[str] = mapped_column(String(40))


class SoakEvent(Base):
    __tablename__ = "soak_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    tag: Mapped[str] = mapped_column(String(60))


def describe(exc: BaseException) -> str:
    """One line: the message, whether SQLAlchemy invalidated the connection, notes,
    and the innermost frame of the library that raised it."""
    import traceback

    frames = [
        f"{Path(f.filename).name}:{f.name}"
        for f in traceback.extract_tb(exc.__traceback__)
        if "sqlalchemy_objects" in f.filename
    ]
    notes = " | ".join(getattr(exc, "__notes__", []))
    message = " ".join(str(exc).split())[:200]
    invalidated = getattr(exc, "connection_invalidated", None)
    return f"{message} [invalidated={invalidated}; at {frames[-1:] or '?'}; notes: {notes or '-'}]"


def rss_kib() -> int:
    """The current resident set size of this process, in KiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * (os.sysconf("SC_PAGE_SIZE") // 1024)


async def worker_main(args: dict[str, Any], proc_no: int) -> dict[str, Any]:
    db = Database(
        args["url"],
        pool_size=args["tasks"],
        max_overflow=0,
        connect_args={"server_settings": {"application_name": APP}},
    )
    db.bind(Base)
    rng = random.Random(proc_no)
    deadline = time.monotonic() + args["duration"]
    warm_until = time.monotonic() + args["duration"] * 0.2
    calls = 0
    errors: collections.Counter[str] = collections.Counter()
    samples: dict[str, str] = {}
    # Confirmed writes go to a file, not a list: a growing list would show up as
    # RSS growth of the very process whose memory we watch.
    confirmed_path = Path(args["spool"]) / f"confirmed-{proc_no}.txt"
    confirmed = confirmed_path.open("w")
    rss_samples: list[tuple[float, int]] = []

    async def one(task_no: int, n: int) -> None:
        roll = rng.random()
        key = f"k{rng.randrange(args['keys'])}"
        if roll < 0.6:
            await SoakKey.objects.get_or_create(key=key, defaults={"value": "v"})
        elif roll < 0.8:
            tag = f"p{proc_no}-t{task_no}-{n}"
            await SoakEvent.objects.create(tag=tag)
            confirmed.write(tag + "\n")
        else:
            await SoakKey.objects.get_or_none(key=key)

    async def task(task_no: int) -> None:
        nonlocal calls
        n = 0
        while time.monotonic() < deadline:
            n += 1
            calls += 1
            call = asyncio.ensure_future(one(task_no, n))
            if rng.random() < args["cancel_rate"]:
                asyncio.get_running_loop().call_later(
                    rng.uniform(0, 0.005), call.cancel
                )
            try:
                await call
            except asyncio.CancelledError:
                errors["cancelled (injected)"] += 1
            except Exception as exc:
                errors[type(exc).__name__] += 1
                samples.setdefault(type(exc).__name__, describe(exc))

    async def sampler() -> None:
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            rss_samples.append((time.monotonic(), rss_kib()))

    await asyncio.gather(sampler(), *(task(t) for t in range(args["tasks"])))
    await db.dispose()
    confirmed.close()
    after_warmup = [kib for t, kib in rss_samples if t >= warm_until]
    step = max(1, len(rss_samples) // 4)
    quarters = [kib for _, kib in rss_samples[step - 1 :: step]][:4]
    return {
        "rss_kib_by_quarter": quarters,
        "proc": proc_no,
        "calls": calls,
        "errors": dict(errors),
        "error_samples": samples,
        "confirmed_file": str(confirmed_path),
        "rss_kib_at_warmup": after_warmup[0] if after_warmup else None,
        "rss_kib_peak_after_warmup": max(after_warmup) if after_warmup else None,
        "rss_kib_end": rss_samples[-1][1] if rss_samples else None,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def worker(args: dict[str, Any], proc_no: int, out: Any) -> None:
    out.put(asyncio.run(worker_main(args, proc_no)))


async def killer(url: str, until: float, every: float) -> int:
    db = Database(url)
    killed = 0
    try:
        while time.monotonic() < until:
            await asyncio.sleep(every)
            async with db.engine.connect() as conn:
                result = await conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = :app"
                    ).bindparams(app=APP)
                )
                killed += int(result.scalar_one())
    finally:
        await db.dispose()
    return killed


async def prepare(url: str) -> None:
    db = Database(url)
    db.bind(Base)
    await db.drop_all()
    await db.create_all()
    await db.dispose()


async def verify(url: str, confirmed: list[str]) -> dict[str, int]:
    db = Database(url)
    db.bind(Base)
    try:
        async with db.session() as session:
            tags = list((await session.scalars(select(SoakEvent.tag))).all())
            dup_keys = (
                await session.execute(
                    select(SoakKey.key).group_by(SoakKey.key).having(func.count() > 1)
                )
            ).all()
            keys = int(
                await session.scalar(select(func.count()).select_from(SoakKey)) or 0
            )
        counts = collections.Counter(tags)
        return {
            "rows_events": len(tags),
            "rows_keys": keys,
            "duplicate_events": sum(1 for c in counts.values() if c > 1),
            "duplicate_keys": len(dup_keys),
            "lost_events": sum(1 for tag in confirmed if tag not in counts),
        }
    finally:
        await db.drop_all()
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds")
    parser.add_argument("--keys", type=int, default=200, help="size of the hot key set")
    parser.add_argument("--kill-every", type=float, default=10.0, help="seconds")
    parser.add_argument("--cancel-rate", type=float, default=0.05)
    ns = parser.parse_args()
    args = vars(ns)
    args["spool"] = tempfile.mkdtemp(prefix="soak-")
    asyncio.run(prepare(ns.url))

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(args, i, out)) for i in range(ns.processes)
    ]
    started = time.monotonic()
    for proc in procs:
        proc.start()
    killed = asyncio.run(killer(ns.url, started + ns.duration, ns.kill_every))
    reports = [out.get(timeout=ns.duration + 300) for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = time.monotonic() - started
    confirmed = [
        tag
        for r in reports
        for tag in Path(r["confirmed_file"]).read_text().splitlines()
    ]
    checks = asyncio.run(verify(ns.url, confirmed))

    errors: collections.Counter[str] = collections.Counter()
    samples: dict[str, str] = {}
    for r in reports:
        errors.update(r["errors"])
        for name, sample in r["error_samples"].items():
            samples.setdefault(name, sample)
    calls = sum(r["calls"] for r in reports)
    command = " ".join(["python", *sys.argv])
    print(f"command: {command}")
    print(
        f"{ns.processes} processes x {ns.tasks} tasks, {elapsed:.0f} s, hot keys {ns.keys}"
    )
    print(f"calls: {calls} ({calls / elapsed:.0f}/s); connections killed: {killed}")
    print(f"errors by type: {dict(errors) or 'none'}")
    for name, sample in sorted(samples.items()):
        print(f"  {name}: {sample}")
    print(
        f"rows: {checks['rows_keys']} keys, {checks['rows_events']} events; "
        f"duplicate rows: {checks['duplicate_keys'] + checks['duplicate_events']}; "
        f"lost rows: {checks['lost_events']} of {len(confirmed)} confirmed"
    )
    growth_ok = True
    for r in sorted(reports, key=lambda r: r["proc"]):
        warm, peak = r["rss_kib_at_warmup"], r["rss_kib_peak_after_warmup"]
        grew = (peak - warm) / warm if warm and peak else 0.0
        growth_ok &= grew < 0.10
        print(
            f"process {r['proc']}: calls {r['calls']}, RSS after warm-up {warm} KiB, "
            f"peak after warm-up {peak} KiB ({grew:+.1%}), end {r['rss_kib_end']} KiB, "
            f"by quarter {r['rss_kib_by_quarter']}"
        )
    result = {
        "command": command,
        "args": args,
        "elapsed_s": round(elapsed, 1),
        "calls": calls,
        "killed_connections": killed,
        "errors": dict(errors),
        "error_samples": samples,
        "checks": checks,
        "confirmed_rows": len(confirmed),
        "workers": [
            {k: v for k, v in r.items() if k != "confirmed_file"} for r in reports
        ],
    }
    out_file = Path(__file__).parent / "results" / f"soak-{datetime.date.today()}.json"
    out_file.parent.mkdir(exist_ok=True)
    out_file.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: benchmarks/results/{out_file.name}")
    ok = (
        checks["duplicate_keys"] == 0
        and checks["duplicate_events"] == 0
        and checks["lost_events"] == 0
        and growth_ok
    )
    print("soak: OK" if ok else "soak: FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

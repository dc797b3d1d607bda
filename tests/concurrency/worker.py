"""A worker process for the multi-process race: many tasks racing on one key per round.

Each process opens its own Database (its own pool), waits at a cross-process
barrier, then fires its tasks at once. It reports, per round, how many of its
calls created the row and the exceptions it saw.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy_objects import Database
from tests.models import Base, Note, User


async def _race(
    url: str, rounds: int, tasks: int, barrier: Any, in_session: bool
) -> list[tuple[int, list[str]]]:
    db = Database(url, pool_size=tasks, max_overflow=0)
    db.bind(Base)
    report: list[tuple[int, list[str]]] = []

    async def one(key: str, go: asyncio.Event) -> bool:
        await go.wait()
        if in_session:
            async with db.session():
                _, created = await User.objects.get_or_create(username=key)
        else:
            _, created = await User.objects.get_or_create(username=key)
        return created

    try:
        # Open the pool's connections before the first round, so that the
        # release is not spread out by connection set-up.
        await asyncio.gather(*(User.objects.count() for _ in range(tasks)))
        for round_no in range(rounds):
            go = asyncio.Event()
            pending = [
                asyncio.ensure_future(one(f"round-{round_no}", go))
                for _ in range(tasks)
            ]
            await asyncio.sleep(0)  # every task is now parked on `go`
            await asyncio.to_thread(barrier.wait)  # all processes are here
            go.set()
            results = await asyncio.gather(*pending, return_exceptions=True)
            created = sum(1 for r in results if r is True)
            errors = [
                f"{type(r).__name__}: {r}"
                for r in results
                if isinstance(r, BaseException)
            ]
            report.append((created, errors))
    finally:
        await db.dispose()
    return report


def run(
    url: str, rounds: int, tasks: int, barrier: Any, in_session: bool, out: Any
) -> None:
    """Process entry point: race, then put the report on *out*."""
    threading.current_thread().name = "race-worker"
    try:
        out.put(asyncio.run(_race(url, rounds, tasks, barrier, in_session)))
    except BaseException as exc:
        barrier.abort()
        out.put([(0, [f"worker crashed: {type(exc).__name__}: {exc}"])])


async def _write_mix(
    url: str, ops: int, tasks: int, barrier: Any, proc_no: int
) -> list[str]:
    """Each task alternates autocommit creates, get_or_create on hot keys and
    session blocks that do both; returns the exceptions seen (as text)."""
    db = Database(url, pool_size=tasks, max_overflow=0)
    db.bind(Base)
    errors: list[str] = []

    async def task(task_no: int) -> None:
        for n in range(ops):
            tag = f"p{proc_no}-t{task_no}-{n}"
            try:
                if n % 3 == 0:
                    await Note.objects.create(text=tag)
                elif n % 3 == 1:
                    await User.objects.get_or_create(username=f"hot-{n % 10}")
                    await Note.objects.create(text=tag)
                else:
                    async with db.session():
                        await Note.objects.create(text=tag)
                        await User.objects.get_or_create(
                            username=f"hot-{(n + task_no) % 10}"
                        )
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    try:
        await asyncio.to_thread(barrier.wait)
        await asyncio.gather(*(task(t) for t in range(tasks)))
    finally:
        await db.dispose()
    return errors


def write_mix(
    url: str, ops: int, tasks: int, barrier: Any, proc_no: int, out: Any
) -> None:
    """Process entry point for the SQLite many-writers test."""
    try:
        out.put(asyncio.run(_write_mix(url, ops, tasks, barrier, proc_no)))
    except BaseException as exc:
        barrier.abort()
        out.put([f"worker crashed: {type(exc).__name__}: {exc}"])


def prepared_url(backend: str, tmp_path: Path) -> str:
    """Create the test tables on *backend* and return its URL for child processes."""
    from tests.conftest import open_database

    async def prepare() -> str:
        db = await open_database(backend, tmp_path)
        url = db.url.render_as_string(hide_password=False)
        await db.dispose()
        return url

    return asyncio.run(prepare())


def run_in_processes(
    count: int,
    target: Callable[..., None],
    args_for: Callable[[int, Any, Any], tuple[Any, ...]],
) -> list[Any]:
    """Start *count* spawned processes sharing a barrier and a result queue; return
    what each put on the queue, after checking that every process exited cleanly.

    ``args_for(process_no, barrier, queue)`` gives each process its arguments.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(count, timeout=120)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=args_for(p, barrier, out)) for p in range(count)
    ]
    for proc in procs:
        proc.start()
    reports = [out.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    return reports


async def storm_call(db: Database, key: str, op: str, in_session: bool) -> None:
    """One call of the cancellation storm: *op* on *key*, alone (autocommit) or
    after a side row inside ``db.session()``."""

    async def work() -> None:
        if op == "get_or_create":
            await User.objects.get_or_create(
                username=key, defaults={"email": f"mail-{key}"}
            )
        elif op == "create":
            await Note.objects.create(text=f"note-{key}")
        else:
            await User.objects.get_or_none(username=key)

    if in_session:
        async with db.session():
            await Note.objects.create(text=f"side-{key}")
            await work()
    else:
        await work()

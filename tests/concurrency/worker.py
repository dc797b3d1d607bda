"""A worker process for the multi-process race: many tasks racing on one key per round.

Each process opens its own Database (its own pool), waits at a cross-process
barrier, then fires its tasks at once. It reports, per round, how many of its
calls created the row and the exceptions it saw.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from sqlalchemy_objects import Database
from tests.models import Base, Note, Tag, User


async def _released(
    calls: list[Callable[[], Awaitable[Any]]], barrier: Any
) -> list[Any]:
    """Start every call parked on one event, wait at the cross-process
    barrier, release them together; their results (exceptions included)."""
    go = asyncio.Event()

    async def parked(call: Callable[[], Awaitable[Any]]) -> Any:
        await go.wait()
        return await call()

    pending = [asyncio.ensure_future(parked(call)) for call in calls]
    await asyncio.sleep(0)  # every task is now parked on `go`
    await asyncio.to_thread(barrier.wait)  # all processes are here
    go.set()
    return await asyncio.gather(*pending, return_exceptions=True)


def _errors(results: list[Any]) -> list[str]:
    return [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]


def _entry(
    race: Coroutine[Any, Any, Any],
    barrier: Any,
    out: Any,
    crashed: Callable[[str], Any],
) -> None:
    """Run *race* in this process's loop and put its report on *out*; a crash
    aborts the barrier (so no process waits forever) and reports itself."""
    threading.current_thread().name = "race-worker"
    try:
        out.put(asyncio.run(race))
    except BaseException as exc:
        barrier.abort()
        out.put(crashed(f"worker crashed: {type(exc).__name__}: {exc}"))


async def _rounds(
    db: Database,
    rounds: int,
    tasks: int,
    barrier: Any,
    call_for: Callable[[int, int], Callable[[], Awaitable[bool]]],
) -> list[tuple[int, list[str]]]:
    """*rounds* rounds of *tasks* calls released together; per round how many
    returned True (created) and the exceptions seen."""
    report: list[tuple[int, list[str]]] = []
    try:
        # Open the pool's connections before the first round, so that the
        # release is not spread out by connection set-up.
        await asyncio.gather(*(User.objects.count() for _ in range(tasks)))
        for round_no in range(rounds):
            calls = [call_for(round_no, task) for task in range(tasks)]
            results = await _released(calls, barrier)
            report.append((sum(1 for r in results if r is True), _errors(results)))
    finally:
        await db.dispose()
    return report


async def _race(
    url: str, rounds: int, tasks: int, barrier: Any, in_session: bool
) -> list[tuple[int, list[str]]]:
    db = Database(url, pool_size=tasks, max_overflow=0)
    db.bind(Base)

    def call_for(round_no: int, task: int) -> Callable[[], Awaitable[bool]]:
        async def one() -> bool:
            key = f"round-{round_no}"
            if in_session:
                async with db.session():
                    _, created = await User.objects.get_or_create(username=key)
            else:
                _, created = await User.objects.get_or_create(username=key)
            return created

        return one

    return await _rounds(db, rounds, tasks, barrier, call_for)


def run(
    url: str, rounds: int, tasks: int, barrier: Any, in_session: bool, out: Any
) -> None:
    """Process entry point: race, then put the report on *out*."""
    _entry(
        _race(url, rounds, tasks, barrier, in_session),
        barrier,
        out,
        lambda e: [(0, [e])],
    )


async def _transaction_race(
    url: str, rounds: int, tasks: int, barrier: Any, proc_no: int
) -> list[tuple[int, list[str]]]:
    """Each task, per round: ``run_in_transaction`` writing a side row of its
    own (a Note) and then get_or_create on the round's key."""
    db = Database(url, pool_size=tasks, max_overflow=0)
    db.bind(Base)

    def call_for(round_no: int, task: int) -> Callable[[], Awaitable[bool]]:
        async def work(session: Any) -> bool:
            await Note.objects.create(text=f"{round_no}-{proc_no}-{task}")
            _, created = await User.objects.get_or_create(username=f"round-{round_no}")
            return created

        return lambda: db.run_in_transaction(work, retries=20)

    return await _rounds(db, rounds, tasks, barrier, call_for)


def run_transactions(
    url: str, rounds: int, tasks: int, barrier: Any, proc_no: int, out: Any
) -> None:
    """Process entry point of :func:`_transaction_race`."""
    _entry(
        _transaction_race(url, rounds, tasks, barrier, proc_no),
        barrier,
        out,
        lambda e: [(0, [e])],
    )


#: Keys of the bulk_get_or_create race; each task asks for 80 of them.
BULK_KEYS = 120


async def _bulk_race(url: str, proc_no: int, barrier: Any) -> dict[str, Any]:
    from tests.models import Tag

    db = Database(url, pool_size=4, max_overflow=0)
    db.bind(Base)

    def call_for(task: int) -> Callable[[], Awaitable[list[tuple[str, bool]]]]:
        async def one() -> list[tuple[str, bool]]:
            offset = proc_no * 11 + task * 5
            keys = [{"name": f"b{(offset + i) % BULK_KEYS}"} for i in range(80)]
            return [(o.name, c) for o, c in await Tag.objects.bulk_get_or_create(keys)]

        return one

    try:
        await asyncio.gather(*(Tag.objects.count() for _ in range(3)))
        results = await _released([call_for(t) for t in range(3)], barrier)
    finally:
        await db.dispose()
    return {
        "created": [pair for r in results if isinstance(r, list) for pair in r],
        "errors": _errors(results),
    }


def run_bulk(url: str, proc_no: int, barrier: Any, out: Any) -> None:
    """Process entry point of :func:`_bulk_race`."""
    _entry(
        _bulk_race(url, proc_no, barrier),
        barrier,
        out,
        lambda e: {"created": [], "errors": [e]},
    )


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
    _entry(_write_mix(url, ops, tasks, barrier, proc_no), barrier, out, lambda e: [e])


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
        elif op == "tag":  # plain columns: the bare cursor's INSERT
            await Tag.objects.get_or_create(name=key)
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

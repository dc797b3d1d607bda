"""One Database, made once, in every event loop and process that uses it (SPEC §6).

A module-level ``db = Database(url)`` is how Celery tasks, scripts and forked
workers (gunicorn/uvicorn with preload, multiprocessing) use the library: loop
after loop with ``asyncio.run()``, loops side by side in threads, and children
forked after the Database was made and used. A pooled connection must never be
used outside the loop and process that opened it. These tests are plain
functions: each makes and closes its own event loops.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from sqlalchemy_objects import Database
from tests.conftest import backend_url, open_database
from tests.models import Base, User

LOOPS = 3
THREADS = 4
KEYS = 20
CHILDREN = 3
CALLS = 40


@pytest.fixture(name="url")
def _url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh schema on *backend*, made and dropped in loops of their own."""

    async def prepare() -> None:
        db = await open_database(backend, tmp_path)
        await db.dispose()

    asyncio.run(prepare())
    yield backend_url(backend, tmp_path)

    async def drop() -> None:
        db = Database(backend_url(backend, tmp_path))
        db.bind(Base)
        await db.drop_all()
        await db.dispose()

    asyncio.run(drop())


def count_users(url: str) -> dict[str, int]:
    """Rows per username, read by a Database of its own (an independent view)."""

    async def read() -> dict[str, int]:
        probe = Database(url)
        try:
            async with probe.session() as session:
                result = await session.execute(
                    select(User.username, func.count()).group_by(User.username)
                )
                return {row[0]: row[1] for row in result.all()}
        finally:
            await probe.dispose()

    return asyncio.run(read())


def test_one_database_serves_asyncio_run_after_asyncio_run(url: str) -> None:
    """Celery-style: the same Database in LOOPS consecutive asyncio.run() calls.
    Each loop's connections are closed when the loop shuts down, and the next
    loop reuses the same engine object (so listeners on db.engine stay)."""
    db = Database(url)
    db.bind(Base)
    engine = db.engine
    for n in range(LOOPS):
        _, created = asyncio.run(User.objects.get_or_create(username=f"run-{n}"))
        assert created
        assert asyncio.run(User.objects.count()) == n + 1
        assert db.engine is engine
        # The loop's shutdown disposed its pool: nothing is left open.
        assert engine.sync_engine.pool.checkedin() == 0  # type: ignore[attr-defined]
    assert count_users(url) == {f"run-{n}": 1 for n in range(LOOPS)}


def test_loops_side_by_side_in_threads_race_correctly(url: str) -> None:
    """THREADS threads, each with a loop of its own, released together on the
    same KEYS new keys: one row and one created=True per key, no exception,
    no hang."""
    db = Database(url)
    db.bind(Base)
    barrier = threading.Barrier(THREADS)
    created: list[str] = []
    errors: list[BaseException] = []

    async def work() -> list[str]:
        barrier.wait(timeout=30)
        mine: list[str] = []
        for k in range(KEYS):
            _, was_created = await User.objects.get_or_create(username=f"key-{k}")
            if was_created:
                mine.append(f"key-{k}")
        return mine

    def thread_main() -> None:
        try:
            created.extend(asyncio.run(work()))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=thread_main) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert errors == []
    assert sorted(created) == sorted(f"key-{k}" for k in range(KEYS))
    assert count_users(url) == {f"key-{k}": 1 for k in range(KEYS)}


def _child(url: str, n: int, out: Any) -> None:
    """In a forked child: the parent's Database, in a loop of the child's own."""
    from tests.models import User as ChildUser

    async def work() -> list[bool]:
        answers: list[bool] = []
        for k in range(CALLS):
            _, created = await ChildUser.objects.get_or_create(username=f"c{n}-{k}")
            answers.append(created)
            warm = await ChildUser.objects.get(username="warm")
            answers.append(warm.username == "warm")
        return answers

    try:
        out.put((n, asyncio.run(work())))
    except BaseException as exc:
        out.put((n, repr(exc)))


def test_forked_children_never_use_the_parents_connections(url: str) -> None:
    """The parent uses the Database (its pool holds a connection), forks
    CHILDREN, and keeps working in its loop while they work in theirs: every
    get_or_create of a new key says created=True, every read is right, in the
    parent and in each child."""
    db = Database(url)
    db.bind(Base)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    with asyncio.Runner() as runner:
        runner.run(User.objects.create(username="warm"))
        assert db.engine.sync_engine.pool.checkedin() >= 1  # type: ignore[attr-defined]
        children = [
            ctx.Process(target=_child, args=(url, n, out)) for n in range(CHILDREN)
        ]
        for child in children:
            child.start()

        async def parent_work() -> list[bool]:
            answers: list[bool] = []
            for k in range(CALLS):
                _, created = await User.objects.get_or_create(username=f"p-{k}")
                answers.append(created)
                answers.append(
                    (await User.objects.get(username="warm")).username == "warm"
                )
            return answers

        assert all(runner.run(parent_work()))
        results = dict(out.get(timeout=120) for _ in children)
        for child in children:
            child.join(timeout=60)
    # A child that failed reports its exception's repr instead of its answers.
    assert results == {n: [True] * (2 * CALLS) for n in range(CHILDREN)}
    expected = {"warm": 1} | {f"p-{k}": 1 for k in range(CALLS)}
    expected |= {f"c{n}-{k}": 1 for n in range(CHILDREN) for k in range(CALLS)}
    assert count_users(url) == expected
    assert all(child.exitcode == 0 for child in children)

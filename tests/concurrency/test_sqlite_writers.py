"""SQLite under many concurrent writers: tasks and OS processes on one file."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sqlalchemy_objects import Database
from tests.concurrency import worker
from tests.conftest import open_database
from tests.models import Note, User

PROCESSES = 4
TASKS = 8
OPS = 30


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_many_writers_never_see_database_is_locked(
    backend: str, tmp_path: Path
) -> None:
    """4 processes x 8 tasks x 30 writes each (autocommit creates, get_or_create on
    10 hot keys, and session blocks doing both) on one SQLite file: no "database is
    locked" (or any other error) reaches a caller within the busy timeout, no write
    is lost, and each hot key has one row."""

    async def prepare() -> str:
        db = await open_database(backend, tmp_path)
        url = db.url.render_as_string(hide_password=False)
        await db.dispose()
        return url

    url = asyncio.run(prepare())
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES, timeout=120)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=worker.write_mix, args=(url, OPS, TASKS, barrier, p, out))
        for p in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    errors = [e for _ in procs for e in out.get(timeout=300)]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert errors == []

    async def check() -> tuple[int, int, int]:
        db = Database(url)
        try:
            async with db.session() as session:
                notes = await session.scalar(select(func.count()).select_from(Note))
                users = await session.scalar(select(func.count()).select_from(User))
                distinct = await session.scalar(
                    select(func.count(func.distinct(User.username)))
                )
            return int(notes or 0), int(users or 0), int(distinct or 0)
        finally:
            await db.dispose()

    notes, users, distinct = asyncio.run(check())
    assert notes == PROCESSES * TASKS * OPS
    assert users == distinct == 10

"""SQLite under many concurrent writers: tasks and OS processes on one file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sqlalchemy_objects import Database
from tests.concurrency import worker
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

    url = worker.prepared_url(backend, tmp_path)
    reports = worker.run_in_processes(
        PROCESSES,
        worker.write_mix,
        lambda p, barrier, out: (url, OPS, TASKS, barrier, p, out),
    )
    errors = [e for report in reports for e in report]
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

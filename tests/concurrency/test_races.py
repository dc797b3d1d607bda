"""Real races: many tasks, and many OS processes, released together on one new key.

Each round asserts on the database and on the callers: exactly one row, exactly one
``created=True``, and no exception to anyone (SPEC §3).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sqlalchemy_objects import Database
from tests.concurrency import worker
from tests.models import Note, User

TASKS = 32
ROUNDS = 30
PROCESSES = 4
TASKS_PER_PROCESS = 8
PROCESS_ROUNDS = 10


async def rows_per_key(db: Database) -> dict[str, int]:
    async with db.session() as session:
        result = await session.execute(
            select(User.username, func.count()).group_by(User.username)
        )
        return dict(result.all())


@pytest.mark.parametrize("mode", ["autocommit", "session"])
async def test_tasks_racing_on_one_key_create_one_row(db: Database, mode: str) -> None:
    """32 tasks released by a barrier on one new key, 30 rounds: one row and one
    created=True per round, no exceptions; in autocommit mode and each task in
    its own db.session() (the SAVEPOINT path)."""
    for round_no in range(ROUNDS):
        key = f"round-{round_no}"
        barrier = asyncio.Barrier(TASKS)

        async def caller(key: str = key, barrier: asyncio.Barrier = barrier) -> bool:
            await barrier.wait()
            if mode == "session":
                async with db.session():
                    await Note.objects.create(
                        text=f"side {key}"
                    )  # the caller's own write
                    _, created = await User.objects.get_or_create(username=key)
            else:
                _, created = await User.objects.get_or_create(username=key)
            return created

        results = await asyncio.gather(
            *(caller() for _ in range(TASKS)), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert errors == [], f"round {round_no}: {errors[:3]}"
        assert results.count(True) == 1, (
            f"round {round_no}: {results.count(True)} created"
        )
    counts = await rows_per_key(db)
    assert counts == {f"round-{i}": 1 for i in range(ROUNDS)}
    if mode == "session":
        assert await Note.objects.count() == ROUNDS * TASKS  # no side write lost


@pytest.mark.parametrize("mode", ["autocommit", "session"])
def test_processes_racing_on_one_key_create_one_row(
    backend: str, tmp_path: Path, mode: str
) -> None:
    """4 OS processes x 8 tasks, released together by a cross-process barrier, 10
    rounds: one row per key, exactly one created=True across all processes, no
    exception in any process."""
    url = worker.prepared_url(backend, tmp_path)
    reports = worker.run_in_processes(
        PROCESSES,
        worker.run,
        lambda _, barrier, out: (
            url,
            PROCESS_ROUNDS,
            TASKS_PER_PROCESS,
            barrier,
            mode == "session",
            out,
        ),
    )

    errors = [e for report in reports for _, errs in report for e in errs]
    assert errors == []
    for round_no in range(PROCESS_ROUNDS):
        created = sum(report[round_no][0] for report in reports)
        assert created == 1, f"round {round_no}: {created} callers saw created=True"

    async def check() -> dict[str, int]:
        db = Database(url)
        try:
            return await rows_per_key(db)
        finally:
            await db.drop_all()
            await db.dispose()

    counts = asyncio.run(check())
    assert counts == {f"round-{i}": 1 for i in range(PROCESS_ROUNDS)}

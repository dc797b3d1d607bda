"""A 3-node MariaDB Galera cluster (SPEC §6, multi-primary): callers on
different nodes racing on one key get one row and one created=True, in
autocommit mode and inside ``run_in_transaction`` (where a lost race or a
certification conflict aborts the whole transaction and it runs again: every
caller's side row is committed exactly once). One OS process per node, all
released together; counted on every node from a connection of its own."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from sqlalchemy_objects import Database
from tests.concurrency import worker
from tests.deployments.galera import Galera, available, running_galera
from tests.models import Base

pytestmark = pytest.mark.mariadb

ROUNDS = 8
TASKS = 12


@pytest.fixture(scope="module")
def galera() -> Iterator[Galera]:
    reason = available()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with running_galera() as cluster:
        yield cluster


@pytest.fixture
def schema(galera: Galera) -> None:
    async def reset() -> None:
        db = Database(galera.nodes[0].url())
        db.bind(Base)
        try:
            await db.drop_all()
            await db.create_all()
        finally:
            await db.dispose()

    asyncio.run(reset())


async def counts(url: str) -> tuple[dict[str, int], list[str]]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.execute(
                text("SET SESSION wsrep_sync_wait = 1")
            )  # see every node's commits
            users = await conn.execute(
                text("SELECT username, count(*) FROM users GROUP BY username")
            )
            notes = await conn.execute(text("SELECT text FROM notes"))
            return {str(u): int(c) for u, c in users}, [str(n) for (n,) in notes]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("mode", ["autocommit", "run_in_transaction"])
def test_callers_on_three_nodes_get_one_row_and_one_created(
    galera: Galera, schema: None, mode: str
) -> None:
    urls = [node.url() for node in galera.nodes]
    if mode == "autocommit":
        reports = worker.run_in_processes(
            3,
            worker.run,
            lambda p, barrier, out: (urls[p], ROUNDS, TASKS, barrier, False, out),
        )
    else:
        reports = worker.run_in_processes(
            3,
            worker.run_transactions,
            lambda p, barrier, out: (urls[p], ROUNDS, TASKS, barrier, p, out),
        )
    errors = [e for report in reports for _, errs in report for e in errs]
    assert errors == []
    for round_no in range(ROUNDS):
        created = sum(report[round_no][0] for report in reports)
        assert created == 1, f"round {round_no}: {created} callers saw created=True"
    for url in urls:
        users, notes = asyncio.run(counts(url))
        assert users == {f"round-{r}": 1 for r in range(ROUNDS)}
        if mode == "run_in_transaction":
            expected = sorted(
                f"{r}-{p}-{t}"
                for r in range(ROUNDS)
                for p in range(3)
                for t in range(TASKS)
            )
            assert sorted(notes) == expected  # every side row, exactly once

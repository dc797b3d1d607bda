"""Read replicas (SPEC §6) on a real PostgreSQL primary with a streaming
hot-standby replica, started by the tests (tests/deployments/replica.py).

Where a read ran is proven, not guessed: the replica's WAL replay is paused
(``pg_wal_replay_pause()``), a row is written on the primary, and a read that
cannot see it ran on the replica; one that sees it ran on the primary. Writes
are counted on the primary from a connection of their own.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import time
from collections.abc import AsyncGenerator, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from sqlalchemy_objects import Database, TransactionManagementError
from sqlalchemy_objects import _replicas as replicas_module
from tests.deployments.replica import Cluster, available, running_cluster
from tests.models import Base, Tag, User

pytestmark = pytest.mark.postgresql
_T = TypeVar("_T")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    reason = available()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with running_cluster() as made:
        yield made


async def sql(url: str, statement: str) -> list[tuple[object, ...]]:
    """*statement* on *url* over a connection of its own (autocommit)."""
    engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text(statement))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        await engine.dispose()


async def replica_caught_up(cluster: Cluster) -> None:
    """Wait until the replica has replayed everything the primary wrote."""
    ((target,),) = await sql(cluster.primary_url, "SELECT pg_current_wal_lsn()::text")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ((behind,),) = await sql(
            cluster.replica_url,
            f"SELECT pg_wal_lsn_diff('{target}', pg_last_wal_replay_lsn()) > 0",
        )
        if not behind:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the replica did not catch up in 30 s")


def fresh_task(coro: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
    """*coro* in a task that has written nothing: an empty context (a task
    started by the test's own would inherit its recent writes)."""
    return asyncio.create_task(coro, context=contextvars.Context())


class Paused:
    """The replica's replay paused for the block: what the primary writes
    meanwhile is invisible there."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    async def __aenter__(self) -> None:
        await replica_caught_up(self.cluster)
        await sql(self.cluster.replica_url, "SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ((state,),) = await sql(
                self.cluster.replica_url, "SELECT pg_get_wal_replay_pause_state()"
            )
            if state == "paused":
                return
            await asyncio.sleep(0.01)
        raise AssertionError("replay did not pause")

    async def __aexit__(self, *exc_info: object) -> None:
        await sql(self.cluster.replica_url, "SELECT pg_wal_replay_resume()")


@pytest.fixture
async def db(cluster: Cluster) -> AsyncGenerator[Database]:
    db = Database(cluster.primary_url, replicas=[cluster.replica_url])
    db.bind(Base)
    await db.drop_all()
    await db.create_all()
    await replica_caught_up(cluster)
    try:
        yield db
    finally:
        await db.dispose()
        await db.drop_all()
        await db.dispose()


async def test_reads_run_on_the_replica_and_writes_on_the_primary(
    db: Database, cluster: Cluster
) -> None:
    await Tag.objects.create(name="before")
    async with Paused(cluster):
        await sql(
            cluster.primary_url, "INSERT INTO tags (name, label) VALUES ('unseen', '')"
        )

        async def a_fresh_task() -> tuple[int, bool, list[str]]:
            # A task that has not written: its reads go to the replica.
            return (
                await Tag.objects.count(),
                await Tag.objects.filter(name="unseen").exists(),
                [t.name async for t in Tag.objects.order_by("name")],
            )

        count, exists, streamed = await fresh_task(a_fresh_task())
        assert (count, exists, streamed) == (1, False, ["before"])
        # The primary, asked for by name, has it.
        assert await Tag.objects.using(db.primary).filter(name="unseen").exists()
        assert db.primary.primary is db.primary

        # Writes go to the primary even while the replica lags.
        async def write() -> tuple[bool, bool]:
            _, created = await Tag.objects.get_or_create(name="unseen")  # exists there
            tag, made = await Tag.objects.get_or_create(name="new")
            await Tag.objects.filter(id=tag.id).update(label="x")
            return created, made

        assert await fresh_task(write()) == (False, True)
        rows = await sql(
            cluster.primary_url, "SELECT name, label FROM tags ORDER BY name"
        )
        assert rows == [("before", ""), ("new", "x"), ("unseen", "")]
        assert await sql(cluster.replica_url, "SELECT count(*) FROM tags") == [(1,)]


async def test_a_task_reads_its_own_writes_for_read_your_writes_seconds(
    cluster: Cluster,
) -> None:
    db = Database(
        cluster.primary_url, replicas=[cluster.replica_url], read_your_writes=0.5
    )
    db.bind(Base)
    await db.drop_all()
    await db.create_all()
    await replica_caught_up(cluster)
    try:
        async with Paused(cluster):
            await User.objects.create(username="mine")
            assert await User.objects.get(username="mine")  # primary: just wrote
            async with db.session():
                await User.objects.create(username="in-session")
            assert await User.objects.filter(username="in-session").exists()
            await asyncio.sleep(0.6)  # the window has passed: back to the replica
            assert not await User.objects.filter(username="mine").exists()
        off = Database(
            cluster.primary_url, replicas=[cluster.replica_url], read_your_writes=0
        )
        try:
            async with Paused(cluster):
                await User.objects.using(off).create(username="unread")
                assert (
                    not await User.objects.using(off).filter(username="unread").exists()
                )
        finally:
            await off.dispose()
    finally:
        await db.dispose()
        await db.drop_all()
        await db.dispose()


async def test_a_thousand_miss_then_get_in_one_task_never_miss(db: Database) -> None:
    """Replication lag is real here (the replica replays a few ms behind);
    with read-your-writes on, the task's own rows are always found."""
    misses = 0
    for i in range(1000):
        _, created = await Tag.objects.get_or_create(name=f"k{i}")
        assert created
        if await Tag.objects.get_or_none(name=f"k{i}") is None:
            misses += 1
    assert misses == 0


async def test_sessions_and_locks_run_on_the_primary(
    db: Database, cluster: Cluster
) -> None:
    async with Paused(cluster):
        await sql(
            cluster.primary_url, "INSERT INTO tags (name, label) VALUES ('fresh', '')"
        )

        async def in_a_session() -> list[str]:
            async with db.session():
                locked = await Tag.objects.select_for_update().filter(name="fresh")
                return [t.name for t in locked]

        assert await fresh_task(in_a_session()) == ["fresh"]
    with pytest.raises(TransactionManagementError):
        await Tag.objects.select_for_update().filter(name="fresh")


async def test_a_dead_replica_is_skipped_and_comes_back(
    db: Database,
    cluster: Cluster,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(replicas_module, "DOWN_SECONDS", 0.5)
    await Tag.objects.create(name="a")
    await replica_caught_up(cluster)
    cluster.stop_replica()
    try:

        async def reads() -> list[int]:
            return [await Tag.objects.count() for _ in range(5)]

        assert await fresh_task(reads()) == [1] * 5  # answered by the primary
        assert any("failed a read" in r.getMessage() for r in caplog.records)
        assert await Tag.objects.get_or_create(name="b")  # writes were never affected
    finally:
        cluster.start_replica()
    await asyncio.sleep(0.6)
    await replica_caught_up(cluster)
    async with Paused(cluster):
        await sql(
            cluster.primary_url, "INSERT INTO tags (name, label) VALUES ('c', '')"
        )

        async def fresh() -> int:
            return await Tag.objects.count()

        assert await fresh_task(fresh()) == 2  # the replica again (no 'c')


def test_bad_replica_settings_are_refused() -> None:
    from sqlalchemy_objects import ConfigurationError

    with pytest.raises(ConfigurationError, match="replicas takes a list of URLs"):
        Database("postgresql://h/db", replicas="postgresql://r/db")
    with pytest.raises(ConfigurationError, match="must be on the same backend"):
        Database("postgresql://h/db", replicas=["mysql://r/db"])
    with pytest.raises(ConfigurationError, match="read_your_writes must be >= 0"):
        Database(
            "postgresql://h/db", replicas=["postgresql://r/db"], read_your_writes=-1
        )
    db = Database("postgresql://h/db", replicas=["postgresql://r/db"])
    assert [u.host for u in db.replica_urls] == ["r"]
    assert db.primary is not db
    assert db.primary.replica_urls == []
    assert db.primary.engine is db.engine  # the same pools
    alone = Database("postgresql://h/db")
    assert alone.primary is alone

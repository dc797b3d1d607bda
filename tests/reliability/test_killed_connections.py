"""Connections killed by the server mid-workload (pg_terminate_backend, MariaDB KILL).

The calls that were hit fail with SQLAlchemy's error (``connection_invalidated``
is True); SQLAlchemy then invalidates the pool, the next calls succeed, no
committed row is lost and no duplicate appears.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError

from sqlalchemy_objects import Database
from tests.conftest import SERVER_BACKENDS, open_transactions, settle
from tests.models import Note, User

DURATION_S = 3.0
KILL_EVERY_S = 0.4
WORKERS = 16


def track_backend_ids(db: Database, opened: list[int]) -> set[int]:
    """Record the server-side id of every connection the pool opens (live ones in
    the returned set, every one ever opened in *opened*)."""
    ids: set[int] = set()
    query = (
        "SELECT pg_backend_pid()"
        if db.backend == "postgresql"
        else "SELECT CONNECTION_ID()"
    )

    @event.listens_for(db.engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(query)
        backend_id = int(cursor.fetchone()[0])
        ids.add(backend_id)
        opened.append(backend_id)
        cursor.close()
        # Leave no transaction open: psycopg cannot switch a connection in a
        # transaction to autocommit, which autocommit calls do on checkout.
        dbapi_connection.rollback()

    return ids


async def kill(db: Database, ids: set[int]) -> int:
    """Kill every connection in *ids* from a separate connection; return how many."""
    killer = Database(db.url)
    killed = 0
    try:
        async with killer.engine.connect() as conn:
            for backend_id in list(ids):
                ids.discard(backend_id)
                if db.backend == "postgresql":
                    stmt = text("SELECT pg_terminate_backend(:pid)").bindparams(
                        pid=backend_id
                    )
                else:
                    stmt = text(f"KILL {int(backend_id)}")  # an int we read ourselves
                try:
                    await conn.execute(stmt)
                    killed += 1
                except DBAPIError:
                    pass  # already gone
    finally:
        await killer.dispose()
    return killed


@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
@pytest.mark.parametrize("mode", ["autocommit", "session"])
async def test_killed_connections_lose_nothing(db: Database, mode: str) -> None:
    """16 workers run get_or_create / create / get for 3 s while every connection
    is killed every 0.4 s. In autocommit mode a call whose connection turns out
    dead before COMMIT is retried once on a fresh one, so most hits never reach
    the caller; inside a session the error goes to the block, which rolls back."""
    await db.engine.dispose()  # every connection from now on is tracked
    opened: list[int] = []
    ids = track_backend_ids(db, opened)
    rng = random.Random(7)
    confirmed_notes: list[str] = []
    confirmed_users: set[str] = set()
    errors: list[BaseException] = []
    calls = 0
    deadline = time.monotonic() + DURATION_S
    # On a slow machine a kill round can take a second: go on (up to five
    # times as long) until at least WORKERS connections were killed.
    hard_deadline = deadline + 4 * DURATION_S

    async def one_call(worker: int, n: int) -> None:
        key = f"k{rng.randrange(50)}"
        note = f"w{worker}-{n}"
        if mode == "session":
            async with db.session():
                await Note.objects.create(text=note)
                await User.objects.get_or_create(username=key)
        else:
            await Note.objects.create(text=note)
            await User.objects.get_or_create(username=key)
            await User.objects.get(username=key)
        confirmed_notes.append(note)
        confirmed_users.add(key)

    async def worker(worker_no: int) -> None:
        nonlocal calls
        n = 0
        while running():
            n += 1
            calls += 1
            try:
                await one_call(worker_no, n)
            except DBAPIError as exc:
                errors.append(exc)

    kills: list[int] = []

    def running() -> bool:
        now = time.monotonic()
        return now < deadline or (sum(kills) < WORKERS and now < hard_deadline)

    async def killer() -> None:
        while running():
            await asyncio.sleep(KILL_EVERY_S)
            kills.append(await kill(db, ids))

    await asyncio.gather(*(worker(i) for i in range(WORKERS)), killer())
    await settle()
    # The fault was really injected: connections were killed and replaced.
    assert sum(kills) >= WORKERS
    assert len(opened) > 2 * WORKERS
    # Every error is the connection loss itself, reported as such.
    assert all(getattr(e, "connection_invalidated", False) for e in errors), {
        f"{type(e).__name__}: {e}"
        for e in errors
        if not getattr(e, "connection_invalidated", False)
    }
    # The next calls succeed.
    for i in range(10):
        await User.objects.get_or_create(username=f"after-{i}")
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await open_transactions(db) == 0
    async with db.session() as session:
        notes = set((await session.scalars(select(Note.text))).all())
        dupes = (
            await session.execute(
                select(User.username).group_by(User.username).having(func.count() > 1)
            )
        ).all()
        users = set((await session.scalars(select(User.username))).all())
    assert set(confirmed_notes) <= notes, "a confirmed write was lost"
    assert confirmed_users <= users
    assert dupes == []
    assert calls > len(errors) * 2  # most calls went through
    if mode == "session":
        assert errors, "inside a session a lost connection must reach the block"


@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
async def test_stale_pooled_connections_are_replaced_without_an_error(
    db: Database,
) -> None:
    """Idle pooled connections killed between calls: the next reads and writes in
    autocommit mode succeed (one transparent retry on a fresh connection)."""
    await db.engine.dispose()  # every connection from now on is tracked
    opened: list[int] = []
    ids = track_backend_ids(db, opened)
    await asyncio.gather(*(User.objects.count() for _ in range(8)))  # fill the pool
    assert await kill(db, ids) >= 1
    await asyncio.sleep(0.2)
    assert await User.objects.count() == 0
    killed_again = await kill(db, ids)
    assert killed_again >= 1
    await asyncio.sleep(0.2)
    user = await User.objects.create(username="after-kill")
    found, created = await User.objects.get_or_create(username="after-kill")
    assert (found.id, created) == (user.id, False)
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def cut_the_line(driver_connection: Any) -> None:
    """Shut the connection's socket down under the driver's feet (both
    directions), as a dead network or a killed server would."""
    transport = getattr(driver_connection, "_transport", None)  # asyncpg
    if transport is None:
        writer = getattr(driver_connection, "_writer", None)  # aiomysql, asyncmy
        transport = getattr(writer, "transport", None)
    if transport is not None:
        sock = transport.get_extra_info("socket")
        fd = sock.fileno()
    else:
        fd = driver_connection.pgconn.socket  # psycopg
    with socket.socket(fileno=os.dup(fd)) as dup:
        dup.shutdown(socket.SHUT_RDWR)


@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
async def test_connection_lost_during_commit_is_reported_not_retried(
    db: Database,
) -> None:
    """If the connection dies while COMMIT is in flight the outcome is unknown: the
    error reaches the caller with a note saying so, and the write is not retried."""
    commits = 0

    def on_commit(conn: Any) -> None:
        nonlocal commits
        commits += 1
        cut_the_line(conn.connection.driver_connection)

    event.listen(db.engine.sync_engine, "commit", on_commit)
    with pytest.raises(DBAPIError) as info:
        await User.objects.create(username="maybe")
    event.remove(db.engine.sync_engine, "commit", on_commit)
    assert info.value.connection_invalidated
    assert any("may or may not have been committed" in n for n in info.value.__notes__)
    assert commits == 1  # not retried
    assert not await User.objects.filter(username="maybe").exists()

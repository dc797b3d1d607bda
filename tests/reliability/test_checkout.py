"""A connection that fails while it is being set up goes back to the pool closed.

SQLAlchemy checks a connection out, then runs the ``engine_connect`` step (which
applies the AUTOCOMMIT option of autocommit calls). If that step raises, or the
task is cancelled in it (psycopg yields there), plain SQLAlchemy strands the
checked-out connection until the garbage collector drops it unclosed. See
``sqlalchemy_objects/_checkout.py``. The cancelled case is the cancellation
storm of ``tests/concurrency/test_cancellation.py`` on psycopg 3 (make test runs
it there), which left up to 14 of 50 connections stranded before the fix.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from sqlalchemy_objects import Database
from tests.models import User


class Boom(Exception):
    pass


def fail_next_connects(engine: AsyncEngine, times: int) -> list[int]:
    """Make the next *times* ``engine_connect`` steps raise; return the list
    that counts them."""
    failed: list[int] = []

    @event.listens_for(engine.sync_engine, "engine_connect")
    def _fail(conn: Any) -> None:
        if len(failed) < times:
            failed.append(1)
            raise Boom("engine_connect failed")

    return failed


def count_invalidations(engine: AsyncEngine) -> list[Any]:
    invalidated: list[Any] = []

    @event.listens_for(engine.sync_engine.pool, "invalidate")
    def _on_invalidate(dbapi_connection: Any, record: Any, exc: Any) -> None:
        invalidated.append(dbapi_connection)

    return invalidated


async def test_a_failed_set_up_returns_the_connection_closed(db: Database) -> None:
    await User.objects.count()  # the pool holds a connection now
    invalidated = count_invalidations(db.engine)
    failed = fail_next_connects(db.engine, times=3)
    for call in (User.objects.count, User.objects.all):
        with pytest.raises(Boom):
            await call()
    with pytest.raises(Boom):
        async with db.session():
            await User.objects.create(username="never")
    assert len(failed) == 3
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    # Each was closed rather than returned as it was: a failed step may have
    # left the connection in a state SQLAlchemy does not know about.
    assert len(invalidated) == 3
    # Then everything works, on fresh connections.
    user, created = await User.objects.get_or_create(username="after")
    assert created
    assert await User.objects.filter(username__startswith="never").count() == 0
    assert (await User.objects.get(username="after")).id == user.id

"""A connection that is never stranded half-made.

SQLAlchemy's ``Connection.__init__`` checks a connection out of the pool and
then runs the ``engine_connect`` listeners, among them the one that applies an
engine's ``isolation_level`` execution option. If that step raises, the new
``Connection`` is never returned to anyone, nobody closes it, and its pooled
connection stays checked out until the garbage collector finds it; an asyncio
driver's connection can then only be dropped, not closed ("The garbage
collector is trying to clean up non-checked-in connection").

On psycopg 3 that step awaits (``set_autocommit()`` yields to the event loop
now and then), so a task cancelled at that moment leaked one connection: the
cancellation storm in ``tests/concurrency/test_cancellation.py`` stranded up
to 14 of 50. asyncpg and the MySQL drivers set autocommit without yielding, so
they never showed it.

:class:`GuardedConnection` closes that gap: if construction fails after the
checkout, the pooled connection is invalidated (closed and replaced on its
next use, not returned as it is: the failed step may have left it in
autocommit mode without SQLAlchemy knowing, and a write transaction must never
run on such a connection), then the error goes on as it was.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger("sqlalchemy_objects")

#: The attribute of ``Engine`` naming the class ``connect()`` builds.
_CONNECTION_CLASS: Final = "_connection_cls"


class GuardedConnection(Connection):
    """``Connection`` that gives its pooled connection up if it cannot be made."""

    def __init__(self, engine: Any, connection: Any = None, **kw: Any) -> None:
        try:
            super().__init__(engine, connection, **kw)
        except BaseException:
            fairy = self.__dict__.get("_dbapi_connection")
            if connection is None and fairy is not None:
                _give_up(fairy)
            raise


def _give_up(fairy: Any) -> None:
    try:
        fairy.invalidate()
    except BaseException as exc:  # pragma: no cover - a second failure
        # The record is checked in even then (SQLAlchemy's invalidate() does
        # that in a finally), so only the closing itself was cut short.
        logger.warning("could not close a connection being discarded: %r", exc)
        if not isinstance(exc, Exception):
            raise


def guard(engine: AsyncEngine) -> AsyncEngine:
    """Make *engine* (or an option view of it) build :class:`GuardedConnection`;
    return it."""
    sync_engine = engine.sync_engine
    current = getattr(sync_engine, _CONNECTION_CLASS, None)
    if current is not Connection and current is not GuardedConnection:
        # Another subclass (a user's or a future SQLAlchemy's): leave it be.
        return engine
    setattr(sync_engine, _CONNECTION_CLASS, GuardedConnection)
    return engine

"""Statement execution policy: what to do when a statement or a COMMIT fails.

Every autocommit call (one that runs outside a caller's session) goes through
an :class:`Executor`, which owns three decisions:

- **a dead connection** (killed, server restarted) found before anything was
  written: the work runs once more on a fresh connection;
- **a transaction the server aborted** (deadlock, serialization failure; see
  ``Backend.must_rerun``): nothing in it was written, so it is rerun, up to
  :data:`WRITE_RERUNS` more times;
- **an outcome nobody knows** (the connection was lost while COMMIT, or an
  INSERT outside a transaction, was in flight): the error is raised with a
  note saying so, never retried.

Inside a caller's session none of this applies: the session's block owns its
transaction, and its errors are the caller's to handle.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.util import greenlet_spawn

from ._dialects import Backend

_R = TypeVar("_R")

logger = logging.getLogger("sqlalchemy_objects")

#: How many times an autocommit write is rerun after the server aborted its
#: whole transaction (deadlock or serialization failure) before the error is
#: raised.
WRITE_RERUNS: Final = 3

COMMIT_LOST_NOTE: Final = (
    "sqlalchemy-objects: the connection was lost while COMMIT was in flight, so the "
    "transaction may or may not have been committed. Check before writing again."
)
STATEMENT_LOST_NOTE: Final = (
    "sqlalchemy-objects: the connection was lost while the INSERT was in flight; "
    "it runs outside a transaction, so the row may or may not have been written. "
    "Check before writing again."
)


class Progress:
    """Where work on one autocommit connection is: ``writing`` while an INSERT
    is in flight, when a lost connection leaves the outcome unknown."""

    __slots__ = ("writing",)

    def __init__(self) -> None:
        self.writing = False


def _on_connection(
    engine: Engine,
    work: Callable[[Connection, Progress], _R],
    progress: Progress,
) -> _R:
    with engine.connect() as conn:
        return work(conn, progress)


class Executor:
    """Runs a Database's autocommit calls under the policy above.

    It holds the sessionmakers, not copies of their settings: the pytest
    plugin rebinds them in place, and the executor follows.
    """

    __slots__ = ("autocommit_maker", "backend", "read_maker", "write_maker")

    def __init__(
        self,
        backend: Backend,
        write_maker: async_sessionmaker[AsyncSession],
        read_maker: async_sessionmaker[AsyncSession],
        autocommit_maker: async_sessionmaker[AsyncSession] | None,
    ) -> None:
        self.backend = backend
        self.write_maker = write_maker
        self.read_maker = read_maker
        self.autocommit_maker = autocommit_maker

    async def read(self, work: Callable[[AsyncSession], Awaitable[_R]]) -> _R:
        """Run *work* in a short read session of its own; once more on a fresh
        connection if the first one turns out to be dead (a read is always safe
        to repeat)."""
        try:
            async with self.read_maker() as session:
                return await work(session)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            logger.info("connection lost during a read; retrying it once: %s", exc.orig)
        async with self.read_maker() as session:
            return await work(session)

    async def autocommit(self, work: Callable[[Any, Progress], _R]) -> _R | None:
        """Run *work* on one connection without a transaction (each statement
        commits by itself); None at once where the backend has no such
        connections.

        *work* is synchronous and runs inside SQLAlchemy's greenlet, all of it
        in one switch: it gets a sync ``Connection`` (or, when the pytest plugin
        has bound the sessions to the test's transaction, a sync ``Session`` on
        it) and uses only ``execute``, ``commit`` and ``rollback``. A connection
        found dead before anything was written is replaced and *work* runs once
        more; one lost while an INSERT was in flight is raised with the
        "outcome unknown" note.
        """
        maker = self.autocommit_maker
        if maker is None:
            return None
        bind = maker.kw.get("bind")
        for attempt in (1, 2):
            progress = Progress()
            try:
                if isinstance(bind, AsyncEngine):
                    return await greenlet_spawn(
                        _on_connection, bind.sync_engine, work, progress
                    )
                async with maker() as session:
                    return await session.run_sync(work, progress)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                if progress.writing:
                    exc.add_note(STATEMENT_LOST_NOTE)
                    raise
                if attempt == 2:
                    raise
                logger.info(
                    "connection lost during a read; retrying it once: %s", exc.orig
                )
        raise AssertionError("unreachable")  # pragma: no cover

    async def write(self, work: Callable[[AsyncSession], Awaitable[_R]]) -> _R:
        """Run *work* (which must flush) in a short transaction of its own and
        commit, rerunning it where nothing was written (see the module's
        docstring). InnoDB deadlocks on a unique index when several callers
        insert the same key and the first one rolls back (for instance because
        it was cancelled)."""
        reconnected = False
        reruns = 0
        while True:
            async with self.write_maker() as session:
                try:
                    result = await work(session)
                except DBAPIError as exc:
                    if exc.connection_invalidated and not reconnected:
                        reconnected = True
                        logger.info(
                            "connection lost before COMMIT; retrying once: %s", exc.orig
                        )
                        continue
                    if not self._may_rerun(exc, reruns):
                        raise
                    reruns += 1
                    continue
                try:
                    await session.commit()
                except DBAPIError as exc:
                    if exc.connection_invalidated:
                        exc.add_note(COMMIT_LOST_NOTE)
                        raise
                    if not self._may_rerun(exc, reruns):
                        raise
                    reruns += 1
                    continue
                return result

    def _may_rerun(self, exc: DBAPIError, reruns: int) -> bool:
        if reruns >= WRITE_RERUNS or not self.backend.must_rerun(exc):
            return False
        logger.info(
            "the server aborted the transaction; rerunning it (%d of %d): %s",
            reruns + 1,
            WRITE_RERUNS,
            exc.orig,
        )
        return True


# -- whole transactions: Database.run_in_transaction ------------------------------

#: The attribute that marks an error after which the whole transaction must run
#: again (a lost get_or_create race that the transaction's snapshot hides).
_RERUN_MARK: Final = "_sqlalchemy_objects_rerun_transaction"

#: Back-off before the n-th rerun: a random wait in [0, BASE * 2**(n-1)], at
#: most CAP (full jitter: callers that collided spread out at once).
RERUN_BACKOFF_BASE: Final = 0.02
RERUN_BACKOFF_CAP: Final = 1.0


def mark_rerunnable(exc: BaseException) -> None:
    """Say that *exc* is cured by running the whole transaction again."""
    setattr(exc, _RERUN_MARK, True)


def transaction_must_rerun(exc: BaseException, backend: Backend) -> bool:
    """Whether the server (or a snapshot) aborted the whole transaction and
    nothing of it was committed: a deadlock, a serialization failure, a
    Galera certification conflict, a connection lost before COMMIT, or a lost
    get_or_create race the snapshot hides. A user's own error is not."""
    if getattr(exc, _RERUN_MARK, False):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    return (
        backend.must_rerun(exc)
        or backend.savepoint_was_lost(exc)  # the transaction went with it
        or bool(exc.connection_invalidated)
    )


def rerun_delay(rerun: int) -> float:
    """Seconds to wait before the *rerun*-th rerun (1, 2, ...)."""
    ceiling = min(RERUN_BACKOFF_CAP, RERUN_BACKOFF_BASE * 2 ** (rerun - 1))
    return random.uniform(0, ceiling)

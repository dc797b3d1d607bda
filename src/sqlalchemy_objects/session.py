"""The ambient session (a ContextVar) and the lock that serialises its users.

``async with db.session():`` stores its ``AsyncSession`` in :data:`_ambient`.
Tasks started inside the block inherit the value (asyncio copies the context),
so they share the session and its transaction. An ``AsyncSession`` allows one
operation at a time; :class:`SessionLock` queues the manager calls of sibling
tasks instead of letting SQLAlchemy fail with "concurrent operations are not
permitted".
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar, Token
from typing import Any, Final, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

_T = TypeVar("_T")

_LOCK_KEY: Final = "sqlalchemy_objects.lock"

_ambient: ContextVar[AsyncSession | None] = ContextVar(
    "sqlalchemy_objects_session", default=None
)


def enter_session(session: AsyncSession) -> Token[AsyncSession | None]:
    """Make *session* the ambient session of this task (and of tasks it starts)."""
    return _ambient.set(session)


def leave_session(token: Token[AsyncSession | None]) -> None:
    """Restore the ambient session that was current before :func:`enter_session`."""
    _ambient.reset(token)


def current_session() -> AsyncSession | None:
    """Return the session of the innermost ``db.session()`` around this task, if any."""
    return _ambient.get()


class SessionLock:
    """An asyncio lock that the task holding it may take again (re-entrant).

    Re-entrancy matters because a callable in ``defaults`` may itself query
    through the same session while ``get_or_create`` holds the lock.
    """

    __slots__ = ("_depth", "_lock", "_owner")

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    def hold(self) -> _Hold:
        """Hold the lock for the body of an ``async with``."""
        return _Hold(self)

    async def enter(self) -> bool:
        """Take the lock (waiting for it) or, in the task holding it, take it
        again. Return whether it was taken again (nested)."""
        task = asyncio.current_task()
        if self._owner is task and task is not None:
            self._depth += 1
            return True
        await self._lock.acquire()  # cancelled while waiting: not taken
        self._owner = task
        return False

    def leave(self, nested: bool) -> None:
        """Give back what :meth:`enter` took."""
        if nested:
            self._depth -= 1
            return
        self._owner = None
        self._lock.release()


class _Hold:
    """``async with lock.hold():`` (a class, not a generator: it runs on every
    manager call inside a session)."""

    __slots__ = ("_lock", "_nested")

    def __init__(self, lock: SessionLock) -> None:
        self._lock = lock
        self._nested = False

    async def __aenter__(self) -> None:
        self._nested = await self._lock.enter()

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.leave(self._nested)


def lock_for(session: AsyncSession) -> SessionLock:
    """Return the lock kept with *session* (created on first use)."""
    lock: SessionLock | None = session.info.get(_LOCK_KEY)
    if lock is None:
        lock = session.info[_LOCK_KEY] = SessionLock()
    return lock


class _Closing:
    """``async with``: close a plain ``AsyncSession`` at the end, shielded."""

    __slots__ = ("_session",)

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def __aenter__(self) -> AsyncSession:
        return self._session

    async def __aexit__(self, *exc_info: object) -> None:
        if idle(self._session):
            # No transaction, so no connection: closing does no IO and has
            # nothing to suspend on, so no cancellation can cut it short.
            await self._session.close()
        else:
            await shielded(self._session.close())


def idle(session: AsyncSession) -> bool:
    """Whether *session* has no transaction open and nothing to flush, so
    that a commit would send nothing."""
    return not (
        session.in_transaction() or session.new or session.deleted or session.dirty
    )


def lifetime(session: AsyncSession) -> AbstractAsyncContextManager[AsyncSession]:
    """The ``async with`` that holds *session* open: a session class of its own
    keeps its own (the pytest plugin's sessions take turns on one connection
    there); a plain ``AsyncSession`` is closed at the end, shielded from
    cancellation."""
    if type(session) is AsyncSession:
        return _Closing(session)
    return session


async def shielded(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run *coro* to completion even if the calling task is cancelled meanwhile.

    Cleanup (closing a session, returning a connection) must not be cut short:
    a half-done close leaves a connection checked out or a transaction open.
    """
    task = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise

"""Engines per event loop and per process.

A pooled asyncpg, asyncmy or aiosqlite connection belongs to the event loop
that opened it, and a connection inherited through ``fork()`` is the parent's
socket. So a Database keeps one :class:`LoopEngine` (an engine, its views,
sessionmakers and execution policy) per running event loop, and none across
``fork()``:

- The engine made with the Database serves the first loop that uses it. A
  single-loop application sees that one engine, as before.
- Another loop running at the same time (a thread with a loop of its own) gets
  an engine of its own, made on its first call.
- When a loop shuts down (``asyncio.run()`` and pytest-asyncio call
  ``loop.shutdown_asyncgens()``), the loop's engine is disposed inside that
  loop, and the first engine is free for the next loop: Celery-style
  ``asyncio.run()`` per task reuses it. A loop closed without that step is
  noticed on the next call and its engine dropped without IO.
- In a child process after ``fork()``, every engine is forgotten without
  closing a connection (SQLAlchemy's ``dispose(close=False)`` recipe), and the
  parent's pools are kept unused rather than garbage-collected: the parent's
  connections are never touched, and the child opens its own.

Finding the current loop's engine costs one ``_get_running_loop()`` and an
identity check on the hot path.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ._checkout import guard
from ._dialects import Backend
from ._execution import Executor


class LoopEngine:
    """An engine and everything bound to it, for one event loop."""

    __slots__ = (
        "autocommit_sessionmaker",
        "closer",
        "engine",
        "executor",
        "pid",
        "quick_read_sessionmaker",
        "read_engine",
        "read_sessionmaker",
        "sessionmaker",
    )

    def __init__(
        self, engine: AsyncEngine, facts: Backend, isolation_chosen: bool
    ) -> None:
        self.pid = os.getpid()
        self.engine = guard(engine)
        # Reads outside a session use their own engine view: on SQLite they
        # must not take the write lock.
        self.read_engine = engine
        if facts.read_options:
            self.read_engine = guard(engine.execution_options(**facts.read_options))
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            engine, expire_on_commit=False
        )
        self.read_sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.read_engine, expire_on_commit=False
        )
        # PostgreSQL and SQLite sessions without BEGIN: each statement commits
        # by itself (on PostgreSQL at the server's default READ COMMITTED).
        # Autocommit get_or_create uses them, and reads too unless an
        # isolation_level was chosen. Streaming
        # (server-side cursors) needs a transaction and keeps read_sessionmaker.
        self.autocommit_sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self.quick_read_sessionmaker = self.read_sessionmaker
        if facts.autocommit_reads:
            self.autocommit_sessionmaker = async_sessionmaker(
                guard(engine.execution_options(**facts.autocommit_options)),
                expire_on_commit=False,
            )
            if not isolation_chosen:
                self.quick_read_sessionmaker = self.autocommit_sessionmaker
        self.executor = Executor(
            facts,
            self.sessionmaker,
            self.quick_read_sessionmaker,
            self.autocommit_sessionmaker,
        )
        self.closer: AsyncGenerator[None] | None = None

    def sessionmakers(self) -> list[async_sessionmaker[AsyncSession]]:
        """Every sessionmaker of this engine, each once."""
        makers = [
            self.sessionmaker,
            self.read_sessionmaker,
            self.quick_read_sessionmaker,
            self.autocommit_sessionmaker,
        ]
        return list(dict.fromkeys(m for m in makers if m is not None))

    def forget(self) -> Any:
        """Drop every pooled connection without IO (after fork, or for a loop
        that is already closed); return the old pool."""
        pool = self.engine.sync_engine.pool
        self.engine.sync_engine.dispose(close=False)
        return pool


_NO_LOOP: Any = object()

#: Every EngineSet, so that a forked child can make each forget its engines.
_all: weakref.WeakSet[EngineSet] = weakref.WeakSet()
#: In a forked child, the parent's pools and closers: kept, never used or run.
_inherited: list[Any] = []


class EngineSet:
    """The LoopEngine of each running event loop, for one Database."""

    __slots__ = ("__weakref__", "_by_loop", "_cached", "_lock", "_make", "first")

    def __init__(self, make: Callable[[], LoopEngine]) -> None:
        self._make = make
        #: The engine made with the Database: the first free loop's.
        self.first = make()
        self._by_loop: dict[asyncio.AbstractEventLoop, LoopEngine] = {}
        self._cached: tuple[Any, LoopEngine] = (_NO_LOOP, self.first)
        self._lock = threading.Lock()
        _all.add(self)

    def current(self) -> LoopEngine:
        """The running loop's LoopEngine (outside a loop: the first one)."""
        loop = asyncio._get_running_loop()
        cached = self._cached
        if cached[0] is loop:
            return cached[1]
        if loop is None:
            return self.first
        return self._for(loop)

    def _for(self, loop: asyncio.AbstractEventLoop) -> LoopEngine:
        with self._lock:
            found = self._by_loop.get(loop)
            if found is None:
                self._drop_closed_loops()
                owned = set(map(id, self._by_loop.values()))
                found = self.first if id(self.first) not in owned else self._make()
                self._by_loop[loop] = found
                found.closer = self._closer(loop, found)
                _start(found.closer)
            self._cached = (loop, found)
            return found

    def _drop_closed_loops(self) -> None:
        for loop, engine in list(self._by_loop.items()):
            if loop.is_closed():
                del self._by_loop[loop]
                engine.forget()

    def _release(self, loop: asyncio.AbstractEventLoop, engine: LoopEngine) -> None:
        with self._lock:
            if self._by_loop.get(loop) is engine:
                del self._by_loop[loop]
            if self._cached[1] is engine:
                self._cached = (_NO_LOOP, self.first)

    async def _closer(
        self, loop: asyncio.AbstractEventLoop, engine: LoopEngine
    ) -> AsyncGenerator[None]:
        """Finalised by the loop's ``shutdown_asyncgens()``: dispose the loop's
        engine while the loop can still run the close."""
        try:
            yield
        finally:
            if engine.pid == os.getpid():
                self._release(loop, engine)
                await engine.engine.dispose()

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # another thread may have held it
        for engine in [self.first, *self._by_loop.values()]:
            # Kept, never collected: closing an inherited SQLite connection can
            # checkpoint (and delete) the WAL the parent is writing to.
            _inherited.append(engine.forget())
            engine.pid = os.getpid()
            if engine.closer is not None:
                # Finalising it here would go through the parent's loop.
                _inherited.append(engine.closer)
                engine.closer = None
        self._by_loop = {}
        self._cached = (_NO_LOOP, self.first)


def _start(closer: AsyncGenerator[None]) -> None:
    """Run *closer* to its ``yield``: its first step registers it with the
    running loop (asyncio's asyncgen hooks), which finalises it at shutdown."""
    step = closer.__anext__()
    try:
        step.send(None)
    except StopIteration:
        return
    raise AssertionError("a closer does not wait before its yield")  # pragma: no cover


def _forget_all_in_child() -> None:
    for engines in list(_all):
        engines.after_fork_in_child()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_forget_all_in_child)

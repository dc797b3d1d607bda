"""Read replicas: where a read made outside a session goes.

``Database(url, replicas=[...], read_your_writes=2.0)`` keeps one
:class:`~._engines.EngineSet` per replica (an engine per event loop, none
across ``fork()``, as for the primary) and routes each read that may go to a
replica (QuerySet reads outside a session: ``get``, ``filter`` iteration and
terminals, ``count``, ``exists``, ``values``, ``in_bulk``, ``aggregate``):

- **Read your writes.** A task (an asyncio context) that wrote through the
  Database -- an autocommit write, a get_or_create, a ``db.session()`` block --
  reads from the primary for ``read_your_writes`` seconds after its last
  write. A replica replays the primary's WAL a few milliseconds behind, so
  without this a read right after a write misses it (docs/scaling.md has the
  figures). 0 turns it off. Tasks started later inherit the time (asyncio
  copies the context); a write in a child task does not reach its parent.
- **Spread.** Replicas take reads in turn.
- **Down replicas.** A read that fails on a replica with a connection-level
  error (``OperationalError``, ``InterfaceError``, ``OSError``) marks it down
  for :data:`DOWN_SECONDS` and runs on the primary instead; while every
  replica is down, reads go to the primary.

Everything else -- writes, get_or_create and update_or_create (their reads
must see the primary's rows), ``select_for_update``, sessions -- never comes
here: it runs on the primary.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Final

from sqlalchemy.exc import InterfaceError, OperationalError

from ._engines import EngineSet, LoopEngine

logger = logging.getLogger("sqlalchemy_objects")

#: How long a replica that failed a read is skipped.
DOWN_SECONDS: Final = 5.0

#: The errors that say "this replica cannot answer now".
UNAVAILABLE: Final = (OperationalError, InterfaceError, OSError)


class ReplicaSet:
    """The replicas of one Database and the state that routes reads to them."""

    __slots__ = (
        "_down_until",
        "_next",
        "_wrote_at",
        "engines",
        "names",
        "read_your_writes",
    )

    def __init__(
        self,
        makers: Sequence[Callable[[], LoopEngine]],
        names: Sequence[str],
        read_your_writes: float,
    ) -> None:
        self.engines = [EngineSet(make) for make in makers]
        self.names = list(names)
        self.read_your_writes = read_your_writes
        self._down_until = [0.0] * len(self.engines)
        self._next = 0
        # One variable per Database: a task's last write through it.
        self._wrote_at: ContextVar[float] = ContextVar(
            f"sqlalchemy_objects_wrote_{id(self)}", default=-math.inf
        )

    def wrote(self) -> None:
        """This task just wrote: its reads go to the primary for a while."""
        if self.read_your_writes > 0:
            self._wrote_at.set(time.monotonic())

    def pick(self) -> int | None:
        """The index of the replica the next read goes to, or None for the
        primary (this task wrote recently, or every replica is down)."""
        now = time.monotonic()
        if now - self._wrote_at.get() < self.read_your_writes:
            return None
        count = len(self.engines)
        for step in range(count):
            index = (self._next + step) % count
            if self._down_until[index] <= now:
                self._next = index + 1
                return index
        return None

    def current(self, index: int) -> LoopEngine:
        """Replica *index*'s engine for the running event loop."""
        return self.engines[index].current()

    def failed(self, index: int, exc: BaseException) -> None:
        """Replica *index* could not answer: skip it for a while."""
        self._down_until[index] = time.monotonic() + DOWN_SECONDS
        logger.warning(
            "replica %s failed a read (%s: %s); reads go elsewhere for %.0f s",
            self.names[index],
            type(exc).__name__,
            exc,
            DOWN_SECONDS,
        )

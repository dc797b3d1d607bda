"""A connection pool that serves waiting tasks in the order they came.

SQLAlchemy's ``AsyncAdaptedQueuePool`` keeps its connections in an
``asyncio.Queue``. When every connection is checked out, a task that asks for
one waits on the queue; when a connection comes back, the first waiter is
woken, but before it runs, any task that asks now takes the connection
without waiting (``get_nowait`` first), and the woken waiter, finding the
queue empty again, goes back to the *end* of the line. Under a steady load
larger than the pool (a web server with more requests in flight than
connections) some requests wait many times over: measured through uvicorn
with 64 concurrent requests on a pool of 10, a median request took 27 ms and
the slowest percent 1.3-1.8 s (``benchmarks/web_requests.py``).

:class:`FairQueue` hands a returned connection straight to the longest
waiting task, and a task that asks while others wait queues behind them. A
waiter that gives up (its timeout, or its task cancelled) after a connection
was handed to it passes that connection on, so none is lost.
:class:`FairAsyncQueuePool` is SQLAlchemy's pool with this queue: the
Database's default for server backends and SQLite files.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import await_only
from sqlalchemy.util.queue import Empty, Full, QueueCommon


class FairQueue(QueueCommon[Any]):
    """First come, first served: a returned item goes to the oldest waiter."""

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        self.maxsize = maxsize
        self.use_lifo = use_lifo
        self._items: deque[Any] = deque()
        self._waiters: deque[asyncio.Future[Any]] = deque()

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: Any) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        if self.full():
            raise Full()
        self._items.append(item)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self.put_nowait(item)  # the pool never blocks on a put

    def get_nowait(self) -> Any:
        if not self._items:
            raise Empty()
        return self._items.pop() if self.use_lifo else self._items.popleft()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        # Items wait in the queue only while nobody waits for one (a put
        # hands its item to the oldest waiter), so taking one is fair.
        if self._items or not block:
            return self.get_nowait()
        return await_only(self._wait(seconds=timeout))

    async def _wait(self, seconds: float | None) -> Any:
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            if seconds is None:
                return await waiter
            async with asyncio.timeout(seconds):
                return await asyncio.shield(waiter)
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                # handed an item as we gave up: pass it on, lose none
                self.put_nowait(waiter.result())
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise Empty() from None
            raise


class FairAsyncQueuePool(AsyncAdaptedQueuePool):
    """SQLAlchemy's async queue pool, serving waiting tasks in order."""

    _queue_class = FairQueue

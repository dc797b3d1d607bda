"""The fair connection queue (``_pool.FairQueue``): no database needed.

The pool calls ``get``/``put`` from inside SQLAlchemy's greenlet, so each get
here runs through ``greenlet_spawn`` as the pool's would.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.queue import AsyncAdaptedQueue, Empty

from sqlalchemy_objects._pool import FairQueue


def taker(queue: Any, order: list[str], name: str) -> asyncio.Task[Any]:
    async def take() -> Any:
        item = await greenlet_spawn(queue.get, True, 5.0)
        order.append(name)
        return item

    return asyncio.ensure_future(take())


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_returned_item_goes_to_the_oldest_waiter_not_a_newcomer() -> None:
    queue = FairQueue(2)
    order: list[str] = []
    first, second = taker(queue, order, "first"), taker(queue, order, "second")
    await settle()
    assert order == []  # both wait: the queue is empty
    queue.put_nowait("conn")
    # A checkout in the same step as the return (the returning task asking
    # again, another request starting) finds nothing to take: the item is
    # the oldest waiter's already.
    with pytest.raises(Empty):
        queue.get(block=False)
    newcomer = taker(queue, order, "newcomer")  # queues behind the waiters
    await settle()
    assert order == ["first"]
    queue.put_nowait(await first)
    await settle()
    assert order == ["first", "second"]
    queue.put_nowait(await second)
    assert await newcomer == "conn"
    assert order == ["first", "second", "newcomer"]


async def test_sqlalchemys_queue_lets_a_newcomer_take_the_waiters_turn() -> None:
    """What FairQueue fixes: in AsyncAdaptedQueue a checkout in the same step
    as the return takes the item, and the woken waiter, finding the queue
    empty, waits again, now behind everyone who came since."""
    queue: Any = AsyncAdaptedQueue(2)
    order: list[str] = []
    waiter = taker(queue, order, "waiter")
    await settle()
    queue.put_nowait("conn")
    assert queue.get(True, 5.0) == "conn"  # the newcomer, without waiting
    later = taker(queue, order, "later")
    await settle()
    assert order == []  # the waiter is waiting again
    queue.put_nowait("conn")
    await settle()
    assert order == ["waiter"]
    queue.put_nowait(await waiter)
    assert await later == "conn"


async def test_a_waiter_that_times_out_raises_empty_and_leaves_the_line() -> None:
    queue = FairQueue(1)
    with pytest.raises(Empty):
        await greenlet_spawn(queue.get, True, 0.05)
    assert not queue._waiters
    queue.put_nowait("conn")  # kept for the next get, not handed to the gone waiter
    assert queue.qsize() == 1
    assert await greenlet_spawn(queue.get, True, 0.05) == "conn"


@pytest.mark.parametrize("wait", [None, 5.0])
async def test_a_cancelled_waiter_handed_an_item_passes_it_on(
    wait: float | None,
) -> None:
    """Cancelled after the put gave it the connection but before it ran: the
    connection goes to the next waiter, not lost with the cancelled task."""
    queue = FairQueue(1)
    order: list[str] = []

    async def take(name: str) -> Any:
        item = await greenlet_spawn(queue.get, True, wait)
        order.append(name)
        return item

    doomed = asyncio.ensure_future(take("doomed"))
    heir = asyncio.ensure_future(take("heir"))
    await settle()
    queue.put_nowait("conn")
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert await heir == "conn"
    assert order == ["heir"]

    # and with no one else waiting, it goes back into the queue
    alone = asyncio.ensure_future(take("alone"))
    await settle()
    queue.put_nowait("conn")
    alone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await alone
    assert queue.qsize() == 1


async def test_lifo_and_nonblocking_gets() -> None:
    queue = FairQueue(3, use_lifo=True)
    for item in ("a", "b"):
        queue.put_nowait(item)
    assert queue.get(block=False) == "b"
    assert queue.get_nowait() == "a"
    with pytest.raises(Empty):
        queue.get(block=False)
    assert queue.empty()


async def test_the_database_uses_the_fair_pool_where_sqlalchemy_would_queue() -> None:
    from sqlalchemy.pool import NullPool, StaticPool

    from sqlalchemy_objects import Database
    from sqlalchemy_objects._pool import FairAsyncQueuePool

    made = [
        Database("postgresql+asyncpg://u@127.0.0.1:1/x"),
        Database("mysql+asyncmy://u@127.0.0.1:1/x"),
        Database("sqlite+aiosqlite:///some.sqlite3"),
        Database("sqlite+aiosqlite://"),  # in memory: SQLAlchemy's StaticPool
        Database("postgresql+asyncpg://u@127.0.0.1:1/x", poolclass=NullPool),
    ]
    try:
        pools = [type(db.engine.sync_engine.pool) for db in made]
        assert pools == [
            FairAsyncQueuePool,
            FairAsyncQueuePool,
            FairAsyncQueuePool,
            StaticPool,
            NullPool,
        ]
    finally:
        for db in made:
            await db.dispose()

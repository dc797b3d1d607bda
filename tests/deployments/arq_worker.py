"""An arq worker, as a user writes one: a module-level Database made at import.

Run by tests/deployments/test_workers.py in worker processes of their own;
``SO_TEST_URL`` names the database and ``SO_TEST_REDIS_DB`` the Redis
database (on the machine's Redis, 127.0.0.1:6379); ``SO_TEST_MAX_JOBS`` and
``SO_TEST_JOB_TIMEOUT`` set arq's concurrency and timeout, and
``SO_TEST_JOB_SECONDS`` how long a job works inside its transaction.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, ClassVar

from arq.connections import RedisSettings

from sqlalchemy_objects import Database
from tests.models import Article, Base, User

#: Distinct customers the jobs share (so jobs race on them across workers).
CUSTOMERS = 50

db = Database(os.environ["SO_TEST_URL"], pool_size=10, max_overflow=0)
db.bind(Base)


async def record(ctx: dict[str, Any], n: int) -> bool:
    """Job *n*: its customer (shared with other jobs) and its own order, in one
    transaction. Safe to run again: both are get_or_create."""
    redis, running = ctx["redis"], f"running:{os.getpid()}"
    await redis.incr(f"attempts:{n}")  # the test counts re-runs
    await redis.sadd(running, n)  # and kills a worker that has jobs in flight
    await asyncio.sleep(0.2)  # the job's own work, before it writes
    async with db.session():
        customer, created = await User.objects.get_or_create(
            username=f"customer-{n % CUSTOMERS}"
        )
        # Work inside the open transaction: a kill may land here too.
        await asyncio.sleep(float(os.environ.get("SO_TEST_JOB_SECONDS", "0.1")))
        await Article.objects.get_or_create(
            title=f"order-{n}", defaults={"author_id": customer.id}
        )
    await redis.srem(running, n)
    return created


async def shutdown(ctx: dict[str, Any]) -> None:
    await db.dispose()


class WorkerSettings:
    functions: ClassVar[list[Any]] = [record]
    on_shutdown = shutdown
    redis_settings = RedisSettings(database=int(os.environ["SO_TEST_REDIS_DB"]))
    # SQLite has one write lock: fewer jobs at a time, and longer to wait.
    max_jobs = int(os.environ.get("SO_TEST_MAX_JOBS", "10"))
    # A killed worker's job is picked up again once its lock expires
    # (job_timeout + 10 s in arq).
    job_timeout = int(os.environ.get("SO_TEST_JOB_TIMEOUT", "3"))
    poll_delay = 0.05  # arq's 0.5 s would leave a worker idle between batches

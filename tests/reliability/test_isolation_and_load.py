"""Isolation levels and pool exhaustion under real concurrency."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from sqlalchemy_objects import Database
from tests.conftest import SERVER_BACKENDS, open_database, open_transactions, settle
from tests.models import User

LEVELS = ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"]
CALLERS = 16
ROUNDS = 6


async def race(db: Database, in_session: bool) -> list[bool | BaseException]:
    """CALLERS tasks per round race on one new key; return every outcome."""
    outcomes: list[bool | BaseException] = []
    for round_no in range(ROUNDS):
        barrier = asyncio.Barrier(CALLERS)

        async def one(
            key: str = f"k{round_no}", barrier: asyncio.Barrier = barrier
        ) -> bool:
            await barrier.wait()
            if in_session:
                async with db.session():
                    return (await User.objects.get_or_create(username=key))[1]
            return (await User.objects.get_or_create(username=key))[1]

        outcomes += await asyncio.gather(
            *(one() for _ in range(CALLERS)), return_exceptions=True
        )
    return outcomes


def code(exc: BaseException) -> object:
    """The driver's own code: PostgreSQL SQLSTATE, MySQL errno."""
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None and type(orig).__module__.startswith(
        ("sqlalchemy.dialects.postgresql", "psycopg")
    ):  # PostgreSQL drivers; MySQL ones carry a generic 42000 here
        return sqlstate
    args = getattr(orig, "args", ())
    return args[0] if args else None


@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
@pytest.mark.parametrize("level", LEVELS)
async def test_autocommit_is_race_proof_at_every_isolation_level(
    backend: str, level: str, tmp_path: Path
) -> None:
    """Outside a transaction each step is its own transaction, so the retried get
    always sees the winner: one row and one created=True per key, no exception."""
    db = await open_database(
        backend, tmp_path, isolation_level=level, pool_size=CALLERS
    )
    try:
        outcomes = await race(db, in_session=False)
        assert [o for o in outcomes if isinstance(o, BaseException)] == []
        assert outcomes.count(True) == ROUNDS
        assert await User.objects.count() == ROUNDS
    finally:
        await db.drop_all()
        await db.dispose()


# What a caller inside its own transaction gets when it loses the race, by level.
# None: race-proof. Otherwise: the error codes it may see (always "retry the whole
# transaction" errors), and at least one row per key is committed by the winner.
EXPECTED_IN_SESSION: dict[tuple[str, str], set[object] | None] = {
    ("postgresql", "READ COMMITTED"): None,
    ("postgresql", "REPEATABLE READ"): {"23505"},  # IntegrityError with our note
    ("postgresql", "SERIALIZABLE"): {"40001"},  # serialization failure
    ("mariadb", "READ COMMITTED"): None,
    ("mariadb", "REPEATABLE READ"): None,  # the locking re-read sees the winner
    ("mariadb", "SERIALIZABLE"): {1213},  # InnoDB deadlock: SELECTs take shared locks
}


@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
@pytest.mark.parametrize("level", LEVELS)
async def test_inside_a_transaction_at_each_isolation_level(
    backend: str, level: str, tmp_path: Path
) -> None:
    """Inside the caller's transaction: race-proof at READ COMMITTED (and on MariaDB
    at REPEATABLE READ); otherwise the losers get exactly the documented
    "retry the whole transaction" errors, never a duplicate and never a hang."""
    db = await open_database(
        backend, tmp_path, isolation_level=level, pool_size=CALLERS
    )
    try:
        outcomes = await asyncio.wait_for(race(db, in_session=True), timeout=120)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        expected = EXPECTED_IN_SESSION[(backend, level)]
        if expected is None:
            assert errors == []
            assert outcomes.count(True) == ROUNDS
        else:
            assert {code(e) for e in errors} <= expected, {
                f"{type(e).__name__}: {e}" for e in errors
            }
            for error in errors:
                if isinstance(error, IntegrityError):
                    assert any(
                        "Retry the whole transaction" in n for n in error.__notes__
                    )
                else:
                    assert isinstance(error, DBAPIError)
        assert await User.objects.count() == ROUNDS  # one row per key, no duplicate
        assert await open_transactions(db) == 0
    finally:
        await db.drop_all()
        await db.dispose()


async def test_many_callers_on_a_small_pool_all_complete(
    backend: str, tmp_path: Path
) -> None:
    """500 concurrent get_or_create calls on a pool of 5: all complete, none leaks."""
    db = await open_database(backend, tmp_path, pool_size=5, max_overflow=0)
    try:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(User.objects.get_or_create(username=f"u{i % 50}") for i in range(500))
            ),
            timeout=120,
        )
        assert sum(created for _, created in results) == 50
        assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await db.drop_all()
        await db.dispose()


async def test_pool_timeout_is_a_clear_error_and_leaks_nothing(
    backend: str, tmp_path: Path
) -> None:
    """500 callers that each hold a connection for 20 ms, pool of 5, pool_timeout 0.5 s:
    those that cannot get a connection in time fail with SQLAlchemy's pool TimeoutError
    (which names the pool limit); the rest complete; nothing hangs or leaks."""
    db = await open_database(
        backend, tmp_path, pool_size=5, max_overflow=0, pool_timeout=0.5
    )

    async def slow(i: int) -> bool:
        async with db.session():
            _, created = await User.objects.get_or_create(username=f"u{i % 50}")
            await asyncio.sleep(0.02)  # work that keeps the connection
        return created

    try:
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(slow(i) for i in range(500)), return_exceptions=True),
            timeout=120,
        )
        timeouts = [o for o in outcomes if isinstance(o, PoolTimeoutError)]
        others = [
            o
            for o in outcomes
            if isinstance(o, BaseException) and not isinstance(o, PoolTimeoutError)
        ]
        assert others == []
        assert timeouts, "the pool never ran out; the test did not exhaust it"
        assert all(
            "QueuePool limit of size" in str(t) and "timed out" in str(t)
            for t in timeouts
        )
        assert len(timeouts) < 500
        await settle()
        assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert await open_transactions(db) == 0
        assert await User.objects.count() <= 50
    finally:
        await db.drop_all()
        await db.dispose()

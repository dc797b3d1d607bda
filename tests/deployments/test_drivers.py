"""The drivers beyond each backend's default: psycopg 3 and aiomysql (SPEC §6).

``make test`` also reruns the race, get_or_create-error, deadlock and
deployment suites on them; these tests pin what was reported broken: with
psycopg, get_or_create's one-statement path sent positional parameters to a
driver that takes named ones (every racer failed, and every second hit on a
lookup shape), which it must step aside from instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest
from sqlalchemy.engine import make_url

from sqlalchemy_objects import Database
from tests.conftest import MARIADB_URL, PG_URL
from tests.models import Base, User

RACERS = 200

DRIVERS = [
    pytest.param(
        make_url(PG_URL).set(drivername="postgresql+psycopg"),
        id="postgresql-psycopg",
        marks=pytest.mark.postgresql,
    ),
    pytest.param(
        make_url(MARIADB_URL).set(drivername="mysql+aiomysql"),
        id="mariadb-aiomysql",
        marks=pytest.mark.mariadb,
    ),
]


@pytest.fixture(params=DRIVERS, name="driver_db")
async def _driver_db(request: pytest.FixtureRequest) -> AsyncGenerator[Database]:
    db = Database(request.param, pool_size=40, max_overflow=10)
    db.bind(Base)
    await db.drop_all()
    await db.create_all()
    yield db
    try:
        assert db.engine.pool.checkedout() == 0, "a connection was left checked out"  # type: ignore[attr-defined]
    finally:
        await db.drop_all()
        await db.dispose()


async def test_racers_on_one_key_get_one_row_and_no_exception(
    driver_db: Database,
) -> None:
    """RACERS tasks released together on one new key: one row, one
    created=True, no exception; then hits on the same lookup shape."""
    barrier = asyncio.Barrier(RACERS)

    async def racer() -> bool:
        await barrier.wait()
        _, created = await User.objects.get_or_create(
            username="ann", defaults={"email": "a@x"}
        )
        return created

    outcomes = await asyncio.gather(
        *(racer() for _ in range(RACERS)), return_exceptions=True
    )
    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    assert outcomes.count(True) == 1
    assert await User.objects.count() == 1
    for n in range(10):  # the same shape again and again: hit, then miss and hit
        user, created = await User.objects.get_or_create(username="ann")
        assert (user.email, created) == ("a@x", False)
        _, created = await User.objects.get_or_create(username=f"bob-{n}")
        assert created
        _, created = await User.objects.get_or_create(username=f"bob-{n}")
        assert not created
    assert await User.objects.count() == 11

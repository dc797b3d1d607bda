"""The "sqlalchemy_objects" logger: lost races at DEBUG, never a column value."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sqlalchemy_objects import Database
from tests.models import User

SECRET = "s3cret-value-that-must-not-be-logged"


async def test_lost_races_are_logged_without_values(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sqlalchemy_objects")
    for round_no in range(10):  # a race is lost in practically every round
        barrier = asyncio.Barrier(16)

        async def one(key: str, barrier: asyncio.Barrier = barrier) -> bool:
            await barrier.wait()
            _, created = await User.objects.get_or_create(
                username=key, defaults={"email": SECRET}
            )
            return created

        results = await asyncio.gather(
            *(one(f"{SECRET}-{round_no}") for _ in range(16))
        )
        assert results.count(True) == 1
        if "get_or_create lost a race for User; retrying get()" in caplog.text:
            break
    else:
        pytest.fail("no race was lost in 10 rounds of 16 callers")
    records = [r for r in caplog.records if r.name == "sqlalchemy_objects"]
    assert records
    assert all(r.levelno == logging.DEBUG for r in records)
    assert SECRET not in caplog.text

"""``dates()`` and ``datetimes()``, Django's: the distinct truncated dates of
the rows, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event

from sqlalchemy_objects import Database, FieldError
from tests.conftest import StatementLog
from tests.models import Counter, Event, Level, Visit

MOMENTS = (
    dt.datetime(2024, 1, 15, 10, 30, 45, 500),  # a Monday
    dt.datetime(2024, 1, 20, 8, 0, 0),  # the Saturday of that week
    dt.datetime(2024, 3, 3, 23, 59, 59),  # a Sunday
    dt.datetime(2023, 12, 31, 12, 0, 0),  # a Sunday, of a week begun in December
)


async def events() -> None:
    for i, at in enumerate(MOMENTS):
        await Event.objects.create(
            at=at, kind="odd" if i % 2 else "even", score=Decimal(1), level=Level.LOW
        )


async def test_dates_by_kind_and_order(db: Database, sql: StatementLog) -> None:
    await events()
    sql.statements.clear()
    assert await Event.objects.dates("at", "year") == [
        dt.date(2023, 1, 1),
        dt.date(2024, 1, 1),
    ]
    assert len(sql.statements) == 1
    assert "DISTINCT" in sql.statements[0]
    assert await Event.objects.dates("at", "month") == [
        dt.date(2023, 12, 1),
        dt.date(2024, 1, 1),
        dt.date(2024, 3, 1),
    ]
    assert await Event.objects.dates("at", "week") == [
        dt.date(2023, 12, 25),
        dt.date(2024, 1, 15),
        dt.date(2024, 2, 26),
    ]
    assert await Event.objects.dates("at", "day", order="DESC") == [
        dt.date(2024, 3, 3),
        dt.date(2024, 1, 20),
        dt.date(2024, 1, 15),
        dt.date(2023, 12, 31),
    ]
    # the QuerySet's filters choose the rows; its order and none() as Django
    assert await Event.objects.filter(kind="odd").order_by("-at").dates(
        "at", "month"
    ) == [
        dt.date(2023, 12, 1),
        dt.date(2024, 1, 1),
    ]
    assert await Event.objects.filter(kind="nope").dates("at", "year") == []


async def test_dates_of_a_date_column_leave_nulls_out(db: Database) -> None:
    for name, day in (
        ("a", dt.date(2024, 2, 29)),
        ("b", None),
        ("c", dt.date(2024, 2, 1)),
    ):
        await Counter.objects.create(name=name, day=day)
    assert await Counter.objects.dates("day", "day") == [
        dt.date(2024, 2, 1),
        dt.date(2024, 2, 29),
    ]
    assert await Counter.objects.dates("day", "month") == [dt.date(2024, 2, 1)]


async def test_datetimes_by_kind(db: Database) -> None:
    await events()
    assert await Event.objects.datetimes("at", "hour") == [
        dt.datetime(2023, 12, 31, 12),
        dt.datetime(2024, 1, 15, 10),
        dt.datetime(2024, 1, 20, 8),
        dt.datetime(2024, 3, 3, 23),
    ]
    assert await Event.objects.filter(kind="even").datetimes("at", "minute") == [
        dt.datetime(2024, 1, 15, 10, 30),
        dt.datetime(2024, 3, 3, 23, 59),
    ]
    assert (await Event.objects.datetimes("at", "second", order="DESC"))[-1] == (
        dt.datetime(2023, 12, 31, 12, 0, 0)
    )
    assert dt.datetime(2024, 1, 15, 10, 30, 45) in await Event.objects.datetimes(
        "at", "second"
    )
    assert await Event.objects.datetimes("at", "week") == [
        dt.datetime(2023, 12, 25),
        dt.datetime(2024, 1, 15),
        dt.datetime(2024, 2, 26),
    ]
    assert await Event.objects.datetimes("at", "year") == [
        dt.datetime(2023, 1, 1),
        dt.datetime(2024, 1, 1),
    ]


async def test_datetimes_of_an_aware_column_in_a_time_zone(db: Database) -> None:
    """Converted to *tzinfo* (UTC by default) before truncation, as Django's
    ``datetimes(..., tzinfo=)``."""
    late = dt.datetime(2024, 3, 31, 23, 30, tzinfo=dt.UTC)
    await Visit.objects.create(at=late)
    await Visit.objects.create(at=dt.datetime(2024, 4, 2, 9, 15, tzinfo=dt.UTC))
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert await Visit.objects.datetimes("at", "day") == [
        dt.datetime(2024, 3, 31, tzinfo=dt.UTC),
        dt.datetime(2024, 4, 2, tzinfo=dt.UTC),
    ]
    assert await Visit.objects.datetimes("at", "day", tzinfo=plus_two) == [
        dt.datetime(2024, 4, 1, tzinfo=plus_two),
        dt.datetime(2024, 4, 2, tzinfo=plus_two),
    ]
    assert await Visit.objects.datetimes("at", "hour", tzinfo=plus_two) == [
        dt.datetime(2024, 4, 1, 1, tzinfo=plus_two),
        dt.datetime(2024, 4, 2, 11, tzinfo=plus_two),
    ]
    assert await Visit.objects.dates("at", "month") == [
        dt.date(2024, 3, 1),
        dt.date(2024, 4, 1),
    ]


async def test_dates_refuse_what_django_refuses(db: Database) -> None:
    with pytest.raises(ValueError, match="'kind' must be one of 'year', 'month'"):
        await Event.objects.dates("at", "hour")
    with pytest.raises(ValueError, match=r"'kind' must be one of .* or 'second'"):
        await Event.objects.datetimes("at", "fortnight")
    with pytest.raises(ValueError, match="'order' must be either 'ASC' or 'DESC'"):
        await Event.objects.dates("at", "year", order="down")
    with pytest.raises(
        TypeError, match=r"Event\.kind is not a Date or DateTime column"
    ):
        await Event.objects.dates("kind", "year")
    with pytest.raises(TypeError, match=r"Counter\.day is not a DateTime column"):
        await Counter.objects.datetimes("day", "day")
    with pytest.raises(FieldError, match="'nope' into a column of Event"):
        await Event.objects.dates("nope", "year")
    with pytest.raises(TypeError, match="once a slice has been taken"):
        await Event.objects.all()[:2].dates("at", "year")


async def test_transforms_of_an_aware_column_are_in_utc(db: Database) -> None:
    """``at__hour`` / ``at__date`` of a time-zone-aware column are taken in
    UTC on every backend, whatever the PostgreSQL connection's TimeZone."""
    if db.backend == "postgresql":

        def tokyo(dbapi_connection: Any, record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("SET TIME ZONE 'Asia/Tokyo'")
            cursor.close()

        event.listen(db.engine.sync_engine, "connect", tokyo)
        await db.engine.dispose()  # new connections only, with the setting
    late = dt.datetime(2024, 3, 31, 23, 30, tzinfo=dt.UTC)  # Tokyo: 1 April 08:30
    await Visit.objects.create(at=late)
    assert await Visit.objects.filter(at__hour=23).count() == 1
    assert await Visit.objects.filter(at__hour=8).count() == 0
    assert await Visit.objects.filter(at__date=dt.date(2024, 3, 31)).count() == 1
    assert await Visit.objects.filter(at__day=31, at__month=3).count() == 1
    assert await Visit.objects.filter(at__week_day=1).count() == 1  # a Sunday

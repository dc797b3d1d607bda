"""``dates()`` and ``datetimes()``: Django's distinct truncated dates.

``qs.dates("pub_date", "month")`` is the sorted list of the distinct first days
of the months in which the QuerySet's rows fall (NULLs left out), as Django's.
The database does the DISTINCT on the parts the kind needs (a date, an hour,
...), so the answer is never bigger than the number of distinct days (hours,
...), and Python builds the ``date`` / ``datetime`` objects (a week starts on
its Monday, as Django's). For a time-zone-aware column the values are
converted to *tzinfo* (UTC by default) before they are truncated, in Python,
from the distinct stored values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import Date, DateTime, select
from sqlalchemy.ext.asyncio import AsyncSession

from . import lookups
from ._query import Query
from ._routing import Target, read, resolve
from ._rows import supported
from ._transforms import TRANSFORMS

DATE_KINDS: Final = ("year", "month", "week", "day")
DATETIME_KINDS: Final = (*DATE_KINDS, "hour", "minute", "second")
#: The parts the database returns, distinct, for each kind (besides the date).
_TIME_PARTS: Final = {"hour": ("hour",), "minute": ("hour", "minute")}
_TIME_PARTS_SECOND: Final = ("hour", "minute", "second")


def _checked(
    query: Query, field: str, kind: str, order: str, kinds: Sequence[str], what: str
) -> Any:
    if kind not in kinds:
        names = ", ".join(repr(k) for k in kinds[:-1])
        raise ValueError(f"'kind' must be one of {names}, or {kinds[-1]!r}.")
    if order not in ("ASC", "DESC"):
        raise ValueError("'order' must be either 'ASC' or 'DESC'.")
    query.refuse_if_combined(what)
    query.refuse_if_sliced(f"call {what} on")
    column = lookups.field_column(query.model, field, what)
    wanted = DateTime if what == "datetimes()" else (Date, DateTime)
    if not isinstance(column.type, wanted):
        expected = "a DateTime" if what == "datetimes()" else "a Date or DateTime"
        raise TypeError(
            f"{what}: {query.model.__name__}.{field} is not {expected} column."
        )
    return column


def _truncated_date(day: dt.date, kind: str) -> dt.date:
    if kind == "year":
        return day.replace(month=1, day=1)
    if kind == "month":
        return day.replace(day=1)
    if kind == "week":
        return day - dt.timedelta(days=day.weekday())
    return day


async def _distinct(
    query: Query, target: Target | None, parts: Sequence[Any], column: Any
) -> list[tuple[Any, ...]]:
    stmt = (
        query.replace(order=(), distinct_fields=())
        .apply(select(*parts).select_from(query.model))
        .where(column.is_not(None))
        .distinct()
    )

    async def work(session: AsyncSession) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in (await session.execute(stmt)).all()]

    return await read(supported(query, resolve(query.model, target)), work)


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, str):  # SQLite's date() of a column the type did not read
        return dt.date.fromisoformat(value[:10])
    assert isinstance(value, dt.date)
    return value


def _aware(column: Any) -> bool:
    return isinstance(column.type, DateTime) and bool(column.type.timezone)


def _in_zone(value: Any, tzinfo: dt.tzinfo | None) -> dt.datetime:
    assert isinstance(value, dt.datetime)
    if value.tzinfo is None:  # SQLite and MariaDB keep no offset: UTC
        value = value.replace(tzinfo=dt.UTC)
    converted: dt.datetime = value.astimezone(tzinfo or dt.UTC)
    return converted


async def dates(
    query: Query, target: Target | None, field: str, kind: str, order: str
) -> list[dt.date]:
    """Django's ``dates(field, kind, order)`` (see the module)."""
    column = _checked(query, field, kind, order, DATE_KINDS, "dates()")
    if _aware(column):
        found = {
            _truncated_date(_in_zone(v, None).date(), kind)
            for (v,) in await _distinct(query, target, [column], column)
        }
    else:
        day = (
            TRANSFORMS["date"](column) if isinstance(column.type, DateTime) else column
        )
        found = {
            _truncated_date(_as_date(v), kind)
            for (v,) in await _distinct(query, target, [day], column)
        }
    return sorted(found, reverse=order == "DESC")


def _truncated(moment: dt.datetime, kind: str) -> dt.datetime:
    if kind in DATE_KINDS:
        day = _truncated_date(moment.date(), kind)
        return dt.datetime.combine(day, dt.time(), moment.tzinfo)
    if kind == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    if kind == "minute":
        return moment.replace(second=0, microsecond=0)
    return moment.replace(microsecond=0)


async def datetimes(
    query: Query,
    target: Target | None,
    field: str,
    kind: str,
    order: str,
    tzinfo: dt.tzinfo | None,
) -> list[dt.datetime]:
    """Django's ``datetimes(field, kind, order, tzinfo)`` (see the module):
    naive datetimes for a naive column, aware ones in *tzinfo* (UTC by
    default) for an aware column."""
    column = _checked(query, field, kind, order, DATETIME_KINDS, "datetimes()")
    if _aware(column):
        found = {
            _truncated(_in_zone(v, tzinfo), kind)
            for (v,) in await _distinct(query, target, [column], column)
        }
        return sorted(found, reverse=order == "DESC")
    names = _TIME_PARTS.get(kind, _TIME_PARTS_SECOND if kind == "second" else ())
    parts = [TRANSFORMS["date"](column), *(TRANSFORMS[n](column) for n in names)]
    naive: set[dt.datetime] = set()
    for day, *clock in await _distinct(query, target, parts, column):
        hour, minute, second = (*(int(c) for c in clock), 0, 0, 0)[:3]
        moment = dt.datetime.combine(_as_date(day), dt.time(hour, minute, second))
        naive.add(_truncated(moment, kind))
    return sorted(naive, reverse=order == "DESC")

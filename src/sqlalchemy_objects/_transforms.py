"""Date and time transforms of lookups: ``pub_date__year__gte=2020``.

Django's ``__year``, ``__iso_year``, ``__quarter``, ``__month``, ``__week``,
``__week_day``, ``__iso_week_day``, ``__day``, ``__hour``, ``__minute``,
``__second`` (integers, with Django's numbering: ``week`` is the ISO 8601 week,
``week_day`` runs 1 = Sunday to 7 = Saturday, ``iso_week_day`` 1 = Monday to
7 = Sunday), ``__date`` (the date of a datetime) and ``__time`` (its time of
day). Each is compiled for its
backend (PostgreSQL ``EXTRACT``, MySQL/MariaDB's date functions, SQLite's
``strftime``), and returns the same number on all three.

The parts are taken from the value as the database holds it: a naive column
as stored; a time-zone-aware column (``DateTime(timezone=True)``, PostgreSQL's
``timestamptz``) in UTC, whatever the connection's ``TimeZone`` setting, so
that ``at__hour=23`` means the same on every connection and every backend
(SQLite and MariaDB keep no offset: their wall time is taken as UTC, as an
aware value written in UTC leaves it). This is Django's ``USE_TZ = True``
with ``TIME_ZONE = "UTC"``; there is no per-request "current time zone".
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Date, DateTime, Integer, Time
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class Transform(FunctionElement[Any]):
    """One transform of one column; a subclass per part (the cache key)."""

    inherit_cache = True
    part: str = ""


#: Parts that need a time of day, and parts that need a date.
TIME_PARTS: Final = frozenset({"hour", "minute", "second"})
DATE_PARTS: Final = frozenset(
    {"year", "iso_year", "quarter", "month", "week", "week_day", "iso_week_day", "day"}
)


def applies(part: str, column_type: Any) -> bool:
    """Whether *part* can be taken of a column of *column_type* (Django: no
    ``__hour`` of a date, no ``__year`` of a time, ``__date`` of datetimes)."""
    if isinstance(column_type, DateTime):
        return True
    if isinstance(column_type, Date):
        return part in DATE_PARTS
    if isinstance(column_type, Time):
        return part in TIME_PARTS
    return False


def _operand(element: Transform, compiler: Any, **kw: Any) -> str:
    column = next(iter(element.clauses))
    text: str = compiler.process(column, **kw)
    return text


_PG: Final = {
    "year": "CAST(EXTRACT(YEAR FROM {x}) AS INTEGER)",
    "iso_year": "CAST(EXTRACT(ISOYEAR FROM {x}) AS INTEGER)",
    "quarter": "CAST(EXTRACT(QUARTER FROM {x}) AS INTEGER)",
    "month": "CAST(EXTRACT(MONTH FROM {x}) AS INTEGER)",
    "week": "CAST(EXTRACT(WEEK FROM {x}) AS INTEGER)",
    "week_day": "(CAST(EXTRACT(DOW FROM {x}) AS INTEGER) + 1)",
    "iso_week_day": "CAST(EXTRACT(ISODOW FROM {x}) AS INTEGER)",
    "day": "CAST(EXTRACT(DAY FROM {x}) AS INTEGER)",
    "hour": "CAST(EXTRACT(HOUR FROM {x}) AS INTEGER)",
    "minute": "CAST(EXTRACT(MINUTE FROM {x}) AS INTEGER)",
    "second": "CAST(FLOOR(EXTRACT(SECOND FROM {x})) AS INTEGER)",
    "date": "CAST({x} AS DATE)",
    "time": "CAST({x} AS TIME)",
}
_MYSQL: Final = {
    "year": "YEAR({x})",
    "iso_year": "FLOOR(YEARWEEK({x}, 3) / 100)",
    "quarter": "QUARTER({x})",
    "month": "MONTH({x})",
    "week": "WEEK({x}, 3)",
    "week_day": "DAYOFWEEK({x})",
    "iso_week_day": "(WEEKDAY({x}) + 1)",
    "day": "DAYOFMONTH({x})",
    "hour": "HOUR({x})",
    "minute": "MINUTE({x})",
    "second": "SECOND({x})",
    "date": "DATE({x})",
    "time": "TIME({x})",
}
# SQLite 3.40 has no %V/%G: the ISO week is that of the week's Thursday.
_THURSDAY: Final = "date({x}, '-3 days', 'weekday 4')"
_SQLITE: Final = {
    "year": "CAST(strftime('%Y', {x}) AS INTEGER)",
    "iso_year": f"CAST(strftime('%Y', {_THURSDAY}) AS INTEGER)",
    "quarter": "((CAST(strftime('%m', {x}) AS INTEGER) + 2) / 3)",
    "month": "CAST(strftime('%m', {x}) AS INTEGER)",
    "week": f"((CAST(strftime('%j', {_THURSDAY}) AS INTEGER) - 1) / 7 + 1)",
    "week_day": "(CAST(strftime('%w', {x}) AS INTEGER) + 1)",
    "iso_week_day": "((CAST(strftime('%w', {x}) AS INTEGER) + 6) % 7 + 1)",
    "day": "CAST(strftime('%d', {x}) AS INTEGER)",
    "hour": "CAST(strftime('%H', {x}) AS INTEGER)",
    "minute": "CAST(strftime('%M', {x}) AS INTEGER)",
    "second": "CAST(strftime('%S', {x}) AS INTEGER)",
    "date": "date({x})",
    # SQLAlchemy stores a datetime as 'YYYY-MM-DD HH:MM:SS.ffffff' and a time
    # as 'HH:MM:SS.ffffff': the time of day is the text from the 12th character.
    "time": "substr({x}, 12)",
}


@compiles(Transform)
def _compile_pg(element: Transform, compiler: Any, **kw: Any) -> str:
    operand = _operand(element, compiler, **kw)
    column_type = next(iter(element.clauses)).type
    if isinstance(column_type, DateTime) and column_type.timezone:
        operand = f"({operand} AT TIME ZONE 'UTC')"  # the UTC wall time
    return _PG[element.part].format(x=operand)


@compiles(Transform, "mysql")
def _compile_mysql(element: Transform, compiler: Any, **kw: Any) -> str:
    return _MYSQL[element.part].format(x=_operand(element, compiler, **kw))


@compiles(Transform, "sqlite")
def _compile_sqlite(element: Transform, compiler: Any, **kw: Any) -> str:
    return _SQLITE[element.part].format(x=_operand(element, compiler, **kw))


#: The transforms that are not integers.
_TYPES: Final[dict[str, Any]] = {"date": Date(), "time": Time()}

#: Every transform, by name.
TRANSFORMS: Final[dict[str, type[Transform]]] = {
    part: type(
        f"Transform_{part}",
        (Transform,),
        {
            "part": part,
            "inherit_cache": True,
            "type": _TYPES.get(part, Integer()),
        },
    )
    for part in (*sorted(DATE_PARTS), *sorted(TIME_PARTS), "date", "time")
}

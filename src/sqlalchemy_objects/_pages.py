"""Keyset (cursor) pagination: ``await qs.order_by(...).paginate(after, size)``.

A page is the next *size* rows after the last row of the previous page in the
QuerySet's ordering, found by a WHERE on the ordering columns, never by
OFFSET: rows inserted or deleted before the cursor do not shift the pages,
and the database walks an index on those columns instead of counting rows.

- The ordering is the QuerySet's ``order_by()`` fields (own, non-nullable
  columns; ``-name`` for descending), then every primary-key column not among
  them (ascending) as the tie-breaker, so each row has one place.
- The condition after a row with values ``v1, v2, ...`` is the row-value
  comparison ``(c1, c2, ...) > (v1, v2, ...)`` when every column sorts the same
  way (an index range scan), else its expansion ``c1 > v1 OR (c1 = v1 AND
  c2 > v2) ...`` with ``<`` for descending columns.
- The cursor is opaque to callers: URL-safe base64 of a small JSON document
  holding the ordering and the last row's values (dates, times, decimals,
  UUIDs and bytes tagged so they come back with their type). A cursor made
  under another ordering, or not made here, raises ``ValueError``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Enum, and_, false, inspect, or_, tuple_
from sqlalchemy.orm import Mapper
from sqlalchemy.sql.elements import ColumnElement

from . import lookups
from ._dialects import Backend
from .exceptions import FieldError

_T = TypeVar("_T")

__all__ = ["Key", "Page", "Plan", "after", "decode", "encode", "keys", "plan"]


@dataclass(frozen=True, slots=True)
class Page(Generic[_T]):
    """One page of :meth:`QuerySet.paginate`.

    Attributes:
        items: At most *size* rows, in the QuerySet's ordering.
        next: The cursor to pass as ``after=`` for the next page; None on the
            last page.
    """

    items: list[_T]
    next: str | None


@dataclass(frozen=True, slots=True)
class Key:
    """One ordering column of a paginated QuerySet."""

    attribute: str  # the model attribute holding the value (``pk`` resolved)
    column: Any  # its SQL expression
    descending: bool

    @property
    def term(self) -> str:
        """The order_by() term of this key."""
        return f"-{self.attribute}" if self.descending else self.attribute


def keys(model: type[Any], order: Sequence[Any], *, backend: Backend) -> list[Key]:
    """The ordering columns of *model*'s pages under *order* (order_by terms)
    on *backend*."""
    mapper: Mapper[Any] = inspect(model)
    by_column: dict[Any, str] = {
        prop.columns[0]: prop.key for prop in mapper.column_attrs
    }
    found: list[Key] = []
    for term in order:
        if not isinstance(term, str):
            raise TypeError(
                f"paginate() orders by field names ('name', '-name'), not {term!r}: "
                "the cursor holds the last row's value of each ordering field."
            )
        name = term.removeprefix("-")
        if lookups.LOOKUP_SEP in name:
            raise FieldError(
                f"paginate() orders by fields of {model.__name__} itself, not "
                f"{name!r} across a relationship.",
                model=model,
                name=name,
            )
        if name == "pk" and len(mapper.primary_key) == 1:
            name = by_column[mapper.primary_key[0]]
        prop = mapper.column_attrs.get(name)
        if prop is None:
            lookups.field_column(model, name, "paginate()")  # FieldError if unknown
            raise FieldError(
                f"paginate() orders by columns of {model.__name__}, and {name!r} is "
                "not one (an annotation or a relationship).",
                model=model,
                name=name,
            )
        column = prop.columns[0]
        attribute = prop.key
        if column.nullable and not column.primary_key:
            raise FieldError(
                f"paginate() cannot order by {model.__name__}.{name}: the column is "
                "nullable, and a cursor cannot place a row whose value is NULL. Order "
                "by non-null columns (or filter the NULLs out and order by another "
                "field).",
                model=model,
                name=name,
            )
        native_enum = isinstance(column.type, Enum) and column.type.native_enum
        if native_enum and backend.enum_sorts_unlike_it_compares:
            # ORDER BY sorts a MySQL ENUM by declaration order, but comparing it
            # with a value compares text: the cursor would skip rows.
            raise FieldError(
                f"paginate() cannot order by {model.__name__}.{name} on MySQL/MariaDB: "
                "an ENUM column sorts by declaration order but compares as text, "
                "so a cursor would skip rows. Order by another column (or store "
                "the enum as a string: Enum(..., native_enum=False)).",
                model=model,
                name=name,
            )
        key = Key(attribute, getattr(model, attribute), term.startswith("-"))
        if all(k.attribute != attribute for k in found):
            found.append(key)
    for pk_column in mapper.primary_key:
        attribute = by_column[pk_column]
        if all(k.attribute != attribute for k in found):
            found.append(Key(attribute, getattr(model, attribute), False))
    return found


@dataclass(frozen=True, slots=True)
class Plan:
    """How to fetch one page: the QuerySet's ORDER BY terms and extra WHERE,
    then :meth:`page` of the ``size + 1`` rows fetched."""

    ordering: list[Key]
    where: tuple[ColumnElement[bool], ...]
    size: int

    @property
    def order(self) -> tuple[str, ...]:
        return tuple(k.term for k in self.ordering)

    def page(self, rows: list[Any]) -> Page[Any]:
        items = rows[: self.size]
        more = len(rows) > self.size
        return Page(items, encode(self.ordering, items[-1]) if more else None)


def plan(
    model: type[Any],
    order: Sequence[Any],
    backend: Backend,
    cursor: str | None,
    size: int,
) -> Plan:
    """The plan of the page of *model* rows after *cursor* under *order*."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ValueError(f"paginate() size must be a positive integer, not {size!r}.")
    ordering = keys(model, order, backend=backend)
    where = (
        () if cursor is None else (after(ordering, decode(ordering, cursor, model)),)
    )
    return Plan(ordering, where, size)


def after(ordering: Sequence[Key], values: Sequence[Any]) -> ColumnElement[bool]:
    """The rows that come after a row with *values* in *ordering*."""
    if all(k.descending == ordering[0].descending for k in ordering):
        left = tuple_(*(k.column for k in ordering))
        right = tuple_(*values)
        if len(ordering) == 1:
            left, right = ordering[0].column, values[0]
        return left < right if ordering[0].descending else left > right
    alternatives: list[ColumnElement[bool]] = []
    for index, key in enumerate(ordering):
        equal = [k.column == v for k, v in zip(ordering[:index], values, strict=False)]
        beyond = (
            key.column < values[index] if key.descending else key.column > values[index]
        )
        alternatives.append(and_(*equal, beyond))
    return or_(false(), *alternatives)


# -- the cursor ---------------------------------------------------------------------


def _seconds(raw: str) -> dt.timedelta:
    return dt.timedelta(seconds=float(raw))


def _bytes(raw: str) -> bytes:
    return base64.urlsafe_b64decode(raw.encode("ascii"))


_TAGS: dict[str, Callable[[str], Any]] = {
    "dt": dt.datetime.fromisoformat,
    "d": dt.date.fromisoformat,
    "t": dt.time.fromisoformat,
    "td": _seconds,
    "dec": Decimal,
    "uuid": uuid.UUID,
    "b": _bytes,
    "e": str,
}


def _dump(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"d": value.isoformat()}
    if isinstance(value, dt.time):
        return {"t": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"td": repr(value.total_seconds())}
    if isinstance(value, Decimal):
        return {"dec": str(value)}
    if isinstance(value, uuid.UUID):
        return {"uuid": str(value)}
    if isinstance(value, bytes):
        return {"b": base64.urlsafe_b64encode(value).decode("ascii")}
    if isinstance(value, enum.Enum):
        return {"e": value.name}  # SQLAlchemy's Enum binds by name
    raise TypeError(
        f"paginate() cannot put a {type(value).__name__} value in a cursor; order by "
        "columns of plain types (numbers, strings, dates, decimals, UUIDs)."
    )


def _load(value: Any) -> Any:
    if isinstance(value, dict):
        tagged = cast(dict[str, str], value)
        ((tag, raw),) = tagged.items()  # ValueError unless exactly one
        return _TAGS[tag](raw)  # KeyError for an unknown tag
    return value


def encode(ordering: Sequence[Key], row: Any) -> str:
    """The cursor of the page after *row* (a model instance)."""
    document = {
        "o": [k.term for k in ordering],
        "v": [_dump(getattr(row, k.attribute)) for k in ordering],
    }
    raw = json.dumps(document, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode(ordering: Sequence[Key], cursor: str, model: type[Any]) -> list[Any]:
    """The last row's values held by *cursor*, checked against *ordering*."""
    if not isinstance(cursor, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(f"paginate(after=...) takes a cursor string, not {cursor!r}")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        document = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        terms, raw_values = document["o"], document["v"]
        values = [_load(v) for v in raw_values]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError) as exc:
        raise ValueError(
            f"paginate(after={cursor[:40]!r}): not a cursor of a {model.__name__} "
            "page (pass the .next of the page before, unchanged)."
        ) from exc
    expected = [k.term for k in ordering]
    if terms != expected or len(values) != len(ordering):
        raise ValueError(
            f"paginate(after=...): the cursor was made for {model.__name__} pages "
            f"ordered by {terms!r}, and this QuerySet is ordered by {expected!r}."
        )
    return values

"""ValuesQuerySet: what ``values()`` and ``values_list()`` return.

As in Django it is a lazy QuerySet of rows as dicts (``values()``), tuples,
named tuples (``values_list(named=True)``) or bare values (``flat=True``):
awaiting it runs the query (``await qs.values("name")`` is a list, as it has
always been), ``async for`` streams it, and it chains (``filter()``,
``exclude()``, ``order_by()``, ``distinct()``, slices, ``count()``,
``exists()``, ``first()``). Given as a lookup value (``id__in=...values("x")``)
or to ``Subquery()`` / ``Exists()`` it is a subquery of the same statement:
no round trip.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import AsyncIterator, Generator, Sequence
from typing import Any, Generic, Literal, Self, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from . import _rows, lookups
from ._query import Query
from ._routing import Target, read, resolve
from ._subqueries import correlated
from .expressions import Combinable, Conditional, OrderBy, Q

RowT = TypeVar("RowT")

#: How a row is handed out.
Kind = Literal["dict", "tuple", "named", "flat"]


def kind_of(fields: Sequence[str], *, flat: bool, named: bool) -> Kind:
    """How ``values_list(*fields, flat=, named=)`` hands rows out."""
    if flat and named:
        raise TypeError("'flat' and 'named' can't be used together.")
    if flat and len(fields) != 1:
        raise TypeError(
            "'flat' is not valid when values_list is called with more than one "
            f"field (got {len(fields)})."
        )
    return "flat" if flat else ("named" if named else "tuple")


class ValuesQuerySet(Generic[RowT]):
    """A lazy query of *names* of *model*'s rows, handed out as *kind*."""

    __slots__ = ("_kind", "_names", "_query", "_target", "model")

    def __init__(
        self,
        model: type[Any],
        query: Query,
        target: Target | None,
        fields: Sequence[str],
        kind: Kind,
    ) -> None:
        mapper = lookups.mapper_of(model)
        names = fields or (
            *mapper.column_attrs.keys(),
            *(query.annotation_columns() if kind == "dict" else ()),
        )
        what = "values()" if kind == "dict" else "values_list()"
        query.columns_statement(names, what)  # FieldError now, not at await
        self.model = model
        self._query = query
        self._target = target
        self._names = tuple(names)
        self._kind: Kind = kind

    def __repr__(self) -> str:
        return f"<ValuesQuerySet of {self.model.__name__}: {', '.join(self._names)}>"

    def __bool__(self) -> bool:
        raise TypeError(
            "A QuerySet has no truth value without a query: use `await qs.exists()`."
        )

    def _with(self, query: Query) -> Self:
        clone = type(self).__new__(type(self))
        clone.model = self.model
        clone._query = query
        clone._target = self._target
        clone._names = self._names
        clone._kind = self._kind
        return clone

    # -- builders ---------------------------------------------------------------

    def filter(self, *args: Q | Conditional, **lookup: Any) -> Self:
        return self._with(self._query.filter(args, lookup))

    def exclude(self, *args: Q | Conditional, **lookup: Any) -> Self:
        return self._with(self._query.exclude(args, lookup))

    def order_by(self, *fields: str | Combinable | OrderBy) -> Self:
        return self._with(self._query.order_by(fields))

    def reverse(self) -> Self:
        return self._with(self._query.reverse())

    def distinct(self) -> Self:
        """Without duplicate rows of these fields (``SELECT DISTINCT``)."""
        return self._with(self._query.replace(distinct=True))

    def __getitem__(self, key: slice) -> Self:
        if not isinstance(key, slice):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise _rows.not_a_slice(key)
        return self._with(self._query.sliced_by(key))

    @property
    def statement(self) -> Select[Any]:
        """The SQLAlchemy ``Select`` of these columns (the escape hatch)."""
        return self._query.columns_statement(self._names, "values()")

    # -- inside another query ---------------------------------------------------

    def as_subquery(self) -> Select[Any]:
        """``field__in=qs.values("x")``: the one column, as a subquery."""
        if len(self._names) != 1:
            raise TypeError(
                "Cannot use multi-field values as a filter value: "
                f"{self!r} selects {len(self._names)} fields."
            )
        return self.statement

    def correlated_statement(self, outer: type[Any], what: str) -> Select[Any]:
        """This query inside *outer*'s (``Exists()`` / ``Subquery()``)."""
        if what != "Exists()" and len(self._names) != 1:
            raise TypeError(
                f"{what} needs a QuerySet of one field, such as "
                f"values('{self._names[0]}'); {self!r} selects {len(self._names)}."
            )
        names = None if what == "Exists()" else self._names
        return correlated(self._query, names, outer, what)

    # -- terminal coroutines ----------------------------------------------------

    def _resolve(self) -> Target:
        return _rows.supported(self._query, resolve(self.model, self._target))

    def __await__(self) -> Generator[Any, None, list[RowT]]:
        return self._fetch().__await__()

    def __aiter__(self) -> AsyncIterator[RowT]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[RowT]:
        for row in await self._fetch():
            yield row

    async def _fetch(self) -> list[RowT]:
        if self._query.empty:
            return []
        stmt = self.statement

        async def work(session: AsyncSession) -> Sequence[Sequence[Any]]:
            found: Sequence[Sequence[Any]] = (await session.execute(stmt)).all()
            return found

        rows = await read(self._resolve(), work)
        rows = _rows.annotated_rows(self._query, self._names, rows)
        return self._shape(rows)

    def _shape(self, rows: Sequence[Sequence[Any]]) -> list[Any]:
        names = self._names
        if self._kind == "dict":
            return [dict(zip(names, row, strict=True)) for row in rows]
        if self._kind == "flat":
            return [row[0] for row in rows]
        if self._kind == "named":
            row_type = namedtuple("Row", names)  # type: ignore[misc]
            return [row_type(*row) for row in rows]
        return [tuple(row) for row in rows]

    async def count(self) -> int:
        """The number of rows (of distinct rows after ``distinct()``)."""
        if self._query.empty:
            return 0
        stmt = select(func.count()).select_from(self.statement.subquery())
        value = await read(self._resolve(), lambda session: session.scalar(stmt))
        return int(value or 0)

    async def exists(self) -> bool:
        return bool(await self[:1]._fetch())

    async def first(self) -> RowT | None:
        """The first row in this query's order (by primary key if it has none)."""
        query = self._query if self._query.order else self._query.replace(order=("pk",))
        rows = await self._with(query)[:1]._fetch()
        return rows[0] if rows else None

    async def last(self) -> RowT | None:
        rows = await self.reverse()[:1]._fetch()
        return rows[0] if rows else None

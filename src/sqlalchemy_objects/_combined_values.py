"""``values()`` QuerySets combined: ``union()``, ``intersection()``,
``difference()`` across models, as Django's
``Author.objects.values_list("name").union(Book.objects.values_list("title"))``.

Each part is its own ``values()`` / ``values_list()`` statement (its filters,
order and slice kept in a derived table, so every backend accepts it); the
parts must select the same number of columns, which are matched by position.
The rows are handed out as the first part hands out its rows (dicts with its
names, tuples, named tuples, bare values), and the whole can be ordered by the
first part's names, sliced, counted and tested with ``exists()``, as Django
allows; the other builders raise ``NotSupportedError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Sequence
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ._compound import SQL, Kind
from ._query import window
from ._routing import read, resolve
from .exceptions import FieldError, NotSupportedError

if TYPE_CHECKING:
    from ._values import ValuesQuerySet

RowT = TypeVar("RowT")


class Rows(Generic[RowT]):
    """``await qs`` for the list of rows, ``async for row in qs`` over them:
    what ``values()``-like QuerySets share (:meth:`_fetch` gets the rows)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, list[RowT]]:
        return self._fetch().__await__()

    def __aiter__(self) -> AsyncIterator[RowT]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[RowT]:
        for row in await self._fetch():
            yield row

    async def _fetch(self) -> list[RowT]:
        raise NotImplementedError  # pragma: no cover


class CombinedValues(Rows[RowT]):
    """The rows of several ``values()`` QuerySets, combined by *kind*."""

    __slots__ = ("_all", "_kind", "_limit", "_offset", "_order", "_parts")

    def __init__(
        self, kind: Kind, parts: Sequence[ValuesQuerySet[Any]], all_rows: bool
    ) -> None:
        first = parts[0]
        width = len(first.names)
        for part in parts[1:]:
            if not hasattr(part, "names"):
                raise TypeError(
                    f"{kind}() of values() QuerySets takes values() / values_list() "
                    f"QuerySets, not {part!r}"
                )
            if len(part.names) != width:
                raise TypeError(
                    f"{kind}(): every part must select {width} columns, as "
                    f"{first!r} does; {part!r} selects {len(part.names)}."
                )
        self._kind: Kind = kind
        self._parts = tuple(parts)
        self._all = all_rows
        self._order: tuple[str, ...] = ()
        self._limit: int | None = None
        self._offset = 0

    def __repr__(self) -> str:
        return f"<{self._kind} of {len(self._parts)} values() QuerySets>"

    def _with(self, **changes: Any) -> Self:
        clone = type(self).__new__(type(self))
        for name in self.__slots__:
            setattr(clone, name, changes.get(name, getattr(self, name)))
        return clone

    # -- builders ---------------------------------------------------------------

    def order_by(self, *fields: str) -> Self:
        """Order by the first part's names (``"-name"`` descending)."""
        names = self._parts[0].names
        for field in fields:
            if not isinstance(field, str) or field.removeprefix("-") not in names:  # pyright: ignore[reportUnnecessaryIsInstance]
                raise FieldError(
                    f"ORDER BY term {field!r} does not match any column in the result "
                    f"set; order a combined QuerySet by {', '.join(names)}.",
                    name=str(field),
                    valid=names,
                )
        return self._with(_order=tuple(fields))

    def __getitem__(self, key: slice) -> Self:
        if not isinstance(key, slice):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError("A combined QuerySet takes slices (qs[:10]).")
        offset, limit = window(self._offset, self._limit, key)
        return self._with(_offset=offset, _limit=limit)

    def union(self, *others: Any, all: bool = False) -> CombinedValues[RowT]:
        return CombinedValues("union", (*self._as_parts(), *others), all)

    def intersection(self, *others: Any) -> CombinedValues[RowT]:
        return CombinedValues("intersection", (*self._as_parts(), *others), False)

    def difference(self, *others: Any) -> CombinedValues[RowT]:
        return CombinedValues("difference", (*self._as_parts(), *others), False)

    def _as_parts(self) -> tuple[Any, ...]:
        return (self,)  # a part of its own: a derived table in the next

    def shape(self, rows: Sequence[Sequence[Any]]) -> list[Any]:
        return self._parts[0].shape(rows)

    def __getattr__(self, name: str) -> Any:
        if name in (
            "filter",
            "exclude",
            "annotate",
            "distinct",
            "values",
            "values_list",
        ):
            raise NotSupportedError(
                f"Calling {name}() after union(), intersection() or difference() is "
                "not supported (Django allows slicing, order_by(), count() and "
                "exists() there)."
            )
        raise AttributeError(name)

    # -- the statement --------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return self._parts[0].names

    @property
    def statement(self) -> Select[Any]:
        """The compound SELECT (the escape hatch)."""
        parts = [select(*part.statement.subquery().c) for part in self._parts]
        compound = SQL[(self._kind, self._all)](*parts).subquery()
        columns = list(compound.c)
        names = self.names
        stmt = select(*(c.label(n) for c, n in zip(columns, names, strict=True)))
        for field in self._order:
            column = columns[names.index(field.removeprefix("-"))]
            stmt = stmt.order_by(
                column.desc() if field.startswith("-") else column.asc()
            )
        if self._limit is not None:
            stmt = stmt.limit(self._limit)
        if self._offset:
            stmt = stmt.offset(self._offset)
        return stmt

    # -- terminal coroutines --------------------------------------------------------

    @property
    def model(self) -> type[Any]:
        return self._parts[0].model

    @property
    def target(self) -> Any:
        return self._parts[0].target

    def _target(self) -> Any:
        return resolve(self.model, self.target)

    async def _fetch(self) -> list[RowT]:
        stmt = self.statement

        async def work(session: AsyncSession) -> Sequence[Sequence[Any]]:
            found: Sequence[Sequence[Any]] = (await session.execute(stmt)).all()
            return found

        rows = await read(self._target(), work)
        return self.shape(rows)

    async def count(self) -> int:
        stmt = select(func.count()).select_from(self.statement.subquery())
        value = await read(self._target(), lambda session: session.scalar(stmt))
        return int(value or 0)

    async def exists(self) -> bool:
        return bool(await self[:1]._fetch())

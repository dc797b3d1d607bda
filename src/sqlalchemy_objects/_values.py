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
from collections.abc import Sequence
from typing import Any, Literal, Self, TypeVar

from sqlalchemy import Select, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.util import ClauseAdapter

from . import _rows, lookups
from ._combined_values import CombinedValues, Rows
from ._joins import Grouping
from ._query import Query, flip
from ._routing import Target, read, resolve
from ._subqueries import correlate, correlated
from .exceptions import FieldError
from .expressions import Aggregate, Combinable, Conditional, OrderBy, Q

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


class ValuesQuerySet(Rows[RowT]):
    """A lazy query of *names* of *model*'s rows, handed out as *kind*."""

    __slots__ = ("_grouping", "_kind", "_names", "_query", "_target", "model")

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
            *(name for name, *_ in query.annotations if kind == "dict"),
        )
        what = "values()" if kind == "dict" else "values_list()"
        query.columns_statement(names, what)  # FieldError now, not at await
        self.model = model
        self._query = query
        self._target = target
        self._names = tuple(names)
        self._kind: Kind = kind
        #: annotate() after values(): Django's GROUP BY (see :mod:`._joins`)
        self._grouping: Grouping | None = None

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
        clone._grouping = self._grouping
        return clone

    def _grouped(self, grouping: Grouping, names: tuple[str, ...]) -> Self:
        clone = self._with(self._query)
        clone._grouping = grouping
        clone._names = names
        clone.statement  # FieldError now, not at await  # noqa: B018
        return clone

    # -- builders ---------------------------------------------------------------

    # -- combined -------------------------------------------------------------

    def union(
        self, *others: ValuesQuerySet[Any], all: bool = False
    ) -> CombinedValues[RowT]:
        """The rows of this and of *others*, of any models (``UNION``;
        ``all=True`` keeps duplicates); see :mod:`._combined_values`."""
        return CombinedValues("union", (self, *others), all)

    def intersection(self, *others: ValuesQuerySet[Any]) -> CombinedValues[RowT]:
        return CombinedValues("intersection", (self, *others), False)

    def difference(self, *others: ValuesQuerySet[Any]) -> CombinedValues[RowT]:
        return CombinedValues("difference", (self, *others), False)

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the columns this QuerySet selects, in order."""
        return self._names

    @property
    def target(self) -> Target | None:
        return self._target

    def annotate(self, *args: Aggregate, **kwargs: Aggregate | Combinable) -> Self:
        """Django's GROUP BY: ``values("author").annotate(n=Count("id"))`` is
        one row per distinct ``author``, with the number of rows in it. The
        names can be filtered on (HAVING: ``n__gt=1``) and ordered by."""
        self._query.refuse_if_sliced("annotate")
        self._query.refuse_if_combined("annotate()")
        named = named_annotations(args, kwargs)
        known = lookups.mapper_of(self.model).attrs
        for name in named:
            if name in self._names or name in known or name == "pk":
                raise ValueError(
                    f"The annotation {name!r} conflicts with a field on the model "
                    f"{self.model.__name__}."
                )
        pairs = tuple(named.items())
        if self._grouping is None:
            grouping = Grouping(self._names, pairs, len(self._query.through))
        else:
            grouping = self._grouping.replace(
                annotations=(*self._grouping.annotations, *pairs)
            )
        return self._grouped(grouping, (*self._names, *named))

    def values(self, *fields: str) -> ValuesQuerySet[dict[str, Any]]:
        """These rows as dicts of *fields*; after ``annotate()``, of the
        grouped fields and the aggregates (the groups stay as they were)."""
        return self._reshaped(fields, "dict")

    def values_list(
        self, *fields: str, flat: bool = False, named: bool = False
    ) -> ValuesQuerySet[Any]:
        """As :meth:`values`, as tuples (``flat``/``named`` as ever)."""
        return self._reshaped(fields, kind_of(fields, flat=flat, named=named))

    def _reshaped(self, fields: tuple[str, ...], kind: Kind) -> ValuesQuerySet[Any]:
        if self._grouping is None:
            return ValuesQuerySet(self.model, self._query, self._target, fields, kind)
        known = (*self._grouping.fields, *self._grouping.names)
        for name in fields:
            if name not in known:
                raise FieldError(
                    f"Cannot select {name!r} after values(...).annotate(...) on "
                    f"{self.model.__name__}. Choices are: {', '.join(known)}.",
                    model=self.model,
                    name=name,
                    valid=known,
                )
        clone: ValuesQuerySet[Any] = self._grouped(self._grouping, fields or known)
        clone._kind = kind
        return clone

    def filter(self, *args: Q | Conditional, **lookup: Any) -> Self:
        return self._narrowed(args, lookup, negated=False)

    def exclude(self, *args: Q | Conditional, **lookup: Any) -> Self:
        return self._narrowed(args, lookup, negated=True)

    def _narrowed(
        self,
        args: tuple[Q | Conditional, ...],
        lookup: dict[str, Any],
        *,
        negated: bool,
    ) -> Self:
        narrow = self._query.exclude if negated else self._query.filter
        if self._grouping is None:
            return self._with(narrow(args, lookup))
        on_aggregates, rest = self._grouping.split(lookup)
        clone = self._with(narrow(args, rest) if args or rest else self._query)
        if on_aggregates:
            self._query.refuse_if_sliced("filter")
            having = (*self._grouping.having, (tuple(on_aggregates.items()), negated))
            return clone._grouped(self._grouping.replace(having=having), self._names)
        return clone

    def order_by(self, *fields: str | Combinable | OrderBy) -> Self:
        if self._grouping is None:
            return self._with(self._query.order_by(fields))
        self._query.refuse_if_sliced("reorder")
        terms = tuple(f.asc() if isinstance(f, Combinable) else f for f in fields)
        return self._grouped(self._grouping.replace(order=terms), self._names)

    def reverse(self) -> Self:
        if self._grouping is None:
            return self._with(self._query.reverse())
        flipped = tuple(flip(term) for term in self._group_order())
        return self._grouped(self._grouping.replace(order=flipped), self._names)

    def _group_order(self) -> tuple[str | OrderBy, ...]:
        """A grouped query's order: its own, or its fields' (not the key's)."""
        assert self._grouping is not None
        given = self._grouping.order
        if given is None:
            given = self._query.order
        return given or self._grouping.fields

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
        if self._grouping is not None:
            return self._grouping.statement(self._query, self._names, "values()")
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
        if self._grouping is not None:
            return self._grouped_inside(outer, what)
        if what != "Exists()" and len(self._names) != 1:
            raise TypeError(
                f"{what} needs a QuerySet of one field, such as "
                f"values('{self._names[0]}'); {self!r} selects {len(self._names)}."
            )
        names = None if what == "Exists()" else self._names
        return correlated(self._query, names, outer, what)

    def _grouped_inside(self, outer: type[Any], what: str) -> Select[Any]:
        """values(...).annotate(...) inside *outer*'s query: Django's
        ``Subquery(qs.values("author").annotate(n=Count("id")).values("n"))``,
        grouped without a derived table, on an alias of the model."""
        assert self._grouping is not None
        if what != "Exists()" and len(self._names) != 1:
            raise TypeError(
                f"{what} needs one column; pick it with .values('name') after "
                f"annotate(): {self!r} selects {len(self._names)}."
            )
        stmt = self._grouping.statement(self._query, self._names, what, flat=True)
        alias = aliased(self.model)
        adapted: Select[Any] = ClauseAdapter(inspect(alias).selectable).traverse(stmt)
        return correlate(adapted, outer)

    # -- terminal coroutines ----------------------------------------------------

    def _resolve(self) -> Target:
        return _rows.supported(self._query, resolve(self.model, self._target))

    async def _fetch(self) -> list[RowT]:
        if self._query.empty:
            return []
        stmt = self.statement

        async def work(session: AsyncSession) -> Sequence[Sequence[Any]]:
            found: Sequence[Sequence[Any]] = (await session.execute(stmt)).all()
            return found

        rows = await read(self._resolve(), work)
        rows = _rows.annotated_rows(self._query, self._names, rows)
        if self._grouping is not None:
            rows = self._converted(rows)
        return self.shape(rows)

    def _converted(self, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """Each aggregate's value as Django gives it (``Count`` an int, ...)."""
        assert self._grouping is not None
        read_from = self._grouping.read_from(self.model)
        at = {i: read_from[n] for i, n in enumerate(self._names) if n in read_from}
        return [
            tuple(
                at[i][0].convert_annotation(v, at[i][1]) if i in at else v
                for i, v in enumerate(row)
            )
            for row in rows
        ]

    def shape(self, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """*rows* handed out as this QuerySet hands out its rows."""
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
        # Django's count() drops the order (and a to-many order's extra rows)
        counted = self if self._query.sliced else self.order_by()
        stmt = select(func.count()).select_from(counted.statement.subquery())
        value = await read(self._resolve(), lambda session: session.scalar(stmt))
        return int(value or 0)

    async def exists(self) -> bool:
        return bool(await self[:1]._fetch())

    async def first(self) -> RowT | None:
        """The first row in this query's order (by primary key if it has none)."""
        if self._grouping is not None:
            ordered = self._grouped(
                self._grouping.replace(order=self._group_order()), self._names
            )
            rows = await ordered[:1]._fetch()
            return rows[0] if rows else None
        query = self._query if self._query.order else self._query.replace(order=("pk",))
        rows = await self._with(query)[:1]._fetch()
        return rows[0] if rows else None

    async def last(self) -> RowT | None:
        rows = await self.reverse()[:1]._fetch()
        return rows[0] if rows else None


def named_annotations(
    args: tuple[Aggregate, ...], kwargs: dict[str, Aggregate | Combinable]
) -> dict[str, Aggregate | Combinable]:
    """``annotate(*args, **kwargs)``'s names: positional aggregates named as
    Django names them (``books__count``)."""
    named: dict[str, Aggregate | Combinable] = {}
    for positional in args:
        if not isinstance(positional, Aggregate):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(
                f"Complex annotations require an alias: annotate(name={positional!r})"
            )
        named[positional.default_alias] = positional
    for name, value in kwargs.items():
        if name in named:
            raise ValueError(f"The annotation {name!r} is given twice.")
        named[name] = value
    return named

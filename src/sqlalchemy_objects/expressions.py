"""``Q`` objects and aggregates (``Count``, ``Sum``, ``Avg``, ``Min``, ``Max``).

``Q(age__gte=18) | ~Q(username__startswith="bot")`` combines lookups with
``&``, ``|`` and ``~`` as in Django. Nothing is resolved until a QuerySet uses
the object, so one ``Q`` can serve several models that share field names.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar, Final

from sqlalchemy import ColumnElement, and_, distinct, func, or_, true

from . import lookups

AND: Final = "AND"
OR: Final = "OR"


def negate(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """Django's negation: rows where *condition* is false **or unknown** (NULL).

    ``NOT (nickname = 'x')`` drops rows whose nickname is NULL; Django's
    ``exclude(nickname="x")`` keeps them, and so does ``(...) IS NOT TRUE``.
    """
    return condition.is_not(true())


class Q:
    """A condition built from lookups, combinable with ``&``, ``|`` and ``~``."""

    __slots__ = ("children", "connector", "negated")

    def __init__(self, *args: Q, **lookup: Any) -> None:
        for arg in args:
            if not isinstance(arg, Q):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise TypeError(
                    f"Q() takes Q objects and field lookups, not {type(arg).__name__}"
                )
        self.children: tuple[Q | tuple[str, Any], ...] = (
            *args,
            *sorted(lookup.items()),
        )
        self.connector: str = AND
        self.negated: bool = False

    @classmethod
    def _node(cls, children: tuple[Q | tuple[str, Any], ...], connector: str) -> Q:
        node = cls()
        node.children = children
        node.connector = connector
        return node

    def _combine(self, other: object, connector: str) -> Q:
        if not isinstance(other, Q):
            raise TypeError(f"Cannot combine a Q object with {other!r}")
        if not other.children:
            return self
        if not self.children:
            return other
        return self._node((self, other), connector)

    def __and__(self, other: Q) -> Q:
        return self._combine(other, AND)

    def __or__(self, other: Q) -> Q:
        return self._combine(other, OR)

    def __invert__(self) -> Q:
        node = self._node(self.children, self.connector)
        node.negated = not self.negated
        return node

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Q):
            return NotImplemented
        return (self.children, self.connector, self.negated) == (
            other.children,
            other.connector,
            other.negated,
        )

    def __hash__(self) -> int:
        return hash((self.connector, self.negated, len(self.children)))

    def __repr__(self) -> str:
        inner = f" {self.connector} ".join(
            repr(c) if isinstance(c, Q) else f"{c[0]}={c[1]!r}" for c in self.children
        )
        return f"<Q: {'NOT ' if self.negated else ''}({inner})>"

    def resolve(self, model: type[Any]) -> ColumnElement[bool] | None:
        """Return the SQL condition on *model*, or None for an empty ``Q()``.

        Raises FieldError for an unknown field or lookup, before any SQL.
        """
        clauses: list[ColumnElement[bool]] = []
        for child in self.children:
            if isinstance(child, Q):
                clause = child.resolve(model)
            else:
                clause = lookups.build_where(model, {child[0]: child[1]})
            if clause is not None:
                clauses.append(clause)
        if not clauses:
            return None
        combined = (
            clauses[0]
            if len(clauses) == 1
            else (and_(*clauses) if self.connector == AND else or_(*clauses))
        )
        return negate(combined) if self.negated else combined


class Aggregate:
    """An aggregate over one field, for :meth:`QuerySet.aggregate`."""

    function: ClassVar[str] = ""

    __slots__ = ("distinct", "field")

    def __init__(self, field: str, *, distinct: bool = False) -> None:
        if not isinstance(field, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(
                f"{type(self).__name__}() takes a field name, not {field!r}"
            )
        self.field = field
        self.distinct = distinct

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.field!r})"

    @property
    def default_alias(self) -> str:
        """Django's key for a positional aggregate: ``"age__avg"``."""
        if self.field == "*":
            raise TypeError(
                f"{self!r} needs a keyword: aggregate(total={type(self).__name__}('*'))"
            )
        return f"{self.field}__{self.function.lower()}"

    def column(self, model: type[Any]) -> Any:
        """Return *model*'s column attribute this aggregate reads (None for ``*``)."""
        return lookups.column_of(model, self.field, f"{type(self).__name__}()")

    def apply(self, operand: ColumnElement[Any] | None) -> ColumnElement[Any]:
        """Return the SQL aggregate of *operand* (the column, or None for ``*``)."""
        if operand is None:
            raise TypeError(
                f"{type(self).__name__}('*') is not supported; use Count('*')"
            )
        target = distinct(operand) if self.distinct else operand
        return getattr(func, self.function.lower())(target)  # type: ignore[no-any-return]

    def convert(self, value: Any, model: type[Any]) -> Any:
        """Turn the driver's value into what Django returns."""
        return value


class Count(Aggregate):
    """The number of non-NULL values (``Count("*")``: the number of rows)."""

    function = "COUNT"

    def column(self, model: type[Any]) -> Any:
        return None if self.field == "*" else super().column(model)

    def apply(self, operand: ColumnElement[Any] | None) -> ColumnElement[Any]:
        return func.count() if operand is None else super().apply(operand)

    def convert(self, value: Any, model: type[Any]) -> Any:
        return int(value or 0)


class Sum(Aggregate):
    """The sum of the values, or None when there are none."""

    function = "SUM"

    def convert(self, value: Any, model: type[Any]) -> Any:
        # MySQL returns DECIMAL for SUM(integer); Django returns an int there.
        if isinstance(value, Decimal):
            column = self.column(model)
            try:
                if column.type.python_type is int:
                    return int(value)
            except NotImplementedError:  # pragma: no cover - exotic column types
                pass
        return value


class Avg(Aggregate):
    """The mean of the values as a float, or None when there are none."""

    function = "AVG"

    def convert(self, value: Any, model: type[Any]) -> Any:
        return None if value is None else float(value)


class Min(Aggregate):
    """The smallest value, or None when there are none."""

    function = "MIN"


class Max(Aggregate):
    """The largest value, or None when there are none."""

    function = "MAX"

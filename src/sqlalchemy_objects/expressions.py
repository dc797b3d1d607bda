"""``Q`` objects, ``F()`` expressions and aggregates (``Count``, ``Sum``, ``Avg``,
``Min``, ``Max``).

``Q(age__gte=18) | ~Q(username__startswith="bot")`` combines lookups with
``&``, ``|`` and ``~`` as in Django. Nothing is resolved until a QuerySet uses
the object, so one ``Q`` can serve several models that share field names.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Final

from sqlalchemy import (
    ColumnElement,
    Float,
    Numeric,
    and_,
    case,
    distinct,
    func,
    inspect,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.orm import aliased
from sqlalchemy.sql.util import ClauseAdapter

from . import lookups

AND: Final = "AND"
OR: Final = "OR"


def negate(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """Django's negation: rows where *condition* is false **or unknown** (NULL).

    ``NOT (nickname = 'x')`` drops rows whose nickname is NULL; Django's
    ``exclude(nickname="x")`` keeps them, and so does ``(...) IS NOT TRUE``.
    """
    return condition.is_not(true())


class Conditional:
    """A boolean expression that ``filter()`` takes next to ``Q`` objects
    (``Exists(...)``), combinable with them by ``&`` and ``|``."""

    __slots__ = ()

    def condition(self, model: type[Any]) -> ColumnElement[bool]:
        raise NotImplementedError  # pragma: no cover

    def __and__(self, other: Q | Conditional) -> Q:
        return Q(self) & (other if isinstance(other, Q) else Q(other))

    def __or__(self, other: Q | Conditional) -> Q:
        return Q(self) | (other if isinstance(other, Q) else Q(other))

    def __rand__(self, other: Q) -> Q:
        return Q(other, self)

    def __ror__(self, other: Q) -> Q:
        return other | Q(self)


class Q:
    """A condition built from lookups, combinable with ``&``, ``|`` and ``~``."""

    __slots__ = ("children", "connector", "negated")

    def __init__(self, *args: Q | Conditional, **lookup: Any) -> None:
        for arg in args:
            if not isinstance(arg, Q | Conditional):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise TypeError(
                    "Q() takes Q objects, Exists() and field lookups, not "
                    f"{type(arg).__name__}"
                )
        self.children: tuple[Q | Conditional | tuple[str, Any], ...] = (
            *args,
            *sorted(lookup.items()),
        )
        self.connector: str = AND
        self.negated: bool = False

    @classmethod
    def _node(
        cls, children: tuple[Q | Conditional | tuple[str, Any], ...], connector: str
    ) -> Q:
        node = cls()
        node.children = children
        node.connector = connector
        return node

    def _combine(self, other: object, connector: str) -> Q:
        if isinstance(other, Conditional):
            other = Q(other)
        if not isinstance(other, Q):
            raise TypeError(f"Cannot combine a Q object with {other!r}")
        if not other.children:
            return self
        if not self.children:
            return other
        return self._node((self, other), connector)

    def __and__(self, other: Q | Conditional) -> Q:
        return self._combine(other, AND)

    def __or__(self, other: Q | Conditional) -> Q:
        return self._combine(other, OR)

    def _and_parts(self) -> tuple[list[tuple[str, Any]], tuple[Q | Conditional, ...]]:
        """The lookups of this AND node and of the plain AND nodes in it, and
        the other nodes (OR, negated)."""
        return and_parts(self)

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
            f"{c[0]}={c[1]!r}" if isinstance(c, tuple) else repr(c)
            for c in self.children
        )
        return f"<Q: {'NOT ' if self.negated else ''}({inner})>"

    def resolve(
        self, model: type[Any], *, same_row: bool = False
    ) -> ColumnElement[bool] | None:
        """Return the SQL condition on *model*, or None for an empty ``Q()``.

        With *same_row* (``filter()``), the lookups ANDed together, here and
        in the plain ``Q`` objects ANDed in, that go through one multi-valued
        relationship must match one related row together (Django's rule); a
        negated ``Q`` is resolved as ``exclude()`` resolves, each lookup on its
        own. Raises FieldError for an unknown field or lookup, before any SQL.
        """
        same_row = same_row and not self.negated
        clauses: list[ColumnElement[bool]] = []
        if same_row and self.connector == AND:
            pairs, others = self._and_parts()
            together = lookups.build_where(model, pairs, same_row=True)
            if together is not None:
                clauses.append(together)
            children: tuple[Q | Conditional | tuple[str, Any], ...] = others
        else:
            children = self.children
        for child in children:
            if isinstance(child, Q):
                clause = child.resolve(model, same_row=same_row)
            elif isinstance(child, Conditional):
                clause = child.condition(model)
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


def and_parts(
    node: Q,
) -> tuple[list[tuple[str, Any]], tuple[Q | Conditional, ...]]:
    """The lookups ANDed together in *node* (and the plain AND nodes in it),
    and its other children (OR and negated nodes, ``Exists()``)."""
    pairs: list[tuple[str, Any]] = []
    others: list[Q | Conditional] = []
    for child in node.children:
        if isinstance(child, tuple):
            pairs.append(child)
        elif isinstance(child, Conditional):
            others.append(child)
        elif child.connector == AND and not child.negated:
            inner_pairs, inner_others = and_parts(child)
            pairs.extend(inner_pairs)
            others.extend(inner_others)
        elif child.children:
            others.append(child)
    return pairs, tuple(others)


# -- F() ----------------------------------------------------------------------


def resolve_operand(model: type[Any], value: Any) -> Any:
    """*value* as SQL on *model*: an :class:`F` (or arithmetic on one) becomes
    its column expression; anything else stays a plain value."""
    resolve = getattr(value, "resolve_expression", None)
    return value if resolve is None else resolve(model)


class Combinable:
    """Arithmetic between fields and values: ``F("views") + 1``."""

    __slots__ = ()

    def _combine(self, op: str, other: Any, reverse: bool) -> CombinedExpression:
        return (
            CombinedExpression(other, op, self)
            if reverse
            else CombinedExpression(self, op, other)
        )

    def __add__(self, other: Any) -> CombinedExpression:
        return self._combine("+", other, False)

    def __radd__(self, other: Any) -> CombinedExpression:
        return self._combine("+", other, True)

    def __sub__(self, other: Any) -> CombinedExpression:
        return self._combine("-", other, False)

    def __rsub__(self, other: Any) -> CombinedExpression:
        return self._combine("-", other, True)

    def __mul__(self, other: Any) -> CombinedExpression:
        return self._combine("*", other, False)

    def __rmul__(self, other: Any) -> CombinedExpression:
        return self._combine("*", other, True)

    def __truediv__(self, other: Any) -> CombinedExpression:
        return self._combine("/", other, False)

    def __rtruediv__(self, other: Any) -> CombinedExpression:
        return self._combine("/", other, True)

    def __mod__(self, other: Any) -> CombinedExpression:
        return self._combine("%", other, False)

    def __neg__(self) -> CombinedExpression:
        return CombinedExpression(0, "-", self)

    def asc(
        self, *, nulls_first: bool | None = None, nulls_last: bool | None = None
    ) -> OrderBy:
        return OrderBy(
            self, descending=False, nulls_first=nulls_first, nulls_last=nulls_last
        )

    def desc(
        self, *, nulls_first: bool | None = None, nulls_last: bool | None = None
    ) -> OrderBy:
        return OrderBy(
            self, descending=True, nulls_first=nulls_first, nulls_last=nulls_last
        )

    def resolve_expression(self, model: type[Any]) -> ColumnElement[Any]:
        raise NotImplementedError  # pragma: no cover

    # -- annotate() ---------------------------------------------------------------

    def annotation(self, model: type[Any]) -> tuple[ColumnElement[Any], Any]:
        """``annotate(total=F("price") * F("qty"))``: the expression, per row."""
        return self.resolve_expression(model), model

    def convert_annotation(self, value: Any, model: type[Any]) -> Any:
        return value


class F(Combinable):
    """A field of the row itself, in SQL: ``update(views=F("views") + 1)`` is
    one atomic ``UPDATE ... SET views = views + 1``; ``filter(a__gt=F("b"))``
    compares two columns of one row."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if not isinstance(name, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"F() takes a field name, not {name!r}")
        self.name = name

    def __repr__(self) -> str:
        return f"F({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, F) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("F", self.name))

    def resolve_expression(self, model: type[Any]) -> ColumnElement[Any]:
        # A column of the row, or one through many-to-one steps (author__name).
        column: ColumnElement[Any] = lookups.field_column(model, self.name, "F()")
        return column


_OPERATORS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": lambda a, b: a / b,
    "%": operator.mod,
}


class CombinedExpression(Combinable):
    """``lhs <op> rhs``, where either side is an F, a combination or a value."""

    __slots__ = ("lhs", "op", "rhs")

    def __init__(self, lhs: Any, op: str, rhs: Any) -> None:
        self.lhs = lhs
        self.op = op
        self.rhs = rhs

    def __repr__(self) -> str:
        return f"({self.lhs!r} {self.op} {self.rhs!r})"

    def resolve_expression(self, model: type[Any]) -> ColumnElement[Any]:
        lhs = resolve_operand(model, self.lhs)
        rhs = resolve_operand(model, self.rhs)
        if not isinstance(lhs, ColumnElement) and not hasattr(
            lhs, "__clause_element__"
        ):
            lhs = literal(lhs)
        combined: ColumnElement[Any] = _OPERATORS[self.op](lhs, rhs)
        return combined


class OrderBy:
    """``F("x").desc(nulls_last=True)``, for ``order_by()``."""

    __slots__ = ("descending", "expression", "nulls_first", "nulls_last")

    def __init__(
        self,
        expression: Combinable,
        *,
        descending: bool,
        nulls_first: bool | None = None,
        nulls_last: bool | None = None,
    ) -> None:
        if nulls_first and nulls_last:
            raise ValueError("nulls_first and nulls_last are mutually exclusive.")
        self.expression = expression
        self.descending = descending
        self.nulls_first = nulls_first
        self.nulls_last = nulls_last

    def __repr__(self) -> str:
        return f"OrderBy({self.expression!r}, descending={self.descending})"

    def reversed(self) -> OrderBy:
        """The opposite order, NULLs moved to the other end too (Django's
        ``reverse()``)."""
        return OrderBy(
            self.expression,
            descending=not self.descending,
            nulls_first=self.nulls_last,
            nulls_last=self.nulls_first,
        )

    def clauses(self, model: type[Any]) -> list[ColumnElement[Any]]:
        """The ORDER BY terms on *model*. NULLS FIRST / LAST is spelled as a
        leading ``CASE WHEN x IS NULL`` term, which every backend (MariaDB
        has no NULLS LAST) sorts the same way."""
        column = self.expression.resolve_expression(model)
        ordered = column.desc() if self.descending else column.asc()
        if not self.nulls_first and not self.nulls_last:
            return [ordered]
        null_rank = 0 if self.nulls_first else 1
        nulls: ColumnElement[Any] = case(
            (column.is_(None), null_rank), else_=1 - null_rank
        )
        return [nulls, ordered]


class Aggregate:
    """An aggregate over one field, for :meth:`QuerySet.aggregate`."""

    function: ClassVar[str] = ""

    __slots__ = ("distinct", "field", "filter")

    def __init__(
        self, field: str, *, distinct: bool = False, filter: Q | None = None
    ) -> None:
        if not isinstance(field, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(
                f"{type(self).__name__}() takes a field name, not {field!r}"
            )
        if filter is not None and not isinstance(filter, Q):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(
                f"{type(self).__name__}(filter=...) takes a Q, not {filter!r}"
            )
        self.field = field
        self.distinct = distinct
        self.filter = filter

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

    # -- annotate() ---------------------------------------------------------------

    def annotation(
        self, model: type[Any], restrict: Sequence[tuple[str, Any]] = ()
    ) -> tuple[ColumnElement[Any], Any]:
        """The per-row value of ``annotate(name=self)`` on *model*, and the
        model whose column it reads (for :meth:`convert`). *restrict*: the
        lookups (``books__rating__gt``) of an earlier ``filter()`` through the
        same relationship, whose related rows alone are aggregated (Django's
        "order of annotate() and filter()").

        Over a relationship (``Count("books")``, ``Sum("books__pages")``) it is
        a correlated subquery over the related rows: one aggregate per row, and
        several annotations over different relationships never multiply each
        other's rows (Django's JOINs do). Over a column of the row itself it is
        that row's own value, as Django's GROUP BY the row gives.
        """
        name = type(self).__name__
        parts = self.field.split(lookups.LOOKUP_SEP)
        mapper = lookups.mapper_of(model)
        prop = mapper.relationships.get(parts[0])
        if prop is None:
            if self.filter is not None:
                raise NotImplementedError(
                    f"{name}(filter=...) is supported over relationships only."
                )
            return self._own_value(model), model
        if len(parts) > 2:
            raise NotImplementedError(
                f"{name}({self.field!r}): one relationship step, then a field."
            )
        target = prop.mapper.class_
        related = aliased(target)
        owner = aliased(model)
        if len(parts) == 2:
            operand: Any = getattr(
                related, lookups.column_of(target, parts[1], f"{name}()").key
            )
        else:
            pk = lookups.mapper_of(target).primary_key[0]
            operand = getattr(
                related, lookups.mapper_of(target).get_property_by_column(pk).key
            )
        stmt = (
            select(self.apply(operand))
            .select_from(owner)
            .join(getattr(owner, parts[0]).of_type(related))
            .where(
                and_(
                    *(
                        getattr(owner, mapper.get_property_by_column(c).key)
                        == getattr(model, mapper.get_property_by_column(c).key)
                        for c in mapper.primary_key
                    )
                )
            )
        )
        if self.filter is not None or restrict:
            stmt = stmt.where(self.related_filter(parts[0], target, related, restrict))
        return stmt.scalar_subquery(), target

    def _own_value(self, model: type[Any]) -> ColumnElement[Any]:
        column = self.column(model)
        value: ColumnElement[Any] = column
        return value

    def related_filter(
        self,
        path: str,
        target: type[Any],
        related: Any,
        restrict: Sequence[tuple[str, Any]] = (),
    ) -> Any:
        """``filter=Q(books__pages__gt=100)`` and *restrict*: the condition on
        the related row (*related*, an alias of *target*)."""
        prefix = f"{path}{lookups.LOOKUP_SEP}"
        pairs: list[tuple[str, Any]] = list(restrict)
        for child in () if self.filter is None else self.filter.children:
            assert self.filter is not None
            if (
                not isinstance(child, tuple)
                or self.filter.connector != AND
                or self.filter.negated
                or not child[0].startswith(prefix)
            ):
                raise NotImplementedError(
                    f"{type(self).__name__}(filter=...) takes a Q of lookups through "
                    f"{path!r} ({path}__field=...), ANDed together."
                )
            pairs.append(child)
        return related_condition(path, target, related, pairs)

    def convert_annotation(self, value: Any, model: type[Any]) -> Any:
        """The annotated value as Django gives it; *model* is the one whose
        column was read (the related model's, over a relationship)."""
        parts = self.field.split(lookups.LOOKUP_SEP)
        if len(parts) == 1 or isinstance(self, Count):
            return self.convert(value, model)
        return type(self)(parts[-1]).convert(value, model)


def related_condition(
    path: str, target: type[Any], related: Any, pairs: Sequence[tuple[str, Any]]
) -> Any:
    """The lookups *pairs* (``books__pages__gt``, through the relationship
    *path*), ANDed on one related row: *related*, an alias of *target*."""
    prefix = f"{path}{lookups.LOOKUP_SEP}"
    fields = lookups.mapper_of(target).attrs
    stripped: list[tuple[str, Any]] = []
    for key, value in pairs:
        rest = "pk" if key == path else key.removeprefix(prefix)
        if rest.split(lookups.LOOKUP_SEP)[0] not in (*fields.keys(), "pk"):
            rest = f"pk{lookups.LOOKUP_SEP}{rest}"  # books__in=[...], books__isnull
        stripped.append((rest, value))
    condition = lookups.build_where(target, stripped, same_row=True)
    return ClauseAdapter(inspect(related).selectable).traverse(condition)


class Count(Aggregate):
    """The number of non-NULL values (``Count("*")``: the number of rows)."""

    function = "COUNT"

    def column(self, model: type[Any]) -> Any:
        return None if self.field == "*" else super().column(model)

    def apply(self, operand: ColumnElement[Any] | None) -> ColumnElement[Any]:
        return func.count() if operand is None else super().apply(operand)

    def convert(self, value: Any, model: type[Any]) -> Any:
        return int(value or 0)

    def _own_value(self, model: type[Any]) -> ColumnElement[Any]:
        if self.field == "*":
            return literal(1)
        column = self.column(model)
        counted: ColumnElement[Any] = case((column.is_(None), 0), else_=1)
        return counted


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
    """The mean of the values, or None when there are none: a ``Decimal`` over
    a ``Numeric`` (Django's DecimalField) column, a float otherwise."""

    function = "AVG"

    def convert(self, value: Any, model: type[Any]) -> Any:
        if value is None:
            return None
        column_type = self.column(model).type
        if isinstance(column_type, Numeric) and not isinstance(column_type, Float):
            return value if isinstance(value, Decimal) else Decimal(str(value))
        return float(value)


class Min(Aggregate):
    """The smallest value, or None when there are none."""

    function = "MIN"


class Max(Aggregate):
    """The largest value, or None when there are none."""

    function = "MAX"

"""``OuterRef()``, ``Exists()`` and ``Subquery()``: one query inside another.

``Author.objects.filter(Exists(Book.objects.filter(author=OuterRef("pk"))))``
is one statement, ``... WHERE EXISTS (SELECT 1 FROM books AS books_1 WHERE
books_1.author_id = authors.id)``, as in Django.

The inner QuerySet is resolved when it is built, before anyone knows which
query it will sit in, so ``OuterRef("pk")`` becomes a placeholder
(:class:`OuterColumn`). When the outer query resolves the ``Exists`` or
``Subquery`` it builds the inner statement on an *alias* of the inner model
(so a model queried inside itself, ``Item`` in ``Item``, is never correlated
away) and swaps each placeholder for the outer model's column, which the outer
statement's FROM then correlates. Run on its own, a QuerySet holding a
placeholder raises ``ValueError`` instead of sending SQL that means nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import ColumnElement, Select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.type_api import NULLTYPE
from sqlalchemy.sql.visitors import InternalTraversal, iterate, replacement_traverse

from . import lookups
from .expressions import Combinable, Conditional, F

if TYPE_CHECKING:
    from ._query import Query


class OuterColumn(ColumnElement[Any]):
    """``OuterRef(name)`` inside the inner query, until the outer one is known."""

    __visit_name__ = "outer_column"
    inherit_cache = True
    _traverse_internals = (  # type: ignore[assignment]
        ("name", InternalTraversal.dp_string),
        ("depth", InternalTraversal.dp_plain_obj),
    )

    def __init__(self, name: str, depth: int = 1) -> None:
        self.name = name
        #: how many queries out the field is (OuterRef(OuterRef("pk")): 2)
        self.depth = depth
        self.type = NULLTYPE


@compiles(OuterColumn)
def _refuse(element: OuterColumn, compiler: Any, **kw: Any) -> str:
    raise ValueError(
        f"This queryset contains a reference to an outer query "
        f"(OuterRef({element.name!r})) and may only be used in a subquery: "
        "Exists(qs) or Subquery(qs)."
    )


class OuterRef(F):
    """A field of the *outer* query's row, for a QuerySet given to
    :class:`Exists` or :class:`Subquery`: ``filter(author=OuterRef("pk"))``;
    ``OuterRef(OuterRef("pk"))`` is the field of the query around that one."""

    __slots__ = ("depth",)

    def __init__(self, name: str | OuterRef) -> None:
        if isinstance(name, OuterRef):
            self.name: str = name.name
            self.depth: int = name.depth + 1
            return
        super().__init__(name)
        self.depth = 1

    def __repr__(self) -> str:
        inner = repr(self.name)
        for _ in range(self.depth):
            inner = f"OuterRef({inner})"
        return inner

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is OuterRef
            and other.name == self.name
            and other.depth == self.depth
        )

    def __hash__(self) -> int:
        return hash(("OuterRef", self.name, self.depth))

    def resolve_expression(self, model: type[Any]) -> ColumnElement[Any]:
        return OuterColumn(self.name, self.depth)


class _Correlatable(Protocol):
    """What Exists/Subquery take: a QuerySet, or a values() QuerySet."""

    model: type[Any]

    def correlated_statement(self, outer: type[Any], what: str) -> Select[Any]: ...


def correlate(
    stmt: Select[Any], outer: type[Any], enclosing: tuple[Any, ...] = ()
) -> Select[Any]:
    """*stmt* with every :class:`OuterColumn` replaced by *outer*'s field
    (one of a deeper query's, ``OuterRef(OuterRef(...))``, one level nearer).
    A query nested in *stmt* that names *outer*'s field correlates *outer*
    and the FROMs around it (*enclosing*) by name: automatic correlation
    reaches one level up only."""

    def swap(element: Any, **kw: Any) -> Any:
        if isinstance(element, OuterColumn):
            if element.depth > 1:
                return OuterColumn(element.name, element.depth - 1)
            return lookups.field_column(outer, element.name, "OuterRef()")
        nested_select = getattr(element, "is_select", False) and hasattr(
            element, "correlate"
        )
        if nested_select and element is not stmt and _names_outer(element):
            # the FROMs as given (compiling now would meet the placeholders)
            around = (
                *enclosing,
                *stmt.columns_clause_froms,
                *getattr(stmt, "_from_obj", ()),
            )
            nested: Select[Any] = correlate(element, outer, around)
            return nested.correlate(outer, *around)
        return None

    return cast("Select[Any]", replacement_traverse(stmt, {}, swap))


def _names_outer(stmt: Select[Any]) -> bool:
    return any(
        isinstance(element, OuterColumn) and element.depth == 1
        for element in iterate(stmt)
    )


def correlated(
    query: Query, names: Sequence[str] | None, outer: type[Any], what: str
) -> Select[Any]:
    """*query* inside *outer*'s: ``SELECT 1`` (*names* None, for EXISTS) or
    the fields *names*, on an alias of its model, OuterRefs swapped in."""
    columns = None if names is None else query.value_columns(names, what)
    return correlate(query.aliased_statement(columns), outer)


class Subquery(Combinable):
    """The one value a QuerySet selects, per outer row: ``annotate(newest=
    Subquery(Book.objects.filter(author=OuterRef("pk")).order_by("-id")
    .values("title")[:1]))``. The QuerySet must select one column (a
    ``values()`` / ``values_list()`` of one field; a plain QuerySet gives its
    primary key)."""

    __slots__ = ("queryset",)

    def __init__(self, queryset: _Correlatable) -> None:
        if not hasattr(queryset, "correlated_statement"):
            raise TypeError(
                f"{type(self).__name__}() takes a QuerySet, not {queryset!r}"
            )
        self.queryset = queryset

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.queryset!r})"

    def resolve_expression(self, model: type[Any]) -> ColumnElement[Any]:
        stmt = self.queryset.correlated_statement(model, type(self).__name__ + "()")
        value: ColumnElement[Any] = stmt.scalar_subquery()
        return value


class Exists(Subquery, Conditional):
    """Whether the QuerySet finds a row, per outer row: in ``filter()`` /
    ``exclude()`` (``~Exists(...)`` negates; ``&`` / ``|`` combine it with
    ``Q`` objects) and as an annotation (a bool)."""

    __slots__ = ("negated",)

    def __init__(self, queryset: _Correlatable, *, negated: bool = False) -> None:
        super().__init__(queryset)
        self.negated = negated

    def __invert__(self) -> Exists:
        return Exists(self.queryset, negated=not self.negated)

    def resolve_expression(self, model: type[Any]) -> ColumnElement[Any]:
        found: ColumnElement[bool] = self.queryset.correlated_statement(
            model, "Exists()"
        ).exists()
        return ~found if self.negated else found

    def condition(self, model: type[Any]) -> ColumnElement[bool]:
        return self.resolve_expression(model)

    def convert_annotation(self, value: Any, model: type[Any]) -> Any:
        return None if value is None else bool(value)

"""``union()``, ``intersection()`` and ``difference()``: one compound SELECT.

``qs1.union(qs2)`` is ``SELECT ... FROM (SELECT ... UNION SELECT ...)``: each
part keeps its own WHERE (and its own ordering and slice, wrapped in a derived
table where a backend refuses ORDER BY / LIMIT inside a compound part, as
SQLite does); the whole can then be ordered, sliced, counted, tested with
``exists()`` and asked for ``values()``, as Django allows. The rows are
objects of the first QuerySet's model; every part must query that model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import sqlalchemy.orm
from sqlalchemy import (
    Select,
    except_,
    except_all,
    intersect,
    intersect_all,
    select,
    union,
    union_all,
)
from sqlalchemy.sql.util import ClauseAdapter

from . import exceptions, lookups

if TYPE_CHECKING:
    from ._query import Query

#: The three combinators, Django's names.
Kind = Literal["union", "intersection", "difference"]

SQL: Final = {
    ("union", False): union,
    ("union", True): union_all,
    ("intersection", False): intersect,
    ("intersection", True): intersect_all,
    ("difference", False): except_,
    ("difference", True): except_all,
}


class Combined:
    """What a combined Query is made of: the combinator, its parts, ALL."""

    __slots__ = ("all", "kind", "parts")

    def __init__(self, kind: Kind, parts: tuple[Query, ...], all_rows: bool) -> None:
        self.kind: Kind = kind
        self.parts = parts
        self.all = all_rows


def refuse(what: str) -> exceptions.NotSupportedError:
    return exceptions.NotSupportedError(
        f"Calling QuerySet.{what} after union(), intersection() or difference() "
        "is not supported (Django allows slicing, order_by(), count(), exists() "
        "and values() there)."
    )


def combine(
    query: Query, kind: Kind, others: Sequence[Any], all_rows: bool = False
) -> Query:
    """*query* combined with the QuerySets *others*: a new Query, or *query*
    itself where the others change nothing. Empty parts (``none()``) count as
    Django counts them: nothing to add to a union or to take from a
    difference; an empty intersection."""
    queries: list[Query] = []
    for other in others:
        part = getattr(other, "_query", None)
        if part is None or getattr(other, "model", None) is not query.model:
            raise TypeError(
                f"{kind}() combines QuerySets of {query.model.__name__}, not {other!r}"
            )
        queries.append(part)
    if kind == "intersection" and any(q.empty for q in queries):
        return query.nothing()
    parts = [q for q in queries if not q.empty]
    if query.empty and kind != "union":
        return query  # nothing, less or intersected with anything
    base = query
    if query.empty and parts:
        base, parts = parts[0], parts[1:]
    if not parts and base is query:
        return query
    return base.combine(kind, parts, all_rows)


def _part(query: Query, columns: list[Any]) -> Select[Any]:
    stmt: Select[Any] = query.apply(select(*columns).select_from(query.model))
    if query.order or query.sliced:
        # ORDER BY / LIMIT inside a compound part: a derived table, everywhere.
        inner = stmt.subquery()
        return select(*inner.c)
    return stmt


def statement(
    query: Query, names: Sequence[str] | None, order: Sequence[Any]
) -> Select[Any]:
    """The SELECT of *query* (combined): its model's rows (*names* None) or
    the columns *names*, ordered by *order* (on the model's columns) and
    sliced as *query* says."""
    combined = query.combined
    assert combined is not None
    mapper = lookups.mapper_of(query.model)
    columns = [getattr(query.model, key) for key in mapper.column_attrs.keys()]  # noqa: SIM118
    sql = SQL[(combined.kind, combined.all)]
    compound = sql(*(_part(part, columns) for part in combined.parts)).subquery()
    adapter: Any = ClauseAdapter(compound)
    if names is None:
        entity: Any = sqlalchemy.orm.aliased(query.model, compound)
        stmt: Select[Any] = select(entity)
    else:
        wanted = [
            lookups.column_of(query.model, name, "values()").__clause_element__()
            for name in names
        ]
        labelled: list[Any] = [
            adapter.traverse(c).label(n) for c, n in zip(wanted, names, strict=True)
        ]
        stmt = select(*labelled)  # pyright: ignore[reportAssignmentType]
    if order:
        stmt = stmt.order_by(*(adapter.traverse(c) for c in order))
    if query.limit is not None:
        stmt = stmt.limit(query.limit)
    if query.offset:
        stmt = stmt.offset(query.offset)
    return stmt

"""Rows through to-many relationships, and Django's GROUP BY.

``values("books__title")`` gives a row per related row, as Django's does: a
LEFT OUTER JOIN along the path, so a row without related rows appears once,
with ``None``. Each path is joined once per statement, so
``values("books__title", "books__pages")`` reads both from the same book.

``values("country").annotate(n=Count("books"))`` is Django's GROUP BY: one row
per distinct value of the ``values()`` fields, each aggregate over the group's
rows (over the joined related rows for a relationship path). The statement is

    SELECT g0 AS country, count(a0) AS n
    FROM (SELECT <fields> AS g0, <operands> AS a0 FROM model LEFT JOIN ... WHERE ...)
    GROUP BY g0 HAVING ... ORDER BY ... LIMIT ...

so fields through many-to-one steps (correlated subqueries) group like
columns on every backend. Two aggregates over *different* to-many
relationships multiply each other's rows, exactly as Django's JOINs do; use
``distinct=True`` or a per-object ``annotate()`` (correlated subqueries, which
never multiply) there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, and_, case, literal, select
from sqlalchemy.orm import aliased

from . import lookups
from .exceptions import FieldError, NotSupportedError
from .expressions import (
    Aggregate,
    Combinable,
    Conditional,
    Count,
    F,
    OrderBy,
    Q,
    and_parts,
    negate,
    related_condition,
)

if TYPE_CHECKING:
    from ._query import Query

LOOKUP_SEP = lookups.LOOKUP_SEP

#: (lookups ANDed together, negated?) from one filter() / exclude() call
Having = tuple[tuple[tuple[str, Any], ...], bool]

#: (relationship, the lookups through it, or None) of one filter() call
Through = tuple[str, tuple[tuple[str, Any], ...] | None]


# -- which rows a filter() joined ----------------------------------------------


def crossed(model: type[Any], condition: Q) -> tuple[Through, ...]:
    """The to-many relationships one filter() call goes through (Django
    joins them, and later aggregates and values() read the joined rows):
    per relationship its lookups ANDed, or None where an OR or NOT also
    goes through it."""
    relationships = lookups.mapper_of(model).relationships
    many = {key for key, rel in relationships.items() if rel.uselist}
    if not many:
        return ()
    pairs, others = and_parts(condition)
    found: dict[str, list[tuple[str, Any]] | None] = {}
    for key, value in pairs:
        first = key.split(LOOKUP_SEP)[0]
        if first in many:
            through = found.setdefault(first, [])
            if through is not None:
                through.append((key, value))
    for other in others:
        for first in _mentioned(other) & many:
            found[first] = None
    return tuple(
        (rel, None if through is None else tuple(through))
        for rel, through in found.items()
    )


def _mentioned(node: Q | Conditional) -> set[str]:
    """The first names of the lookups in *node* and the Q objects in it."""
    if not isinstance(node, Q):
        return set()
    found: set[str] = set()
    for child in node.children:
        if isinstance(child, tuple):
            found.add(child[0].split(LOOKUP_SEP)[0])
        else:
            found |= _mentioned(child)
    return found


def restriction(
    query: Query, relationship: str, what: str
) -> tuple[tuple[str, Any], ...]:
    """The lookups through *relationship* of the one earlier filter() call
    of *query* that went through it (nothing if none did): Django's rule that
    an aggregate or ``values()`` through it reads only the rows it matched."""
    found = [through for rel, through in query.through if rel == relationship]
    if not found:
        return ()
    if len(found) > 1 or found[0] is None:
        how = "several filter() calls" if found[1:] else "a filter() with | or ~"
        raise NotSupportedError(
            f"{what} on {query.model.__name__} after {how} through "
            f"{relationship!r}: Django's answer there depends on how it joins "
            f"the rows. Give the conditions on {relationship!r} in one filter() "
            "call, ANDed, or as the aggregate's filter=Q(...)."
        )
    return found[0]


def crosses_to_many(model: type[Any], name: str) -> bool:
    """Whether the field path *name* steps through a to-many relationship."""
    if not isinstance(name, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        return False  # the caller's own check names the mistake
    current = model
    for part in name.split(LOOKUP_SEP)[:-1]:
        prop = lookups.mapper_of(current).relationships.get(part)
        if prop is None:
            return False
        if prop.uselist:
            return True
        current = prop.mapper.class_
    last = lookups.mapper_of(current).relationships.get(name.split(LOOKUP_SEP)[-1])
    return last is not None and bool(last.uselist)


def _pk_key(model: type[Any]) -> str:
    mapper = lookups.mapper_of(model)
    return mapper.get_property_by_column(mapper.primary_key[0]).key


class Joins:
    """LEFT OUTER JOINs from *query*'s model along relationship paths, each
    path once. A to-many relationship that a filter() call went through is
    joined to the rows that call matched (Django reuses that call's JOIN):
    ``filter(books__rating__gt=3).values("books__title")`` lists only those
    books, ``...annotate(n=Count("books"))`` counts only them."""

    __slots__ = ("_joined", "_what", "model", "query")

    def __init__(self, query: Query | None, model: type[Any], what: str = "") -> None:
        self.query = query
        self.model = model
        self._what = what
        self._joined: dict[str, tuple[Any, Any]] = {}  # path: (alias, ON clause)

    def column(self, name: str, what: str) -> tuple[Any, type[Any]]:
        """The column at *name* (``books__title``; ``books`` is the related
        primary key), joining what the path crosses, and the model it is on."""
        parts = name.split(LOOKUP_SEP)
        owner: Any = self.model
        current = self.model
        for i, part in enumerate(parts):
            prop = lookups.mapper_of(current).relationships.get(part)
            if prop is None:
                rest = LOOKUP_SEP.join(parts[i:])
                column = lookups.column_of(current, rest, what)
                return getattr(owner, column.key), current
            owner = self.join(LOOKUP_SEP.join(parts[: i + 1]), owner, prop)
            current = prop.mapper.class_
        return getattr(owner, _pk_key(current)), current

    def join(self, path: str, owner: Any, prop: Any) -> Any:
        found = self._joined.get(path)
        if found is None:
            target = prop.mapper.class_
            alias = aliased(target)
            onclause = getattr(owner, prop.key).of_type(alias)
            restrict = (
                restriction(self.query, path, self._what)
                if self.query is not None and LOOKUP_SEP not in path
                else ()
            )
            if restrict:
                condition = related_condition(path, target, alias, restrict)
                onclause = onclause.and_(condition)
            found = (alias, onclause)
            self._joined[path] = found
        return found[0]

    def alias(self, path: str) -> Any:
        return self._joined[path][0]

    def apply(self, stmt: Any) -> Select[Any]:
        joined: Select[Any] = stmt
        for _, onclause in self._joined.values():
            joined = joined.outerjoin(onclause)
        return joined


def value_column(query: Query, joins: Joins, name: str, what: str) -> Any:
    """The column of ``values(name)``: an annotation, a field through joins
    (to-many paths) or a field through many-to-one steps."""
    annotated = query.annotation_columns()
    if name in annotated:
        return annotated[name]
    if crosses_to_many(query.model, name):
        return joins.column(name, what)[0]
    return lookups.field_column(query.model, name, what)


# -- values(...).annotate(...) -------------------------------------------------


def _operand(agg: Aggregate, model: type[Any], joins: Joins) -> tuple[Any, type[Any]]:
    """What *agg* aggregates, per joined row, and the model it reads."""
    name = type(agg).__name__
    if agg.field == "*":
        if not isinstance(agg, Count):
            raise TypeError(f"{name}('*') is not supported; use Count('*')")
        operand: Any = literal(1)
        read_from = model
    else:
        operand, read_from = joins.column(agg.field, f"{name}()")
    if agg.filter is None:
        return operand, read_from
    first = agg.field.split(LOOKUP_SEP)[0]
    prop = lookups.mapper_of(model).relationships.get(first)
    if prop is None:
        condition = agg.filter.resolve(model, same_row=True)
    else:
        condition = agg.related_filter(first, prop.mapper.class_, joins.alias(first))
    return case((condition, operand)) if condition is not None else operand, read_from


def _aggregated(agg: Aggregate, operand: Any) -> ColumnElement[Any]:
    if agg.field == "*" and agg.filter is None:
        return agg.apply(None)  # COUNT(*)
    return agg.apply(operand)


class Grouping:
    """``values(*fields).annotate(...)``: the aggregates, HAVING and order."""

    __slots__ = ("annotations", "fields", "having", "order", "upto")

    def __init__(
        self,
        fields: tuple[str, ...],
        annotations: tuple[tuple[str, Aggregate | Combinable], ...],
        upto: int,
        having: tuple[Having, ...] = (),
        order: tuple[str | OrderBy, ...] | None = None,
    ) -> None:
        #: the fields of values(): one row per distinct combination
        self.fields = fields
        self.annotations = annotations
        #: how many of the query's filter() calls came before annotate()
        self.upto = upto
        self.having = having
        #: order_by() after annotate(); None: the query's own order
        self.order = order

    def replace(self, **changes: Any) -> Grouping:
        return Grouping(
            self.fields,
            changes.get("annotations", self.annotations),
            self.upto,
            changes.get("having", self.having),
            changes.get("order", self.order),
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.annotations)

    def read_from(self, model: type[Any]) -> dict[str, tuple[Aggregate, type[Any]]]:
        """Each aggregate's name: the aggregate and the model its column is on."""
        found: dict[str, tuple[Aggregate, type[Any]]] = {}
        for name, value in self.annotations:
            if isinstance(value, Aggregate):
                found[name] = (value, _operand(value, model, Joins(None, model))[1])
        return found

    def split(self, lookup: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """*lookup* as (conditions on the aggregates: HAVING, the rest: WHERE)."""
        mine = set(self.names)
        having = {k: v for k, v in lookup.items() if k.split(LOOKUP_SEP)[0] in mine}
        rest = {k: v for k, v in lookup.items() if k not in having}
        return having, rest

    def statement(
        self, query: Query, selected: Sequence[str], what: str, *, flat: bool = False
    ) -> Select[Any]:
        """The grouped SELECT of *selected* (of the fields and the
        aggregates; see the module). *flat*: grouped by the expressions
        themselves, without the derived table (inside another query, where
        an outer reference may not reach into a derived table)."""
        if query.distinct_fields:
            raise NotSupportedError(
                "distinct(*fields) is not supported with annotate() after values()."
            )
        model = query.model
        # the filter() calls before annotate() are the ones its JOINs reuse
        joins = Joins(query.replace(through=query.through[: self.upto]), model, what)
        inner_columns: list[Any] = []
        visible: dict[str, Any] = {}  # output name: grouped inner label

        def grouped(column: Any) -> str:
            label = f"g{len(inner_columns)}"
            inner_columns.append(column.label(label))
            return label

        for name in self.fields:
            visible[name] = ("group", grouped(value_column(query, joins, name, what)))
        aggregates: dict[str, tuple[Aggregate, str]] = {}
        for name, value in self.annotations:
            if isinstance(value, Aggregate):
                operand, _ = _operand(value, model, joins)
                label = f"a{len(inner_columns)}"
                inner_columns.append(operand.label(label))
                aggregates[name] = (value, label)
                visible[name] = ("aggregate", label)
            else:  # an expression per row: Django adds it to the GROUP BY
                visible[name] = ("group", grouped(value.annotation(model)[0]))
        order = self.order if self.order is not None else query.order
        hidden: list[tuple[str, bool]] = []  # order terms not selected
        for term in order:
            key, descending = _order_key(term)
            if key not in visible:
                label = grouped(value_column(query, joins, key, "order_by()"))
                hidden.append((label, descending))
        source = joins.apply(select(*inner_columns).select_from(model))
        if query.where:
            source = source.where(and_(*query.where))
        inner: Any = None if flat else source.subquery()
        expressions = {c.key: c.element for c in inner_columns}

        def ref(label: str) -> Any:
            return expressions[label] if inner is None else inner.c[label]

        def output(name: str) -> ColumnElement[Any]:
            kind, label = visible[name]
            if kind == "group":
                column: ColumnElement[Any] = ref(label)
                return column
            return _aggregated(aggregates[name][0], ref(label))

        group_labels = [c.key for c in inner_columns if c.key.startswith("g")]
        outputs = [output(n).label(n) for n in selected]
        if inner is None:
            stmt = source.with_only_columns(*outputs)
        else:
            stmt = select(*outputs).select_from(inner)
        stmt = stmt.group_by(*(ref(label) for label in group_labels))
        for lookup_items, negated in self.having:
            condition = and_(
                *(_condition(model, output, k, v) for k, v in lookup_items)
            )
            stmt = stmt.having(negate(condition) if negated else condition)
        hidden_iter = iter(hidden)
        for term in order:
            key, descending = _order_key(term)
            column = output(key) if key in visible else ref(next(hidden_iter)[0])
            stmt = stmt.order_by(column.desc() if descending else column.asc())
        if query.distinct:
            stmt = stmt.distinct()
        if query.limit is not None:
            stmt = stmt.limit(query.limit)
        if query.offset:
            stmt = stmt.offset(query.offset)
        return stmt


def _condition(
    model: type[Any], output: Any, key: str, value: Any
) -> ColumnElement[bool]:
    name, _, op = key.partition(LOOKUP_SEP)
    op = op or "exact"
    if op not in lookups.OPERATORS:
        raise FieldError(
            f"Unsupported lookup {op!r} on the annotation {name!r}.",
            model=model,
            name=key,
            valid=sorted(lookups.OPERATORS),
        )
    if isinstance(value, Combinable):
        raise NotSupportedError(
            f"An F() expression as the value of {key!r} is not supported on "
            "an aggregate of values(...).annotate(...)."
        )
    return lookups.OPERATORS[op](output(name), value)


def _order_key(term: str | OrderBy) -> tuple[str, bool]:
    if isinstance(term, str):
        return term.removeprefix("-"), term.startswith("-")
    expression = term.expression
    if not isinstance(expression, F) or term.nulls_first or term.nulls_last:
        raise NotSupportedError(
            "order_by() after values(...).annotate(...) takes names "
            '("n", "-n") or F("n").asc()/.desc() without nulls_first/nulls_last.'
        )
    return expression.name, term.descending


# -- aggregate() ----------------------------------------------------------------


def aggregate_statement(
    query: Query, named: Mapping[str, Aggregate]
) -> tuple[Select[Any], list[Any]]:
    """``aggregate()``'s SELECT over the matching rows, and per aggregate a
    function turning the driver's value into Django's.

    Over fields of the model and through relationships (``Avg("books__pages")``:
    a LEFT OUTER JOIN, reusing an earlier filter()'s rows as Django does);
    over a slice, or over annotations (``Avg("n")`` of ``annotate(n=...)``),
    from a derived table of the rows themselves."""
    model = query.model
    annotated = query.annotation_columns()
    if query.sliced or any(agg.field in annotated for agg in named.values()):
        return _over_rows(query, named)
    joins = Joins(query, model, "aggregate()")
    columns: list[Any] = []
    converters: list[Any] = []
    for agg in named.values():
        operand, read_from = _operand(agg, model, joins)
        columns.append(_aggregated(agg, operand))
        converters.append(_converter(agg, read_from))
    stmt = joins.apply(select(*columns).select_from(model))
    if query.where:
        stmt = stmt.where(and_(*query.where))
    return stmt, converters


def _over_rows(
    query: Query, named: Mapping[str, Aggregate]
) -> tuple[Select[Any], list[Any]]:
    model = query.model
    annotated = query.annotation_columns()
    kinds = {name: agg for name, agg, _, _ in (*query.annotations, *query.aliases)}
    inner_columns: dict[str, Any] = {}
    for agg in named.values():
        if agg.field == "*" or agg.field in inner_columns:
            continue
        if agg.field in annotated:
            inner_columns[agg.field] = annotated[agg.field]
        elif (
            agg.filter is not None
            or agg.field.split(LOOKUP_SEP)[0] in lookups.mapper_of(model).relationships
        ):
            raise NotSupportedError(
                f"aggregate({agg!r}) over a slice or beside annotations takes a "
                f"field or an annotation of {model.__name__}, without filter=."
            )
        else:
            inner_columns[agg.field] = agg.column(model)
    inner: Any = query.apply(
        select(
            *(column.label(f"c{i}") for i, column in enumerate(inner_columns.values()))
        ).select_from(model)
    ).subquery()
    labels = {name: f"c{i}" for i, name in enumerate(inner_columns)}
    columns = [
        agg.apply(None if agg.field == "*" else inner.c[labels[agg.field]])
        for agg in named.values()
    ]
    converters = [
        _annotation_converter(agg, kinds[agg.field])
        if agg.field in kinds
        else _converter(agg, model)
        for agg in named.values()
    ]
    stmt: Select[Any] = select(*columns).select_from(inner)
    return stmt, converters


def _converter(agg: Aggregate, read_from: type[Any]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        return agg.convert_annotation(value, read_from)

    return convert


def _annotation_converter(agg: Aggregate, of: Any) -> Callable[[Any], Any]:
    """An aggregate of an annotation: ``Avg`` a float, the others the
    annotation's own kind (MariaDB's DECIMAL sum of a count an int)."""

    def convert(value: Any) -> Any:
        if value is None:
            return None if not isinstance(agg, Count) else 0
        if isinstance(agg, Count):
            return int(value)
        if type(agg).__name__ == "Avg":
            return float(value)
        if isinstance(value, Decimal) and isinstance(of, Count):
            return int(value)
        return value

    return convert

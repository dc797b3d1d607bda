"""Lookup shapes: SELECTs built once per model and set of lookup keys.

A get_or_create hit should cost little more than the hand-written
``session.scalar(select(...))``. When every lookup key is an exact match on a
plain column (``name``, ``name__exact``, ``pk``), the WHERE clause depends only
on the model and the keys, not on the values: it is built once per *shape*
(model, keys) with one bind parameter per key, and each call supplies only the
values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, select
from sqlalchemy.orm import Mapper, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ClauseElement

from . import lookups

Shape = tuple[type[Any], frozenset[str]]


class ExactShape:
    """A lookup shape made only of exact matches on plain columns of the
    model's table: those columns, and its WHERE clause with one bind parameter
    per lookup key."""

    __slots__ = ("columns", "names", "where")

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        #: (lookup key, bind parameter name), in the order of *columns*
        self.names = [(key, f"p{i}") for i, (key, _) in enumerate(pairs)]
        self.columns = [column for _, column in pairs]
        self.where = [
            column == bindparam(param)
            for column, (_, param) in zip(self.columns, self.names, strict=True)
        ]

    def params(self, lookup: Mapping[str, Any]) -> dict[str, Any]:
        return {param: lookup[key] for key, param in self.names}


class Prepared:
    """A SELECT of every column of a model, its bind parameters, and the
    lookup shape it was prepared for (None: built for one call)."""

    __slots__ = ("params", "shape", "stmt")

    def __init__(
        self, stmt: Any, params: dict[str, Any], shape: Shape | None = None
    ) -> None:
        self.stmt = stmt
        self.params = params
        self.shape = shape


_exact_shapes: dict[Shape, ExactShape | None] = {}
_orm_prepared: dict[Shape, Any] = {}


def exact_shape(shape: Shape) -> ExactShape | None:
    """The lookup shape *shape* (model, lookup keys) if every key is an exact
    match (``name``, ``name__exact``, ``pk``) on a plain column of the model's
    table; None otherwise. Worked out once per shape."""
    if shape in _exact_shapes:
        return _exact_shapes[shape]
    model, keys = shape
    mapper: Mapper[Any] = lookups.mapper_of(model)
    table = mapper.local_table
    # {lookup key: attribute name}: "pk" and "name__exact" become names.
    names = {
        key: name
        for name, key in lookups.creation_values(model, {k: k for k in keys}).items()
    }
    pairs: list[tuple[str, Any]] = []
    for key in sorted(keys):
        attr = mapper.column_attrs.get(names.get(key, ""))
        column = (
            attr.columns[0] if attr is not None and len(attr.columns) == 1 else None
        )
        if column is None or getattr(column, "table", None) is not table:
            _exact_shapes[shape] = None
            return None
        pairs.append((key, column))
    found = _exact_shapes[shape] = ExactShape(pairs)
    return found


def bindable(lookup: Mapping[str, Any]) -> bool:
    """Whether every value of *lookup* is a plain value a bind parameter can
    carry: not None (``IS NULL``) and not a SQL expression."""
    return not any(
        value is None
        or isinstance(value, ClauseElement)
        or hasattr(value, "__clause_element__")
        for value in lookup.values()
    )


def orm_select(
    model: type[Any], lookup: Mapping[str, Any], limit: int
) -> tuple[Any, dict[str, Any]] | None:
    """``select(model)`` under *lookup*, built once per lookup shape, and its
    parameters; None unless every key is an exact match (``name``,
    ``name__exact``, ``pk``) on a plain column with a non-None value."""
    if not bindable(lookup):
        return None
    shape = (model, frozenset(lookup))
    exact = exact_shape(shape)
    if exact is None:
        return None
    stmt = _orm_prepared.get(shape)
    if stmt is None:
        stmt = _orm_prepared[shape] = select(model).where(*exact.where).limit(limit)
    return stmt, exact.params(lookup)


def columns(mapper: Mapper[Any]) -> list[Any]:
    """The table column of every column attribute of *mapper*, in order."""
    return [prop.columns[0] for prop in mapper.column_attrs]


def where_select(model: type[Any], where: tuple[ColumnElement[bool], ...]) -> Prepared:
    """The SELECT of every column of *model* under *where* (at most 2 rows)."""
    mapper: Mapper[Any] = lookups.mapper_of(model)
    return Prepared(select(*columns(mapper)).where(and_(*where)).limit(2), {})


def detached(mapper: Mapper[Any], row: Any, obj: Any = None) -> Any:
    """*obj* (or a new instance, made as an ORM load makes it: no ``__init__``)
    holding *row*'s column values, detached with its identity."""
    if obj is None:
        obj = mapper.class_manager.new_instance()
    for prop, value in zip(mapper.column_attrs, row, strict=True):
        set_committed_value(obj, prop.key, value)
    make_transient_to_detached(obj)
    return obj

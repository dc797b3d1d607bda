"""get_or_create's one-statement miss path (PostgreSQL, autocommit mode).

``INSERT ... ON CONFLICT (lookup columns) DO NOTHING RETURNING *`` on an
``AUTOCOMMIT`` connection replaces BEGIN, INSERT, COMMIT. It is used only where
its outcome cannot differ from the ORM path's:

* the lookup is exact matches on exactly the columns of one primary key or
  unique constraint (or unique index), so "the insert conflicted" means "a row
  matching the lookup exists", and the conflict target is always named: a
  clash on any other unique key still raises ``IntegrityError``;
* the mapper has a single table, no inheritance, no version counter and no
  ``before_insert`` / ``after_insert`` listeners, and the session has no flush
  listeners: a flush would run nothing that the INSERT skips;
* the object, built with the model's own constructor (so ``__init__`` and
  ``@validates`` run as usual), holds column values only;
* the lookup has no None value (a unique key does not stop NULLs repeating);
* every mapped column is a plain, undeferred column of the table, and nothing
  listens for instances being loaded, so a row turned into an object here is
  what an ORM query would have made of it.

Reads and the INSERT are Core statements on a bare connection, without an ORM
session. Objects come back in the state the ORM path leaves them in:
detached, every column loaded, relationships unloaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Table,
    UniqueConstraint,
    and_,
    bindparam,
    inspect,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Mapper, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from . import lookups

#: Session events that a flush would fire and a Core INSERT does not.
_FLUSH_EVENTS: Final = (
    "before_flush",
    "after_flush",
    "after_flush_postexec",
    "transient_to_pending",
    "pending_to_persistent",
    "before_attach",
    "after_attach",
)

_targets: dict[tuple[type[Any], frozenset[str]], tuple[str, ...] | None] = {}


def conflict_target(
    model: type[Any], lookup: Mapping[str, Any]
) -> tuple[str, ...] | None:
    """Return the column names of the key the lookup names exactly, or None when
    the one-statement path does not apply to this model and lookup."""
    if any(value is None for value in lookup.values()):
        return None
    keys = frozenset(lookup)
    cache_key = (model, keys)
    if cache_key not in _targets:
        _targets[cache_key] = _find_target(model, keys)
    target = _targets[cache_key]
    if target is not None:
        # Listeners may be added at any time: checked on every call.
        mapper = lookups.mapper_of(model)
        dispatch = mapper.dispatch
        if (
            dispatch.before_insert
            or dispatch.after_insert
            or mapper.class_manager.dispatch.load
            or mapper.class_manager.dispatch.refresh
        ):
            return None
    return target


def _find_target(model: type[Any], keys: frozenset[str]) -> tuple[str, ...] | None:
    mapper: Mapper[Any] = lookups.mapper_of(model)
    table: Any = mapper.local_table
    if (
        not isinstance(table, Table)
        or mapper.inherits is not None
        or mapper.polymorphic_on is not None
        or mapper.version_id_col is not None
    ):
        return None
    exact = lookups.creation_values(model, dict.fromkeys(keys))
    if len(exact) != len(keys):  # an operator lookup (age__gte=...) filters only
        return None
    for prop in mapper.column_attrs:
        if (
            len(prop.columns) != 1
            or getattr(prop.columns[0], "table", None) is not table
            or prop.deferred
        ):
            return None
    columns: set[str] = set()
    for name in exact:
        attr = mapper.column_attrs.get(name)
        if attr is None:
            return None
        column = attr.columns[0]
        if getattr(column, "table", None) is not table:
            return None
        columns.add(column.name)
    for candidate in _unique_keys(table):
        if candidate == columns:
            return tuple(sorted(columns))
    return None


def _unique_keys(table: Any) -> list[set[str]]:
    keys = [{c.name for c in table.primary_key.columns}]
    keys += [
        {c.name for c in constraint.columns}
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
    ]
    keys += [
        {c.name for c in index.columns}
        for index in table.indexes
        if index.unique and not index.dialect_options["postgresql"].get("where")
    ]
    keys += [{c.name} for c in table.columns if c.unique]
    return [k for k in keys if k]


class Progress:
    """Where a one-connection get_or_create is: ``writing`` while its INSERT is
    in flight, when a lost connection leaves the outcome unknown."""

    __slots__ = ("writing",)

    def __init__(self) -> None:
        self.writing = False


def has_flush_listeners(session_class: type[Any]) -> bool:
    """Whether sessions of *session_class* run listeners a flush would fire
    (asked of a throwaway instance: class-level dispatch cannot tell)."""
    dispatch = session_class().dispatch
    return any(getattr(dispatch, name) for name in _FLUSH_EVENTS)


def holds_columns_only(obj: Any) -> bool:
    """Whether the constructed object carries nothing but column values (its
    ``__init__`` set no relationship)."""
    state = inspect(obj)
    relationships = state.mapper.relationships
    return not any(key in relationships for key in state.dict)


def _columns(mapper: Mapper[Any]) -> list[Any]:
    return [prop.columns[0] for prop in mapper.column_attrs]


def _detached(mapper: Mapper[Any], row: Any, obj: Any = None) -> Any:
    """*obj* (or a new instance, made as an ORM load makes it: no ``__init__``)
    holding *row*'s column values, detached with its identity."""
    if obj is None:
        obj = mapper.class_manager.new_instance()
    for prop, value in zip(mapper.column_attrs, row, strict=True):
        set_committed_value(obj, prop.key, value)
    make_transient_to_detached(obj)
    return obj


#: A SELECT of every column, and its bind parameters.
Prepared = tuple[Any, dict[str, Any]]

_prepared: dict[
    tuple[type[Any], frozenset[str]], tuple[Any, list[tuple[str, str]]]
] = {}


def where_select(model: type[Any], where: tuple[ColumnElement[bool], ...]) -> Prepared:
    """The SELECT of every column of *model* under *where* (at most 2 rows)."""
    mapper: Mapper[Any] = lookups.mapper_of(model)
    return select(*_columns(mapper)).where(and_(*where)).limit(2), {}


def prepared_select(model: type[Any], lookup: Mapping[str, Any]) -> Prepared | None:
    """A SELECT built once per model and lookup shape, for a lookup shape that
    an earlier call proved valid and eligible; None otherwise."""
    keys = frozenset(lookup)
    if _targets.get((model, keys)) is None or any(
        value is None for value in lookup.values()
    ):
        return None
    entry = _prepared.get((model, keys))
    if entry is None:
        mapper: Mapper[Any] = lookups.mapper_of(model)
        # {lookup key: attribute name}: "pk" and "name__exact" become names.
        names = {
            key: name
            for name, key in lookups.creation_values(
                model, {k: k for k in keys}
            ).items()
        }
        params = [(key, f"p{i}") for i, key in enumerate(sorted(keys))]
        where = [
            mapper.column_attrs[names[key]].columns[0] == bindparam(param)
            for key, param in params
        ]
        entry = _prepared[(model, keys)] = (
            select(*_columns(mapper)).where(*where).limit(2),
            params,
        )
    stmt, params = entry
    return stmt, {param: lookup[key] for key, param in params}


async def select_one(
    executor: Any, model: type[Any], spec: Prepared
) -> tuple[bool, Any]:
    """Return ``(True, obj or None)``, or ``(False, None)`` if more than one row
    matched (the ORM path then reports it)."""
    stmt, params = spec
    rows = (await executor.execute(stmt, params)).all()
    if len(rows) > 1:
        return False, None
    mapper: Mapper[Any] = lookups.mapper_of(model)
    return True, (_detached(mapper, rows[0]) if rows else None)


async def insert_or_nothing(executor: Any, obj: Any, target: tuple[str, ...]) -> bool:
    """INSERT *obj* unless a row with the same *target* key exists. Return
    whether the row was inserted; *obj* is then detached with every column
    loaded. Return False (and leave *obj* alone) on a conflict."""
    state = inspect(obj)
    mapper: Mapper[Any] = state.mapper
    table: Any = mapper.local_table
    values = {
        prop.columns[0]: state.dict[prop.key]
        for prop in mapper.column_attrs
        if prop.key in state.dict
    }
    stmt: Any = (  # pyright: ignore[reportUnknownVariableType]
        pg_insert(table)
        .values(values)
        .on_conflict_do_nothing(index_elements=list(target))
        .returning(*_columns(mapper))
    )
    row: Any = (await executor.execute(stmt)).first()
    if row is None:
        return False
    _detached(mapper, row, obj)
    return True

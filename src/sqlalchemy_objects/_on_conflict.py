"""PostgreSQL's one-statement get_or_create: when it may run, and its statements.

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
* the lookup has no None value (a unique key does not stop NULLs repeating)
  and no SQL expression; the values to insert hold no SQL expression either,
  and None is left out where the column has a default, as a flush does;
* every mapped column is a plain, undeferred column of the table, and nothing
  listens for instances being loaded, so a row turned into an object here is
  what an ORM query would have made of it.

Reads and the INSERT are Core statements on a bare connection, without an ORM
session; statements prepared once go through the driver's cursor where
:mod:`._cursor` allows it. Objects come back in the state the ORM path leaves
them in: detached, every column loaded, relationships unloaded. The algorithm
that runs these statements is ``one_statement`` in :mod:`._get_or_create`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import Table, UniqueConstraint, bindparam, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.sql.elements import ClauseElement

from . import _cursor, lookups
from ._dialects import Backend, backend_named
from ._shapes import Prepared, Shape, bindable, columns, detached, exact_shape

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

_targets: dict[Shape, tuple[str, ...] | None] = {}
_prepared: dict[Shape, Any] = {}


def conflict_target(
    model: type[Any], lookup: Mapping[str, Any]
) -> tuple[str, ...] | None:
    """Return the column names of the key the lookup names exactly, or None when
    the one-statement path does not apply to this model and lookup."""
    if not bindable(lookup):
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
    for prop in mapper.column_attrs:
        if (
            len(prop.columns) != 1
            or getattr(prop.columns[0], "table", None) is not table
            or prop.deferred
        ):
            return None
    shape = exact_shape((model, keys))
    if shape is None:  # an operator lookup (age__gte=...), a relationship...
        return None
    names = {column.name for column in shape.columns}
    for candidate in _unique_keys(table):
        if candidate == names:
            return tuple(sorted(names))
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
        if index.unique and not lookups.is_partial(index)
    ]
    keys += [{c.name} for c in table.columns if c.unique]
    return [k for k in keys if k]


def prepared_select(model: type[Any], lookup: Mapping[str, Any]) -> Prepared | None:
    """A SELECT of every column built once per model and lookup shape, for a
    lookup shape that an earlier call proved valid and eligible for the
    one-statement path; None otherwise."""
    shape = (model, frozenset(lookup))
    if _targets.get(shape) is None or not bindable(lookup):
        return None
    exact = exact_shape(shape)
    assert exact is not None  # an eligible shape is exact matches on columns
    stmt = _prepared.get(shape)
    if stmt is None:
        mapper: Mapper[Any] = lookups.mapper_of(model)
        stmt = select(*columns(mapper)).where(*exact.where).limit(2)
        _prepared[shape] = stmt
    return Prepared(stmt, exact.params(lookup), shape)


def sessions_have_flush_listeners(
    maker: async_sessionmaker[AsyncSession] | None,
) -> bool:
    """Whether sessions of *maker* run listeners a flush would fire, which the
    one-statement INSERT would not (asked of a throwaway instance: class-level
    dispatch cannot tell)."""
    sync_class = (maker.kw.get("sync_session_class") if maker else None) or Session
    dispatch = sync_class().dispatch
    return any(getattr(dispatch, name) for name in _FLUSH_EVENTS)


def holds_columns_only(obj: Any) -> bool:
    """Whether the constructed object carries nothing but column values (its
    ``__init__`` set no relationship)."""
    state = inspect(obj)
    relationships = state.mapper.relationships
    return not any(key in relationships for key in state.dict)


def select_one(executor: Any, model: type[Any], spec: Prepared) -> tuple[bool, Any]:
    """Return ``(True, obj or None)``, or ``(False, None)`` if more than one row
    matched (the ORM path then reports it). *executor* is a sync ``Connection``
    or ``Session`` (this runs inside SQLAlchemy's greenlet)."""
    rows = _cursor.rows(executor, spec.shape, spec.stmt, spec.params)
    if len(rows) > 1:
        return False, None
    mapper: Mapper[Any] = lookups.mapper_of(model)
    return True, (detached(mapper, rows[0]) if rows else None)


def insert_values(obj: Any) -> dict[str, Any] | None:
    """The attribute values a flush of the new *obj* would INSERT (by attribute
    key), or None when the one-statement INSERT cannot write what the flush
    would.

    A None value is NULL, as in Django, even where the column has a default
    (only a value not given takes the default); None for the primary key is
    left out, for the database to generate. None for a type that stores None
    as something else (JSON), and a SQL expression as a value, are left to the
    ORM path.
    """
    state = inspect(obj)
    values: dict[str, Any] = {}
    for prop in state.mapper.column_attrs:
        if prop.key not in state.dict:
            continue
        value = state.dict[prop.key]
        column = prop.columns[0]
        if value is None:
            if column.primary_key:
                continue
            if column.type.should_evaluate_none:
                return None
        elif isinstance(value, ClauseElement) or hasattr(value, "__clause_element__"):
            return None
        values[prop.key] = value
    return values


_inserts: dict[tuple[Any, Any, frozenset[str], tuple[str, ...]], tuple[Any, bool]] = {}


def _insert_statement(
    dialect: Any, mapper: Mapper[Any], keys: frozenset[str], target: tuple[str, ...]
) -> tuple[Any, bool]:
    """The backend's autocommit INSERT of the attributes *keys*, skipping or
    failing on an existing *target* key (PostgreSQL: ``INSERT ... ON CONFLICT
    (target) DO NOTHING RETURNING``; MariaDB: ``INSERT ... RETURNING``), built
    once; and whether it may go through the cursor (no column it leaves out
    has a Python-side default to compute)."""
    cache_key = (dialect, mapper, keys, target)
    entry = _inserts.get(cache_key)
    if entry is None:
        table: Any = mapper.local_table
        present = {
            prop.columns[0]: bindparam(prop.key, type_=prop.columns[0].type)
            for prop in mapper.column_attrs
            if prop.key in keys
        }
        stmt = backend_named(dialect.name).autocommit_insert(
            dialect, table, present, target, columns(mapper)
        )
        assert stmt is not None  # one_statement asked can_insert() first
        plain = all(
            column.default is None for column in table.columns if column not in present
        )
        entry = _inserts[cache_key] = (stmt, plain)
    return entry


def dialect_of(executor: Any) -> Any:
    """The dialect of a sync ``Connection`` or ``Session``."""
    dialect = getattr(executor, "dialect", None)
    return dialect if dialect is not None else executor.get_bind().dialect


def can_insert(executor: Any) -> bool:
    """Whether the backend of *executor* has an autocommit INSERT that returns
    its row (MySQL without ``RETURNING`` has none)."""
    dialect = dialect_of(executor)
    backend: Backend = backend_named(dialect.name)
    return (backend.autocommit_writes or backend.autocommit_writes_by_cursor) and bool(
        getattr(dialect, "insert_returning", False)
    )


def insert_or_nothing(
    executor: Any, obj: Any, values: dict[str, Any], target: tuple[str, ...]
) -> bool | None:
    """INSERT *values* (from :func:`insert_values`) unless a row with the same
    *target* key exists. Return whether the row was inserted; *obj* is then
    detached with every column loaded. Return False (and leave *obj* alone) on
    a conflict. Return None, having sent nothing, where the backend takes such
    an INSERT only through the bare cursor and it cannot go that way
    (``Backend.autocommit_writes_by_cursor``)."""
    mapper: Mapper[Any] = inspect(obj).mapper
    keys = frozenset(values)
    dialect = dialect_of(executor)
    stmt, plain = _insert_statement(dialect, mapper, keys, target)
    key = (mapper, keys, target) if plain else None
    if backend_named(dialect.name).autocommit_writes:
        rows = _cursor.rows(executor, key, stmt, values)
    else:
        rows = _cursor.cursor_only_rows(executor, key, stmt, values)
        if rows is None:
            return None
    if not rows:
        return False
    detached(mapper, rows[0], obj)
    return True


# -- the one-round-trip miss --------------------------------------------------

#: Per lookup shape, a running share of the calls that missed (0: none, 1:
#: all). Past :data:`MISS_MODE` a call reads and inserts in one statement
#: (:func:`get_or_insert`); below it a hit costs one plain SELECT.
_misses: dict[Shape, float] = {}
MISS_MODE: Final = 0.5
#: The weight of the newest call in the running share.
_WEIGHT: Final = 0.125

_combined: dict[tuple[Shape, frozenset[str], tuple[str, ...]], Any] = {}


def note_outcome(shape: Shape, missed: bool) -> None:
    share = _misses.get(shape, 0.0)
    _misses[shape] = share + _WEIGHT * ((1.0 if missed else 0.0) - share)


def reset_outcomes() -> None:
    """Forget every shape's share of misses (for tests)."""
    _misses.clear()


def expects_miss(shape: Shape) -> bool:
    """Whether most recent calls of *shape* missed."""
    return _misses.get(shape, 0.0) > MISS_MODE


def plain_constructor(model: type[Any]) -> bool:
    """Whether building a *model* object runs nothing of the user's (the
    declarative constructor, no ``@validates``): then building one for a
    call that turns out to be a hit is unobservable."""
    mapper = lookups.mapper_of(model)
    init = getattr(mapper.class_manager.original_init, "__qualname__", "")
    return init == "_declarative_constructor" and not mapper.validators


def _combined_statement(
    backend: Backend,
    mapper: Mapper[Any],
    spec: Prepared,
    keys: frozenset[str],
    target: tuple[str, ...],
) -> tuple[Any, dict[str, Any]] | None:
    """The get-or-insert statement of *spec*'s lookup and the attributes
    *keys*, built once, and the scalar defaults of the columns *keys* leaves
    out (a flush would insert them); None where a left-out column has a
    default that must be computed per row."""
    assert spec.shape is not None
    cache_key = (spec.shape, keys, target)
    if cache_key in _combined:
        return _combined[cache_key]  # type: ignore[no-any-return]
    table: Any = mapper.local_table
    defaults: dict[str, Any] = {}
    values: dict[Any, Any] = {}
    entry: tuple[Any, dict[str, Any]] | None = None
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        if prop.key not in keys:
            if column.default is None:
                continue
            if not column.default.is_scalar:
                _combined[cache_key] = None
                return None
            defaults[prop.key] = column.default.arg
        values[column.name] = bindparam(f"i_{prop.key}", type_=column.type)
    stmt = backend.get_or_insert(table, spec.stmt, values, target, columns(mapper))
    entry = _combined[cache_key] = (stmt, defaults)
    return entry


def get_or_insert(
    executor: Any,
    spec: Prepared,
    obj: Any,
    values: dict[str, Any],
    target: tuple[str, ...],
) -> tuple[str, Any]:
    """Read the row *spec* selects, or insert *values* (from
    :func:`insert_values` of the new *obj*), in one statement. Return
    ``("found", row_obj)``, ``("created", obj)`` (*obj* now detached with
    every column loaded), ``("multiple", None)``, ``("neither", None)`` (a
    concurrent insert committed after the statement began), or
    ``("unsupported", None)`` (a left-out column's default is computed per
    row: the two-statement path does it)."""
    mapper: Mapper[Any] = inspect(obj).mapper
    keys = frozenset(values)
    backend = backend_named(dialect_of(executor).name)
    built = _combined_statement(backend, mapper, spec, keys, target)
    if built is None:
        return "unsupported", None
    stmt, defaults = built
    params = dict(spec.params)
    for key, value in (*defaults.items(), *values.items()):
        params[f"i_{key}"] = value
    assert spec.shape is not None
    rows = _cursor.rows(
        executor, (spec.shape, keys, target, "get_or_insert"), stmt, params
    )
    if not rows:
        return "neither", None
    if len(rows) > 1:
        return "multiple", None
    *row, created = rows[0]
    if created:
        detached(mapper, row, obj)
        return "created", obj
    return "found", detached(mapper, row)

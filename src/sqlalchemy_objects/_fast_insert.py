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
* the lookup has no None value (a unique key does not stop NULLs repeating)
  and no SQL expression; the values to insert hold no SQL expression either,
  and None is left out where the column has a default, as a flush does;
* every mapped column is a plain, undeferred column of the table, and nothing
  listens for instances being loaded, so a row turned into an object here is
  what an ORM query would have made of it.

Reads and the INSERT are Core statements on a bare connection, without an ORM
session, all run in one greenlet switch. Objects come back in the state the
ORM path leaves them in: detached, every column loaded, relationships
unloaded.

A statement prepared once (the SELECT of a known lookup shape; the INSERT of a
known set of columns) goes one step further, straight through the DBAPI
cursor with its SQL compiled once, when that skips nothing ``execute()``
would do: no parameter or column needing a type conversion, no Python-side
default to compute, no statement or transaction listener on the engine, no
SQL logging, no execution option but the isolation level. Its errors go
through SQLAlchemy's own handling (see :data:`_handle_error`).

Inside a session, :func:`orm_select` gives get_or_create a ``select(Model)``
built once per lookup shape, so a hit builds no WHERE clause.
"""

from __future__ import annotations

import logging
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
    types,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ClauseElement

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
    shape = _exact_shape((model, keys))
    if shape is None:  # an operator lookup (age__gte=...), a relationship...
        return None
    columns = {column.name for column in shape.columns}
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


class Prepared:
    """A SELECT of every column of a model, its bind parameters, and the
    lookup shape it was prepared for (None: built for one call)."""

    __slots__ = ("params", "shape", "stmt")

    def __init__(
        self,
        stmt: Any,
        params: dict[str, Any],
        shape: tuple[type[Any], frozenset[str]] | None = None,
    ) -> None:
        self.stmt = stmt
        self.params = params
        self.shape = shape


class _ExactShape:
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


_exact_shapes: dict[tuple[type[Any], frozenset[str]], _ExactShape | None] = {}
_prepared: dict[tuple[type[Any], frozenset[str]], Any] = {}
_orm_prepared: dict[tuple[type[Any], frozenset[str]], Any] = {}


def _exact_shape(shape: tuple[type[Any], frozenset[str]]) -> _ExactShape | None:
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
    found = _exact_shapes[shape] = _ExactShape(pairs)
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


def where_select(model: type[Any], where: tuple[ColumnElement[bool], ...]) -> Prepared:
    """The SELECT of every column of *model* under *where* (at most 2 rows)."""
    mapper: Mapper[Any] = lookups.mapper_of(model)
    return Prepared(select(*_columns(mapper)).where(and_(*where)).limit(2), {})


def prepared_select(model: type[Any], lookup: Mapping[str, Any]) -> Prepared | None:
    """A SELECT of every column built once per model and lookup shape, for a
    lookup shape that an earlier call proved valid and eligible for the
    one-statement path; None otherwise."""
    shape = (model, frozenset(lookup))
    if _targets.get(shape) is None or not bindable(lookup):
        return None
    exact = _exact_shape(shape)
    assert exact is not None  # an eligible shape is exact matches on columns
    stmt = _prepared.get(shape)
    if stmt is None:
        mapper: Mapper[Any] = lookups.mapper_of(model)
        stmt = select(*_columns(mapper)).where(*exact.where).limit(2)
        _prepared[shape] = stmt
    return Prepared(stmt, exact.params(lookup), shape)


def orm_select(
    model: type[Any], lookup: Mapping[str, Any], limit: int
) -> tuple[Any, dict[str, Any]] | None:
    """``select(model)`` under *lookup*, built once per lookup shape, and its
    parameters; None unless every key is an exact match (``name``,
    ``name__exact``, ``pk``) on a plain column with a non-None value."""
    if not bindable(lookup):
        return None
    shape = (model, frozenset(lookup))
    exact = _exact_shape(shape)
    if exact is None:
        return None
    stmt = _orm_prepared.get(shape)
    if stmt is None:
        stmt = _orm_prepared[shape] = select(model).where(*exact.where).limit(limit)
    return stmt, exact.params(lookup)


# -- The prepared SELECT straight through the driver's cursor ------------------
#
# SQLAlchemy's execute() spends about as much Python per statement as a hit
# costs the database (compiled-cache lookup, execution context, result
# metadata). For a prepared SELECT whose parameters and columns need no type
# conversion, the SQL compiled once is sent through the connection's DBAPI
# cursor instead, as SQLAlchemy itself would send it. Errors go through
# SQLAlchemy's own handling (wrapping, handle_error listeners, invalidating a
# dead connection), so callers see what they would see from execute().

#: Connection events that execute() fires and a bare cursor does not.
_STATEMENT_EVENTS: Final = (
    "before_execute",
    "after_execute",
    "before_cursor_execute",
    "after_cursor_execute",
    "begin",
    "commit",
    "rollback",
)

#: SQLAlchemy's error handling for a statement run on a Connection. Private;
#: without it (another SQLAlchemy version) the cursor path is off.
_handle_error: Final = getattr(Connection, "_handle_dbapi_exception", None)


class _DriverPlan:
    """The compiled SQL of a statement and how to order its parameters."""

    __slots__ = ("fixed", "order", "sql")

    def __init__(self, sql: str, order: list[str], fixed: dict[str, Any]) -> None:
        self.sql = sql
        self.order = order
        self.fixed = fixed

    def arguments(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        fixed = self.fixed
        return tuple(params[n] if n in params else fixed[n] for n in self.order)


#: Column types whose values the driver returns as SQLAlchemy would (and which
#: have no result processor under the dialect: checked as well).
_PLAIN_RESULT_TYPES: Final = (
    types.String,
    types.Integer,
    types.Boolean,
    types.DateTime,
    types.Date,
    types.Time,
    types.Uuid,
)

_plans: dict[tuple[Any, Any], _DriverPlan | None] = {}


def _plan(
    key: Any, stmt: Any, params: Mapping[str, Any], dialect: Any
) -> _DriverPlan | None:
    """*stmt* compiled once for *dialect* (cached under *key*); None when a
    parameter or a returned column needs a type conversion, which only
    execute() applies."""
    cache_key = (key, dialect)
    if cache_key in _plans:
        return _plans[cache_key]
    compiled: Any = stmt.compile(dialect=dialect)
    order: list[str] = list(compiled.positiontup or ())
    binds = compiled.binds

    def converts(type_: Any, result: bool) -> bool:
        impl = type_.dialect_impl(dialect)
        if result:
            return (
                not isinstance(impl, _PLAIN_RESULT_TYPES)
                or isinstance(type_, types.Enum)
                or impl.result_processor(dialect, None) is not None
            )
        return impl.bind_processor(dialect) is not None

    plan = None
    if not any(converts(binds[name].type, False) for name in order) and not any(
        converts(column.type, True) for column in stmt.exported_columns
    ):
        fixed = compiled.construct_params(dict.fromkeys(params, None))
        plan = _DriverPlan(compiled.string, order, fixed)
    _plans[cache_key] = plan
    return plan


def _cursor_allowed(conn: Connection) -> bool:
    """Whether a bare cursor would skip nothing execute() does on *conn*: no
    statement or transaction listeners, no SQL logging, no execution options
    beyond the isolation level."""
    engine = conn.engine
    dispatch = engine.dispatch
    return (
        _handle_error is not None
        and not any(getattr(dispatch, name) for name in _STATEMENT_EVENTS)
        and not engine.logger.isEnabledFor(logging.INFO)
        and conn.get_execution_options().keys() <= {"isolation_level"}
    )


def _cursor_rows(conn: Connection, plan: _DriverPlan, args: tuple[Any, ...]) -> Any:
    proxied = conn.connection
    cursor = proxied.cursor()
    try:
        cursor.execute(plan.sql, args)
        rows = cursor.fetchall()
    except BaseException as exc:
        assert _handle_error is not None
        _handle_error(conn, exc, plan.sql, args, cursor, None)  # always raises
        raise  # pragma: no cover
    cursor.close()
    return rows


def _rows(executor: Any, key: Any, stmt: Any, params: Mapping[str, Any]) -> Any:
    """The rows of *stmt*: through the cursor where that gives what execute()
    would (*key* names a cached statement), else through execute()."""
    if key is not None and type(executor) is Connection:
        plan = _plan(key, stmt, params, executor.dialect)
        if plan is not None and _cursor_allowed(executor):
            return _cursor_rows(executor, plan, plan.arguments(params))
    return executor.execute(stmt, params).all()


def select_one(executor: Any, model: type[Any], spec: Prepared) -> tuple[bool, Any]:
    """Return ``(True, obj or None)``, or ``(False, None)`` if more than one row
    matched (the ORM path then reports it). *executor* is a sync ``Connection``
    or ``Session`` (this runs inside SQLAlchemy's greenlet)."""
    rows = _rows(executor, spec.shape, spec.stmt, spec.params)
    if len(rows) > 1:
        return False, None
    mapper: Mapper[Any] = lookups.mapper_of(model)
    return True, (_detached(mapper, rows[0]) if rows else None)


def insert_values(obj: Any) -> dict[str, Any] | None:
    """The attribute values a flush of the new *obj* would INSERT (by attribute
    key), or None when the one-statement INSERT cannot write what the flush
    would.

    As in a flush, a None value is left out where the column has a default, a
    server default or is part of the primary key, so that the default applies;
    None for a type that stores None as something else (JSON), and a SQL
    expression as a value, are left to the ORM path.
    """
    state = inspect(obj)
    values: dict[str, Any] = {}
    for prop in state.mapper.column_attrs:
        if prop.key not in state.dict:
            continue
        value = state.dict[prop.key]
        column = prop.columns[0]
        if value is None:
            if column.primary_key or column.default is not None:
                continue
            if column.server_default is not None:
                continue
            if column.type.should_evaluate_none:
                return None
        elif isinstance(value, ClauseElement) or hasattr(value, "__clause_element__"):
            return None
        values[prop.key] = value
    return values


_inserts: dict[tuple[Any, frozenset[str], tuple[str, ...]], tuple[Any, bool]] = {}


def _insert_statement(
    mapper: Mapper[Any], keys: frozenset[str], target: tuple[str, ...]
) -> tuple[Any, bool]:
    """The INSERT ... ON CONFLICT (target) DO NOTHING RETURNING of the
    attributes *keys*, built once; and whether it may go through the cursor
    (no column it leaves out has a Python-side default to compute)."""
    cache_key = (mapper, keys, target)
    entry = _inserts.get(cache_key)
    if entry is None:
        table: Any = mapper.local_table
        present = {
            prop.columns[0]: bindparam(prop.key, type_=prop.columns[0].type)
            for prop in mapper.column_attrs
            if prop.key in keys
        }
        stmt: Any = (  # pyright: ignore[reportUnknownVariableType]
            pg_insert(table)
            .values(present)
            .on_conflict_do_nothing(index_elements=list(target))
            .returning(*_columns(mapper))
        )
        plain = all(
            column.default is None for column in table.columns if column not in present
        )
        built: tuple[Any, bool] = (stmt, plain)  # pyright: ignore[reportUnknownVariableType]
        entry = _inserts[cache_key] = built
    return entry


def insert_or_nothing(
    executor: Any, obj: Any, values: dict[str, Any], target: tuple[str, ...]
) -> bool:
    """INSERT *values* (from :func:`insert_values`) unless a row with the same
    *target* key exists. Return whether the row was inserted; *obj* is then
    detached with every column loaded. Return False (and leave *obj* alone) on
    a conflict."""
    mapper: Mapper[Any] = inspect(obj).mapper
    keys = frozenset(values)
    stmt, plain = _insert_statement(mapper, keys, target)
    rows = _rows(executor, (mapper, keys, target) if plain else None, stmt, values)
    if not rows:
        return False
    _detached(mapper, rows[0], obj)
    return True

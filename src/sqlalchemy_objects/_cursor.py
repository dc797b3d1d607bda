"""Statements prepared once, sent straight through the driver's DBAPI cursor.

SQLAlchemy's ``execute()`` spends about as much Python per statement as a hit
costs the database (compiled-cache lookup, execution context, result
metadata). For a statement prepared once whose parameters and columns need no
type conversion, the SQL compiled once is sent through the connection's DBAPI
cursor instead, as SQLAlchemy itself would send it, when that skips nothing
``execute()`` would do: no statement or transaction listener on the engine, no
SQL logging, no execution option but the isolation level. Errors go through
SQLAlchemy's own handling (wrapping, ``handle_error`` listeners, invalidating a
dead connection), so callers see what they would see from ``execute()``.

This is the one place the library leans on a SQLAlchemy internal
(:data:`_handle_error`); without it the cursor path is off.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import types
from sqlalchemy.engine import Connection

from ._checkout import GuardedConnection
from ._dialects import backend_named
from ._dialects.base import INTERNAL_LISTENERS

#: Not an execution option's value.
_MISSING: Final = object()

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


class DriverPlan:
    """The compiled SQL of a statement and how to pass its parameters: in
    order (``$1``, ``?``, ``%s``), or by name (psycopg's ``%(name)s``: *order*
    None)."""

    __slots__ = ("fixed", "order", "sql")

    def __init__(
        self, sql: str, order: list[str] | None, fixed: dict[str, Any]
    ) -> None:
        self.sql = sql
        self.order = order
        self.fixed = fixed

    def arguments(self, params: Mapping[str, Any]) -> Any:
        fixed = self.fixed
        if self.order is None:
            return {**fixed, **params}
        return tuple(params[n] if n in params else fixed[n] for n in self.order)


_plans: dict[tuple[Any, Any], DriverPlan | None] = {}


def plan(
    key: Any, stmt: Any, params: Mapping[str, Any], dialect: Any
) -> DriverPlan | None:
    """*stmt* compiled once for *dialect* (cached under *key*); None when a
    parameter or a returned column needs a type conversion, which only
    execute() applies."""
    cache_key = (key, dialect)
    if cache_key in _plans:
        return _plans[cache_key]
    compiled: Any = stmt.compile(dialect=dialect)
    binds = compiled.binds
    order: list[str] = (
        list(compiled.positiontup or ()) if dialect.positional else list(binds)
    )

    def converts(type_: Any, result: bool) -> bool:
        impl = type_.dialect_impl(dialect)
        if result:
            return (
                not isinstance(impl, _PLAIN_RESULT_TYPES)
                or isinstance(type_, types.Enum)
                or impl.result_processor(dialect, None) is not None
            )
        return impl.bind_processor(dialect) is not None

    found = None
    if not any(converts(binds[name].type, False) for name in order) and not any(
        converts(column.type, True) for column in stmt.exported_columns
    ):
        fixed = compiled.construct_params(dict.fromkeys(params, None))
        found = DriverPlan(
            compiled.string, order if dialect.positional else None, fixed
        )
    _plans[cache_key] = found
    return found


#: What ``rows()`` may take a cursor from (a Session is not one of them).
_CONNECTIONS: Final = (Connection, GuardedConnection)


def _listened(dispatch: Any, name: str) -> bool:
    return any(fn not in INTERNAL_LISTENERS for fn in getattr(dispatch, name))


def cursor_allowed(conn: Connection) -> bool:
    """Whether a bare cursor would skip nothing execute() does on *conn*: no
    statement or transaction listeners (but the library's own, see
    :data:`INTERNAL_LISTENERS`), no SQL logging, no execution options but
    those of an autocommit connection."""
    engine = conn.engine
    dispatch = engine.dispatch
    if (
        _handle_error is None
        or any(_listened(dispatch, name) for name in _STATEMENT_EVENTS)
        or engine.logger.isEnabledFor(logging.INFO)
    ):
        return False
    autocommit = backend_named(conn.dialect.name).autocommit_options
    return all(
        key == "isolation_level" or autocommit.get(key, _MISSING) == value
        for key, value in conn.get_execution_options().items()
    )


def cursor_rows(conn: Connection, driver: DriverPlan, args: Any) -> Any:
    """Every row of *driver*'s SQL run with *args* on *conn*'s DBAPI
    connection (its cursor, or the driver's cheaper way)."""
    backend = backend_named(conn.dialect.name)
    try:
        return backend.driver_rows(conn.connection, driver.sql, args)
    except BaseException as exc:
        assert _handle_error is not None
        _handle_error(conn, exc, driver.sql, args, None, None)  # always raises
        raise  # pragma: no cover


def rows(executor: Any, key: Any, stmt: Any, params: Mapping[str, Any]) -> Any:
    """The rows of *stmt*: through the cursor where that gives what execute()
    would (*key* names a cached statement), else through execute()."""
    found = cursor_only_rows(executor, key, stmt, params)
    return executor.execute(stmt, params).all() if found is None else found


def cursor_only_rows(
    executor: Any, key: Any, stmt: Any, params: Mapping[str, Any]
) -> Any:
    """The rows of *stmt* through the cursor, or None (nothing sent) where
    only execute() would give what it gives."""
    if key is not None and type(executor) in _CONNECTIONS:
        found = plan(key, stmt, params, executor.dialect)
        if found is not None and cursor_allowed(executor):
            return cursor_rows(executor, found, found.arguments(params))
    return None

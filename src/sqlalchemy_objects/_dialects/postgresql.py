"""PostgreSQL (asyncpg, psycopg): SQLSTATEs, AUTOCOMMIT reads, ON CONFLICT."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Final

from sqlalchemy import (
    ARRAY,
    any_,
    bindparam,
    event,
    exists,
    false,
    func,
    inspect,
    literal_column,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, ExceptionContext
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapper
from sqlalchemy.sql import sqltypes

from .base import SNAPSHOT_LEVELS, Backend

#: Not an attribute of the driver's connection.
_MISSING: Final = object()

#: SQLSTATE unique_violation (primary keys included).
UNIQUE_VIOLATION: Final = "23505"
#: SQLSTATEs after which the whole transaction is gone and can be rerun:
#: serialization_failure and deadlock_detected.
RERUNNABLE: Final = frozenset({"40001", "40P01"})
#: SQLSTATEs that mean the server ended the session: admin_shutdown,
#: crash_shutdown, cannot_connect_now (class 08, connection_exception, too).
SESSION_ENDED: Final = frozenset({"57P01", "57P02", "57P03"})
#: invalid_sql_statement_name ("prepared statement ... does not exist") and
#: duplicate_prepared_statement ("... already exists"): what a transaction-mode
#: pooler does to statements prepared outside a transaction.
POOLER_SIGNS: Final = frozenset({"26000", "42P05"})
POOLER_NOTE: Final = (
    "sqlalchemy-objects: PostgreSQL says a prepared statement does not exist (or "
    "already exists) on this connection. This looks like a transaction-mode "
    "pooler (PgBouncer pool_mode=transaction) between the application and the "
    "server: pass Database(url, pgbouncer=True), or add ?pgbouncer=true to the URL."
)


def unique_statement_name() -> str:
    """A prepared-statement name no other client uses: behind a pooler that
    mixes clients' statements on one server connection, a name clash would
    run another client's statement (a wrong answer, not an error)."""
    return f"__sqlalchemy_objects_{uuid.uuid4().hex}__"


def _sqlstate(orig: BaseException | None) -> str | None:
    state: str | None = getattr(orig, "sqlstate", None)
    return state


class PostgreSQL(Backend):
    """PostgreSQL's facts."""

    name: ClassVar[str] = "postgresql"
    default_driver: ClassVar[str] = "asyncpg"
    autocommit_reads: ClassVar[bool] = True
    distinct_on: ClassVar[bool] = True
    autocommit_writes: ClassVar[bool] = True
    one_trip_get_or_insert: ClassVar[bool] = True
    defers_begin: ClassVar[bool] = True
    autocommit_options: ClassVar[dict[str, Any]] = {"isolation_level": "AUTOCOMMIT"}

    def get_or_insert(
        self,
        table: Any,
        select: Any,
        values: dict[Any, Any],
        target: Sequence[str],
        returning: Sequence[Any],
    ) -> Any:
        return get_or_insert(table, select, values, target, returning)

    def defer_begin(
        self, dbapi_connection: Any, dialect: Any
    ) -> Callable[[], bool] | None:
        # SQLAlchemy's asyncpg adapter sends BEGIN right before the first
        # statement of a transaction, unless its isolation is "autocommit"
        # (a flag of its own: no round trip). Private attributes: on another
        # driver or version this does nothing.
        if getattr(dbapi_connection, "_transaction", _MISSING) is not None:
            return None  # begun already, or not SQLAlchemy's asyncpg adapter
        level = getattr(dbapi_connection, "isolation_level", _MISSING)
        if (
            level not in (None, "read_committed")
            or getattr(dbapi_connection, "readonly", True)
            or getattr(dbapi_connection, "deferrable", True)
            or dialect.default_isolation_level != "READ COMMITTED"
        ):
            return None
        dbapi_connection.isolation_level = "autocommit"

        def restore() -> bool:
            dbapi_connection.isolation_level = level
            return dbapi_connection._transaction is None

        return restore

    def engine_defaults(self, url: URL, *, pgbouncer: bool) -> dict[str, Any]:
        """Prepared statements that cannot mix up clients behind a pooler.

        asyncpg: unique statement names; behind a transaction-mode pooler
        (*pgbouncer*) no named statements at all (``statement_cache_size=0``),
        since one may be prepared on one server connection and run on another.
        psycopg: no server-side prepared statements (``prepare_threshold=None``):
        its names (``_pg3_0``...) repeat across clients, and cannot be changed.
        """
        driver = url.get_driver_name()
        if driver == "asyncpg":
            if pgbouncer:
                return {"connect_args": {"statement_cache_size": 0}}
            return {
                "connect_args": {"prepared_statement_name_func": unique_statement_name}
            }
        if driver == "psycopg":
            return {"connect_args": {"prepare_threshold": None}}
        return {}

    def install(self, engine: AsyncEngine, sqlite_begin: str) -> None:
        """Invalidate the connections :meth:`is_connection_broken` flags; say
        "pass pgbouncer=True" on errors a transaction pooler causes; wrap a
        driver's raw ``OSError`` at connect (asyncpg raises
        ``ConnectionRefusedError`` while the server restarts) as SQLAlchemy's
        ``OperationalError``, so callers catch one exception family."""

        @event.listens_for(engine.sync_engine, "handle_error")
        def _on_error(context: ExceptionContext) -> None:
            orig = context.original_exception
            if not context.is_disconnect and self.is_connection_broken(orig):
                context.is_disconnect = True
            wrapped = context.sqlalchemy_exception
            if wrapped is not None and _sqlstate(orig) in POOLER_SIGNS:
                wrapped.add_note(POOLER_NOTE)

        @event.listens_for(engine.sync_engine, "do_connect")
        def _on_connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
            try:
                return dialect.connect(*cargs, **cparams)
            except OSError as exc:
                raise OperationalError(
                    "(connecting)", None, exc, connection_invalidated=True
                ) from exc

    def one_of(self, column: Any, values: Sequence[Any]) -> Any:
        # One array parameter: ``= ANY($1)`` instead of a thousand-parameter
        # IN list rendered afresh for each statement.
        return column == any_(
            bindparam("one_of", list(values), type_=ARRAY(column.type))
        )

    def on_conflict_insert(self, model: type[Any]) -> Any:
        return postgresql.insert(model)

    def insert_from_arrays(
        self, model: type[Any], names: Sequence[str], key_columns: Sequence[str]
    ) -> Any:
        # ``INSERT ... SELECT FROM unnest($1, $2, ...) ON CONFLICT DO NOTHING
        # RETURNING ...``: one parameter per column instead of one per value,
        # and whole rows back to make the new objects from.
        cache_key = (model, tuple(names), tuple(key_columns))
        if cache_key in _array_inserts:
            return _array_inserts[cache_key]
        stmt = _array_insert(model, names, key_columns)
        _array_inserts[cache_key] = stmt
        return stmt

    def is_unique_violation(self, exc: IntegrityError) -> bool:
        return _sqlstate(exc.orig) == UNIQUE_VIOLATION

    def must_rerun(self, exc: DBAPIError) -> bool:
        return _sqlstate(exc.orig) in RERUNNABLE

    def has_snapshot_reads(self, isolation_level: str) -> bool:
        # PostgreSQL's FOR SHARE still reads from the snapshot, so at these
        # levels the retried get cannot see the winner's row.
        return isolation_level.upper() in SNAPSHOT_LEVELS

    def is_connection_broken(self, orig: BaseException | None) -> bool:
        """SQLAlchemy's asyncpg dialect asks the driver whether the connection
        is closed, which can still be False while a terminated session is being
        torn down ("connection was closed in the middle of operation").
        asyncpg's InternalClientError means the client-side protocol state is
        broken, for example after a cancelled call met a killed connection;
        such a connection must not go back to the pool."""
        if orig is None:
            return False
        sqlstate = _sqlstate(orig) or ""
        if sqlstate.startswith("08") or sqlstate in SESSION_ENDED:
            return True
        return type(orig.__cause__).__name__ == "InternalClientError"


#: Column types an array parameter carries as the driver's own values (a type
#: with a bind processor, an Enum or a JSON value is sent row by row instead).
_ARRAY_TYPES: Final = (
    sqltypes.String,
    sqltypes.Integer,
    sqltypes.Boolean,
    sqltypes.Date,
    sqltypes.DateTime,
    sqltypes.Numeric,
    sqltypes.Uuid,
)

_array_inserts: dict[tuple[Any, ...], Any] = {}


def _array_insert(
    model: type[Any], names: Sequence[str], key_columns: Sequence[str]
) -> Any:
    mapper: Mapper[Any] = inspect(model)
    if mapper.inherits is not None or len(mapper.tables) != 1:
        return None
    table: Any = mapper.local_table
    columns: list[Any] = [mapper.column_attrs[name].columns[0] for name in names]
    if any(column.table is not table for column in columns):
        return None
    for column in columns:
        column_type: Any = column.type
        if not isinstance(column_type, _ARRAY_TYPES) or isinstance(
            column_type, sqltypes.Enum
        ):
            return None
    given = {column.name for column in columns}
    for column in table.columns:
        default: Any = column.default
        # INSERT ... SELECT renders scalar and SQL defaults, not callables.
        if (
            column.name not in given
            and default is not None
            and not (default.is_scalar or default.is_clause_element)
        ):
            return None
    arrays: Any = (
        func.unnest(
            *(
                bindparam(f"array{i}", type_=ARRAY(column.type))
                for i, column in enumerate(columns)
            )
        )
        .table_valued(*(f"c{i}" for i in range(len(columns))))
        .render_derived(name="arrays")
    )
    stmt: Any = postgresql.insert(table)
    stmt = (
        stmt.from_select([column.name for column in columns], select(*arrays.c))
        .on_conflict_do_nothing(index_elements=list(key_columns))
        .returning(*table.columns)
    )
    return select(model).from_statement(stmt)


def get_or_insert(
    table: Any,
    found: Any,
    values: dict[Any, Any],
    target: Sequence[str],
    returning: Sequence[Any],
) -> Any:
    """One statement that reads the row *found* selects or inserts *values*:

    ``WITH found AS (SELECT ...), ins AS (INSERT ... SELECT <values> WHERE
    NOT EXISTS (SELECT 1 FROM found) ON CONFLICT (target) DO NOTHING
    RETURNING ...) SELECT ..., false FROM found UNION ALL SELECT ..., true
    FROM ins``. A hit inserts nothing (the SELECT of values gives no row, so
    no default, no sequence value is evaluated); both parts are empty only
    when a concurrent insert committed after the statement's snapshot (all
    parts of one statement share it), which the caller reads again."""
    existing: Any = found.cte("found")
    parts: list[Any] = list(values.values())
    one: Any = literal_column("1")  # pyright: ignore[reportUnknownVariableType]
    source: Any = select(*parts).where(~exists(select(one).select_from(existing)))
    insert: Any = postgresql.insert(table)
    inserted: Any = (
        insert.from_select(list(values), source, include_defaults=False)
        .on_conflict_do_nothing(index_elements=list(target))
        .returning(*returning)
        .cte("ins")
    )
    found_columns: list[Any] = list(existing.c)
    inserted_columns: list[Any] = list(inserted.c)
    return union_all(
        select(*found_columns, false().label("created")),
        select(*inserted_columns, true().label("created")),
    )

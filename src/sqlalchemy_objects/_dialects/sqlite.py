"""SQLite (aiosqlite): the BEGIN recipe, the busy timeout, extended error names."""

from __future__ import annotations

import sqlite3
from typing import Any, ClassVar, Final, Literal

from sqlalchemy import event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only

from .base import INTERNAL_LISTENERS, Backend, skip_idle_transaction_ends

SqliteBegin = Literal["DEFERRED", "IMMEDIATE", "EXCLUSIVE"]
#: ``sqlite_begin="NONE"``: no BEGIN at all (quick reads; internal).

#: Extended result codes that mean "a unique or primary key fired".
UNIQUE_ERRORS: Final = frozenset(
    {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}
)
#: How long a writer waits for the lock before "database is locked".
BUSY_TIMEOUT_S: Final = 30.0
#: The BEGIN statement of each mode (never built from user input).
BEGIN_SQL: Final[dict[str, str]] = {
    "DEFERRED": "BEGIN DEFERRED",
    "IMMEDIATE": "BEGIN IMMEDIATE",
    "EXCLUSIVE": "BEGIN EXCLUSIVE",
}


#: Set on aiosqlite's connection while a BEGIN may be open on it.
_BEGUN: Final = "_sqlalchemy_objects_begun"


class RollbackOnCloseConnection(sqlite3.Connection):
    """A sqlite3 connection that rolls back its open transaction when closed.

    ``sqlite3_close_v2`` does not close a connection that still has prepared
    statements: it turns it into a "zombie" that keeps its transaction, and so
    the database's write lock, until the last statement is finalized. CPython's
    sqlite3 connection sits in a reference cycle with its statement cache, so a
    cancelled task whose connection SQLAlchemy closes mid-transaction can leave
    every other writer waiting until the next cyclic garbage collection. Rolling
    back first releases the lock at once.
    """

    def close(self) -> None:
        try:
            if self.in_transaction:
                self.rollback()
        except sqlite3.Error:  # already closed, or the rollback itself failed
            pass
        super().close()


class SQLite(Backend):
    """SQLite's facts."""

    name: ClassVar[str] = "sqlite"
    default_driver: ClassVar[str] = "aiosqlite"
    # Reads outside a session must not take the write lock: a DEFERRED
    # transaction for those that need one (streaming). Autocommit connections
    # send no BEGIN at all: one statement is its own transaction in SQLite
    # (a write waits for the lock up to the busy timeout), as on PostgreSQL.
    read_options: ClassVar[dict[str, Any]] = {"sqlite_begin": "DEFERRED"}
    autocommit_reads: ClassVar[bool] = True
    explain_prefix: ClassVar[str] = "EXPLAIN QUERY PLAN"
    # Not writes: an INSERT of a task cancelled mid-statement kept the write
    # lock (its statement never reset) until the process ended; a write
    # transaction is rolled back, statements and all.
    autocommit_options: ClassVar[dict[str, Any]] = {"sqlite_begin": "NONE"}
    # ... but the bare cursor's one trip (execute_fetchall) runs the INSERT
    # to its end in aiosqlite's thread, cancelled or not: the statement is
    # reset there and the lock released with its autocommit.
    autocommit_writes_by_cursor: ClassVar[bool] = True

    def driver_rows(self, connection: Any, sql: str, args: Any) -> Any:
        """aiosqlite runs execute and fetchall in one trip to its thread."""
        driver = connection.driver_connection
        fetch_all = getattr(driver, "execute_fetchall", None)
        if fetch_all is None:  # pragma: no cover - another driver
            return super().driver_rows(connection, sql, args)
        return await_only(fetch_all(sql, args))

    def engine_defaults(self, url: URL, *, pgbouncer: bool) -> dict[str, Any]:
        return {
            "connect_args": {
                "timeout": BUSY_TIMEOUT_S,
                "factory": RollbackOnCloseConnection,
            }
        }

    def install(self, engine: AsyncEngine, sqlite_begin: str) -> None:
        """Make SAVEPOINT and ROLLBACK work on pysqlite/aiosqlite (SQLAlchemy's
        recipe).

        The driver's legacy transaction control sends no BEGIN before a SELECT
        or a SAVEPOINT, so a row written inside a released savepoint survives
        the outer rollback. We turn the driver's handling off and emit BEGIN
        ourselves; ``BEGIN IMMEDIATE`` takes the write lock up front, so a
        read-then-write transaction waits for the busy timeout instead of
        failing at the upgrade.
        """
        sync_engine = engine.sync_engine

        @event.listens_for(sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
            setattr(dbapi_connection.driver_connection, _BEGUN, False)
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA foreign_keys = ON")
                if engine.url.database not in {None, "", ":memory:"}:
                    cursor.execute("PRAGMA journal_mode = WAL")
            finally:
                cursor.close()

        @event.listens_for(sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", sqlite_begin)
            if mode != "NONE":
                setattr(conn.connection.driver_connection, _BEGUN, True)
                conn.exec_driver_sql(BEGIN_SQL[mode])

        # The bare cursor runs only on autocommit ("NONE") connections, where
        # this sends nothing.
        INTERNAL_LISTENERS.add(_on_begin)

        # sqlite3 ends no transaction that is not open, but through aiosqlite
        # even that costs a trip to the connection's thread. Idle means: no
        # BEGIN sent since the last end (a BEGIN still queued for the thread,
        # as when a task is cancelled, is not in ``in_transaction`` yet) and
        # none open.
        skip_idle_transaction_ends(
            sync_engine.dialect,
            lambda driver: (
                not getattr(driver, _BEGUN, True) and not driver.in_transaction
            ),
            lambda driver: setattr(driver, _BEGUN, False),
        )

    def on_conflict_insert(self, model: type[Any]) -> Any:
        return sqlite.insert(model)

    def is_unique_violation(self, exc: IntegrityError) -> bool:
        return getattr(exc.orig, "sqlite_errorname", None) in UNIQUE_ERRORS

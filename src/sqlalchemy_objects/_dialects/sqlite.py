"""SQLite (aiosqlite): the BEGIN recipe, the busy timeout, extended error names."""

from __future__ import annotations

import sqlite3
from typing import Any, ClassVar, Final, Literal

from sqlalchemy import event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from .base import Backend

SqliteBegin = Literal["DEFERRED", "IMMEDIATE", "EXCLUSIVE"]

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
    # Reads outside a session must not take the write lock.
    read_options: ClassVar[dict[str, Any]] = {"sqlite_begin": "DEFERRED"}

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
            conn.exec_driver_sql(BEGIN_SQL[mode])

    def on_conflict_insert(self, model: type[Any]) -> Any:
        return sqlite.insert(model)

    def is_unique_violation(self, exc: IntegrityError) -> bool:
        return getattr(exc.orig, "sqlite_errorname", None) in UNIQUE_ERRORS

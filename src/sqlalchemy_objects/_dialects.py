"""Backend facts: what differs between PostgreSQL, MySQL/MariaDB and SQLite.

Only named facts and tiny functions live here. Errors are recognised by code
(SQLSTATE, errno, SQLite's extended error name), never by message text.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final, Literal

from sqlalchemy import event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from .exceptions import ConfigurationError

SqliteBegin = Literal["DEFERRED", "IMMEDIATE", "EXCLUSIVE"]

#: PostgreSQL's SQLSTATE for unique_violation (primary keys included).
PG_UNIQUE_VIOLATION: Final = "23505"
#: MySQL/MariaDB ER_DUP_ENTRY (unique keys and primary keys).
MYSQL_DUP_ENTRY: Final = 1062
#: MySQL/MariaDB ER_SP_DOES_NOT_EXIST: the savepoint is gone because InnoDB rolled
#: back the whole transaction (a deadlock or a lock wait timeout).
MYSQL_SAVEPOINT_MISSING: Final = 1305
#: MySQL/MariaDB ER_LOCK_DEADLOCK: InnoDB rolled back the whole transaction.
MYSQL_DEADLOCK: Final = 1213
#: PostgreSQL SQLSTATEs after which the whole transaction is gone and can be rerun:
#: serialization_failure and deadlock_detected.
PG_RERUNNABLE: Final = frozenset({"40001", "40P01"})
#: SQLite extended result codes that mean "a unique or primary key fired".
SQLITE_UNIQUE_ERRORS: Final = frozenset(
    {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}
)
#: PostgreSQL SQLSTATEs that mean the server ended the session: admin_shutdown,
#: crash_shutdown, cannot_connect_now (class 08, connection_exception, too).
PG_SESSION_ENDED: Final = frozenset({"57P01", "57P02", "57P03"})
#: Isolation levels under which a re-read cannot see rows committed after the
#: transaction's snapshot was taken.
SNAPSHOT_LEVELS: Final = frozenset({"REPEATABLE READ", "SERIALIZABLE"})

#: The async driver used when a URL names only the backend.
DEFAULT_DRIVERS: Final = {
    "postgresql": "asyncpg",
    "postgres": "asyncpg",
    "mysql": "asyncmy",
    "mariadb": "asyncmy",
    "sqlite": "aiosqlite",
}
#: The embedded database used when neither a URL nor DATABASE_URL is given.
DEFAULT_URL: Final = "sqlite+aiosqlite:///sqlalchemy_objects.sqlite3"
#: How long a SQLite writer waits for the lock before "database is locked".
SQLITE_BUSY_TIMEOUT_S: Final = 30.0


def normalise_url(raw: str | URL) -> URL:
    """Return *raw* as a URL with an async driver (``postgres://`` -> asyncpg)."""
    try:
        url = make_url(raw)
    except Exception as exc:  # ArgumentError, ValueError: all mean "not a URL"
        raise ConfigurationError(f"Cannot parse database URL {raw!r}: {exc}") from exc
    if "+" not in url.drivername:
        backend = url.drivername
        driver = DEFAULT_DRIVERS.get(backend)
        if driver is None:
            raise ConfigurationError(
                f"Unsupported database URL scheme {backend!r}; use one of "
                f"{', '.join(sorted(DEFAULT_DRIVERS))} (with or without +driver)."
            )
        if backend == "postgres":
            backend = "postgresql"
        if backend == "mariadb":
            backend = "mysql"
        url = url.set(drivername=f"{backend}+{driver}")
    return url


def engine_defaults(url: URL) -> dict[str, Any]:
    """Return per-backend engine options that the user did not choose."""
    if url.get_backend_name() in {"mysql", "mariadb"}:
        # Django's choice for MySQL: under InnoDB's default REPEATABLE READ the
        # re-read after a lost race cannot see the winner's row.
        return {"isolation_level": "READ COMMITTED"}
    if url.get_backend_name() == "sqlite":
        return {
            "connect_args": {
                "timeout": SQLITE_BUSY_TIMEOUT_S,
                "factory": RollbackOnCloseConnection,
            }
        }
    return {}


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


def is_unique_violation(exc: IntegrityError, backend: str) -> bool:
    """Tell whether *exc* is a unique or primary-key violation (a possible race)."""
    orig = exc.orig
    if backend == "postgresql":
        return getattr(orig, "sqlstate", None) == PG_UNIQUE_VIOLATION
    if backend in {"mysql", "mariadb"}:
        args: tuple[Any, ...] = getattr(orig, "args", ())
        return bool(args) and args[0] == MYSQL_DUP_ENTRY
    if backend == "sqlite":
        return getattr(orig, "sqlite_errorname", None) in SQLITE_UNIQUE_ERRORS
    return False


def transaction_must_rerun(exc: DBAPIError, backend: str) -> bool:
    """Tell whether the server aborted the whole transaction (a deadlock or a
    serialization failure): nothing in it was written, and rerunning it is the
    documented remedy."""
    if backend == "postgresql":
        return getattr(exc.orig, "sqlstate", None) in PG_RERUNNABLE
    if backend == "mysql":
        args: tuple[Any, ...] = getattr(exc.orig, "args", ())
        return bool(args) and args[0] == MYSQL_DEADLOCK
    return False


def savepoint_was_lost(exc: DBAPIError, backend: str) -> bool:
    """Tell whether *exc* says the savepoint vanished with its whole transaction."""
    if backend != "mysql":
        return False
    args: tuple[Any, ...] = getattr(exc.orig, "args", ())
    return bool(args) and args[0] == MYSQL_SAVEPOINT_MISSING


def locking_read_sees_latest(backend: str) -> bool:
    """Tell whether a locking read (``LOCK IN SHARE MODE``) sees rows committed
    after the transaction's snapshot.

    InnoDB's locking reads always read the latest committed version, so on
    MySQL/MariaDB the re-read after a lost race finds the winner even under
    REPEATABLE READ. PostgreSQL's ``FOR SHARE`` still reads from the snapshot.
    """
    return backend == "mysql"


def has_snapshot_reads(backend: str, isolation_level: str) -> bool:
    """Tell whether a re-read in this transaction may miss newer committed rows."""
    # SQLite writers are serialised by the database lock, and MySQL/MariaDB re-read
    # with a locking read (see locking_read_sees_latest): only PostgreSQL's
    # snapshot can hide the winner's row.
    return backend == "postgresql" and isolation_level.upper() in SNAPSHOT_LEVELS


def is_connection_broken(orig: BaseException | None, backend: str) -> bool:
    """Tell whether *orig* leaves its connection unusable (beyond what SQLAlchemy sees).

    SQLAlchemy's asyncpg dialect asks the driver whether the connection is closed,
    which can still be False while a terminated session is being torn down
    ("connection was closed in the middle of operation"). asyncpg's
    InternalClientError means the client-side protocol state is broken, for example
    after a cancelled call met a killed connection; such a connection must not go
    back to the pool.
    """
    if backend != "postgresql" or orig is None:
        return False
    sqlstate = getattr(orig, "sqlstate", None) or ""
    if sqlstate.startswith("08") or sqlstate in PG_SESSION_ENDED:
        return True
    return type(orig.__cause__).__name__ == "InternalClientError"


def install_disconnect_detection(engine: AsyncEngine, backend: str) -> None:
    """Make SQLAlchemy invalidate connections :func:`is_connection_broken` flags."""

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        if not context.is_disconnect and is_connection_broken(
            context.original_exception, backend
        ):
            context.is_disconnect = True


def install_sqlite_recipe(engine: AsyncEngine, begin: SqliteBegin) -> None:
    """Make SAVEPOINT and ROLLBACK work on pysqlite/aiosqlite (SQLAlchemy's recipe).

    The driver's legacy transaction control sends no BEGIN before a SELECT or a
    SAVEPOINT, so a row written inside a released savepoint survives the outer
    rollback. We turn the driver's handling off and emit BEGIN ourselves;
    ``BEGIN IMMEDIATE`` takes the write lock up front, so a read-then-write
    transaction waits for the busy timeout instead of failing at the upgrade.
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
        mode = conn.get_execution_options().get("sqlite_begin", begin)
        conn.exec_driver_sql(f"BEGIN {_SQLITE_BEGIN_SQL[mode]}")


_SQLITE_BEGIN_SQL: Final[dict[str, str]] = {
    "DEFERRED": "DEFERRED",
    "IMMEDIATE": "IMMEDIATE",
    "EXCLUSIVE": "EXCLUSIVE",
}

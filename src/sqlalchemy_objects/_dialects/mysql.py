"""MySQL and MariaDB (asyncmy, aiomysql): errnos, READ COMMITTED, locking reads,
autocommit connections with an explicit BEGIN."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final

from sqlalchemy import event
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.mysql.base import MySQLDialect
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from .base import INTERNAL_LISTENERS, Backend, error_code, skip_idle_transaction_ends

#: ER_DUP_ENTRY (unique keys and primary keys).
DUP_ENTRY: Final = 1062
#: ER_SP_DOES_NOT_EXIST: the savepoint is gone because InnoDB rolled back the
#: whole transaction (a deadlock or a lock wait timeout).
SAVEPOINT_MISSING: Final = 1305
#: ER_LOCK_DEADLOCK: InnoDB rolled back the whole transaction.
DEADLOCK: Final = 1213
#: Set on the driver's connection while no statement is under way on it (the
#: last one finished, or its transaction was ended since).
_ENDED: Final = "_sqlalchemy_objects_ended"
#: ``mysql_begin="NONE"``: an autocommit connection, no BEGIN (internal).
BEGIN_OPTION: Final = "mysql_begin"


class MySQL(Backend):
    """MySQL's and MariaDB's facts."""

    name: ClassVar[str] = "mysql"
    default_driver: ClassVar[str] = "asyncmy"
    # InnoDB's locking reads always read the latest committed version, so the
    # re-read after a lost race finds the winner even under REPEATABLE READ.
    locking_read_sees_latest: ClassVar[bool] = True
    # Every connection is in the server's autocommit mode, and a transaction
    # starts with an explicit BEGIN (see install()). Reads and the
    # get_or_create SELECT outside a session send no BEGIN and need no
    # ROLLBACK: one round trip, as with the raw driver. On MariaDB (10.5+:
    # INSERT ... RETURNING) a miss is one autocommit INSERT, a duplicate key
    # failing it (nothing to roll back) and the one retried SELECT deciding;
    # MySQL, without RETURNING, creates in a transaction.
    autocommit_reads: ClassVar[bool] = True
    autocommit_writes: ClassVar[bool] = True
    autocommit_options: ClassVar[dict[str, Any]] = {BEGIN_OPTION: "NONE"}

    def engine_defaults(self, url: URL, *, pgbouncer: bool) -> dict[str, Any]:
        # Django's choice for MySQL: under InnoDB's default REPEATABLE READ the
        # re-read after a lost race cannot see the winner's row.
        return {"isolation_level": "READ COMMITTED"}

    def driver_rows(self, connection: Any, sql: str, args: Any) -> Any:
        """The bare cursor, telling :meth:`install`'s idle check that a
        statement is under way, as the engine listener does for execute()."""
        driver = connection.driver_connection
        setattr(driver, _ENDED, False)
        rows = super().driver_rows(connection, sql, args)
        setattr(driver, _ENDED, True)
        return rows

    def install(self, engine: AsyncEngine, sqlite_begin: str) -> None:
        """Autocommit connections, explicit transactions, and no needless ROLLBACK.

        The drivers' connections run with ``autocommit`` off, so even a lone
        SELECT opens a transaction that needs a ROLLBACK round trip (and
        holds a metadata lock until then). Here every connection is kept in
        the server's autocommit mode, and SQLAlchemy's begin sends ``BEGIN``,
        which opens a transaction that lasts until COMMIT or ROLLBACK whatever
        the mode, unless the connection's execution options say
        ``mysql_begin="NONE"`` (the library's autocommit reads) or it runs at
        ``AUTOCOMMIT``. The isolation level is still set per session
        (``SET SESSION TRANSACTION ISOLATION LEVEL``) and applies to every
        explicit transaction; the dialect's way of setting it, which turns
        autocommit off, is replaced.

        The pool's ROLLBACK on return, and SQLAlchemy's on an autocommit
        connection, are sent only where they can matter: not when no
        statement is under way (one never finished, as a cancelled task's, is
        never taken for done) and the server reports no transaction open
        (``SERVER_STATUS_IN_TRANS``, which asyncmy and aiomysql keep).
        """
        sync_engine = engine.sync_engine
        dialect: Any = sync_engine.dialect
        set_level = MySQLDialect.set_isolation_level

        def set_isolation_level(dbapi_connection: Any, level: Any) -> None:
            if level != "AUTOCOMMIT":
                set_level(dialect, dbapi_connection, level)
            if not dbapi_connection.get_autocommit():
                dbapi_connection.autocommit(True)

        dialect.set_isolation_level = set_isolation_level

        @event.listens_for(sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
            if not dbapi_connection.get_autocommit():
                dbapi_connection.autocommit(True)

        @event.listens_for(sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            if conn.get_execution_options().get(BEGIN_OPTION) == "NONE":
                return
            if not conn._is_autocommit_isolation():
                conn.exec_driver_sql("BEGIN")

        # retval=True: SQLAlchemy would wrap the listener, and the bare cursor
        # could not tell it for ours.
        @event.listens_for(sync_engine, "before_cursor_execute", retval=True)
        def _statement(
            conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any
        ) -> tuple[str, Any]:
            setattr(conn.connection.driver_connection, _ENDED, False)
            return statement, parameters

        @event.listens_for(sync_engine, "after_cursor_execute")
        def _done(conn: Any, *args: Any) -> None:
            setattr(conn.connection.driver_connection, _ENDED, True)

        # The bare cursor runs only on "NONE" connections, where _on_begin
        # sends nothing, and marks statements itself (driver_rows).
        INTERNAL_LISTENERS.update((_on_begin, _statement, _done))

        skip_idle_transaction_ends(
            dialect,
            lambda driver: (
                getattr(driver, _ENDED, False) and not driver.get_transaction_status()
            ),
            lambda driver: setattr(driver, _ENDED, True),
        )

    def autocommit_insert(
        self,
        dialect: Any,
        table: Any,
        values: dict[Any, Any],
        target: Sequence[str],
        returning: Sequence[Any],
    ) -> Any:
        # No conflict target, and IGNORE would turn other errors into
        # warnings: a plain INSERT, which a duplicate key fails.
        if not dialect.insert_returning:
            return None
        stmt: Any = mysql.insert(table).values(values).returning(*returning)  # pyright: ignore[reportUnknownVariableType]
        return stmt  # pyright: ignore[reportUnknownVariableType]

    def is_unique_violation(self, exc: IntegrityError) -> bool:
        return bool(error_code(exc) == DUP_ENTRY)

    def must_rerun(self, exc: DBAPIError) -> bool:
        return bool(error_code(exc) == DEADLOCK)

    def savepoint_was_lost(self, exc: DBAPIError) -> bool:
        return bool(error_code(exc) == SAVEPOINT_MISSING)

    ignore_may_hide_errors = True
    enum_sorts_unlike_it_compares = True

    def insert_skipping_existing(
        self, model: type[Any], key_columns: Sequence[str]
    ) -> Any:
        # No conflict target in MySQL: IGNORE skips any duplicate key (and
        # downgrades other errors to warnings, which the caller checks).
        return mysql.insert(model).prefix_with("IGNORE")

    def bulk_insert(
        self,
        model: type[Any],
        *,
        ignore_conflicts: bool,
        update: Sequence[tuple[str, str]],
        conflict_columns: Sequence[str],
    ) -> Any:
        # ON DUPLICATE KEY fires on any unique key: there is no conflict target.
        stmt = mysql.insert(model)
        if ignore_conflicts:
            return stmt.prefix_with("IGNORE")
        if update:
            return stmt.on_duplicate_key_update(
                {field: stmt.inserted[column] for field, column in update}
            )
        return stmt

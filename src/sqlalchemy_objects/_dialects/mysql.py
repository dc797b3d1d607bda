"""MySQL and MariaDB (asyncmy, aiomysql): errnos, READ COMMITTED, locking reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final

from sqlalchemy import event
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from .base import Backend, error_code, skip_idle_transaction_ends

#: ER_DUP_ENTRY (unique keys and primary keys).
DUP_ENTRY: Final = 1062
#: ER_SP_DOES_NOT_EXIST: the savepoint is gone because InnoDB rolled back the
#: whole transaction (a deadlock or a lock wait timeout).
SAVEPOINT_MISSING: Final = 1305
#: ER_LOCK_DEADLOCK: InnoDB rolled back the whole transaction.
DEADLOCK: Final = 1213
#: Set on the driver's connection when its transaction was ended and no
#: statement has run on it since.
_ENDED: Final = "_sqlalchemy_objects_ended"


class MySQL(Backend):
    """MySQL's and MariaDB's facts."""

    name: ClassVar[str] = "mysql"
    default_driver: ClassVar[str] = "asyncmy"
    # InnoDB's locking reads always read the latest committed version, so the
    # re-read after a lost race finds the winner even under REPEATABLE READ.
    locking_read_sees_latest: ClassVar[bool] = True

    def engine_defaults(self, url: URL, *, pgbouncer: bool) -> dict[str, Any]:
        # Django's choice for MySQL: under InnoDB's default REPEATABLE READ the
        # re-read after a lost race cannot see the winner's row.
        return {"isolation_level": "READ COMMITTED"}

    def install(self, engine: AsyncEngine, sqlite_begin: str) -> None:
        """Send the pool's ROLLBACK on return only where it can matter.

        A call outside a session ends its transaction, then the pool rolls
        back once more when it takes the connection back: a round trip that
        changes nothing when no statement ran since that end and the server
        reports no transaction open (``SERVER_STATUS_IN_TRANS``, which asyncmy
        and aiomysql keep). A statement that never finished (a cancelled
        task) is never taken for an end.
        """
        sync_engine = engine.sync_engine

        @event.listens_for(sync_engine, "before_cursor_execute")
        def _statement(conn: Any, *args: Any) -> None:
            setattr(conn.connection.driver_connection, _ENDED, False)

        skip_idle_transaction_ends(
            sync_engine.dialect,
            lambda driver: (
                getattr(driver, _ENDED, False) and not driver.get_transaction_status()
            ),
            lambda driver: setattr(driver, _ENDED, True),
        )

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

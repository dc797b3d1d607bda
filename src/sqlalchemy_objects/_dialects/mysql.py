"""MySQL and MariaDB (asyncmy, aiomysql): errnos, READ COMMITTED, locking reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final

from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError

from .base import Backend, error_code

#: ER_DUP_ENTRY (unique keys and primary keys).
DUP_ENTRY: Final = 1062
#: ER_SP_DOES_NOT_EXIST: the savepoint is gone because InnoDB rolled back the
#: whole transaction (a deadlock or a lock wait timeout).
SAVEPOINT_MISSING: Final = 1305
#: ER_LOCK_DEADLOCK: InnoDB rolled back the whole transaction.
DEADLOCK: Final = 1213


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

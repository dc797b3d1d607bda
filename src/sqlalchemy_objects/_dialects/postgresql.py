"""PostgreSQL (asyncpg, psycopg): SQLSTATEs, AUTOCOMMIT reads, ON CONFLICT."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final

from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from .base import SNAPSHOT_LEVELS, Backend

#: SQLSTATE unique_violation (primary keys included).
UNIQUE_VIOLATION: Final = "23505"
#: SQLSTATEs after which the whole transaction is gone and can be rerun:
#: serialization_failure and deadlock_detected.
RERUNNABLE: Final = frozenset({"40001", "40P01"})
#: SQLSTATEs that mean the server ended the session: admin_shutdown,
#: crash_shutdown, cannot_connect_now (class 08, connection_exception, too).
SESSION_ENDED: Final = frozenset({"57P01", "57P02", "57P03"})


def _sqlstate(orig: BaseException | None) -> str | None:
    state: str | None = getattr(orig, "sqlstate", None)
    return state


class PostgreSQL(Backend):
    """PostgreSQL's facts."""

    name: ClassVar[str] = "postgresql"
    default_driver: ClassVar[str] = "asyncpg"
    autocommit_reads: ClassVar[bool] = True

    def install(self, engine: AsyncEngine, sqlite_begin: str) -> None:
        """Make SQLAlchemy invalidate the connections
        :meth:`is_connection_broken` flags."""

        @event.listens_for(engine.sync_engine, "handle_error")
        def _on_error(context: ExceptionContext) -> None:
            if not context.is_disconnect and self.is_connection_broken(
                context.original_exception
            ):
                context.is_disconnect = True

    def on_conflict_insert(self, model: type[Any]) -> Any:
        return postgresql.insert(model)

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


def insert_or_nothing(
    table: Any, values: dict[Any, Any], target: Sequence[str], returning: Sequence[Any]
) -> Any:
    """``INSERT ... ON CONFLICT (target) DO NOTHING RETURNING ...``."""
    stmt: Any = (  # pyright: ignore[reportUnknownVariableType]
        postgresql.insert(table)
        .values(values)
        .on_conflict_do_nothing(index_elements=list(target))
        .returning(*returning)
    )
    return stmt  # pyright: ignore[reportUnknownVariableType]

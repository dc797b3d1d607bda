"""What every backend answers: the generic :class:`Backend`, and its defaults.

A backend module subclasses :class:`Backend` and overrides the facts that
differ. The defaults are the cautious answers for a backend we do not know:
no error counts as a race, nothing is rerun, nothing is special about reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Final

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

#: Isolation levels under which a re-read cannot see rows committed after the
#: transaction's snapshot was taken.
SNAPSHOT_LEVELS: Final = frozenset({"REPEATABLE READ", "SERIALIZABLE"})


def error_code(exc: DBAPIError) -> Any:
    """The driver's numeric error code (MySQL drivers put it first in ``args``)."""
    args: tuple[Any, ...] = getattr(exc.orig, "args", ())
    return args[0] if args else None


#: Engine listeners the library installs whose work the bare-cursor path does
#: itself or need not do (SQLite's BEGIN recipe on an autocommit connection):
#: they do not turn that path off.
INTERNAL_LISTENERS: set[Any] = set()


def skip_idle_transaction_ends(
    dialect: Any,
    idle: Callable[[Any], Any],
    ended: Callable[[Any], None] | None = None,
) -> None:
    """Make *dialect* send no ROLLBACK or COMMIT where *idle* (given the
    driver's own connection) says there is no transaction to end; *ended* is
    told of each one that was sent.

    SQLAlchemy rolls back twice per call made outside a session (when its
    transaction ends, and again when the pool takes the connection back), and
    ends the "transaction" of an autocommit connection too. Each is a round
    trip (a trip to aiosqlite's thread, or to the server) that changes
    nothing. When the state cannot be read, the statement is sent.
    """

    def skipping(plain: Callable[[Any], None]) -> Callable[[Any], None]:
        def end(dbapi_connection: Any) -> None:
            adapted = getattr(dbapi_connection, "dbapi_connection", dbapi_connection)
            driver = getattr(adapted, "driver_connection", None)
            try:
                skip = driver is not None and bool(idle(driver))
            except Exception:  # closed, or another driver
                skip = False
            if skip:
                return
            plain(dbapi_connection)
            if ended is not None and driver is not None:
                ended(driver)

        return end

    dialect.do_rollback = skipping(dialect.do_rollback)
    dialect.do_commit = skipping(dialect.do_commit)


class Backend:
    """The facts of one database backend that the rest of the library asks.

    Errors are recognised by code (SQLSTATE, errno, SQLite's extended error
    name), never by message text.
    """

    #: SQLAlchemy's backend name, with ``mariadb`` folded into ``mysql``.
    name: ClassVar[str] = ""
    #: The async driver used when a URL names only the backend.
    default_driver: ClassVar[str] = ""
    #: Reads outside a session may run on an ``AUTOCOMMIT`` connection, with no
    #: BEGIN/ROLLBACK, at the server's default isolation level. Also what the
    #: one-statement get_or_create needs (each statement commits by itself).
    autocommit_reads: ClassVar[bool] = False
    #: Whether get_or_create's one-statement path may also INSERT on such a
    #: connection (``ON CONFLICT DO NOTHING RETURNING``, committed by itself);
    #: where not, it reads there and creates in a transaction.
    autocommit_writes: ClassVar[bool] = False
    #: Whether that INSERT may go on such a connection when the bare cursor
    #: sends it in one call that runs it to the end (SQLite: aiosqlite's
    #: ``execute_fetchall``), though not through ``execute()``, which steps
    #: it in separate trips: a task cancelled between them left SQLite's
    #: statement unfinished, holding the write lock.
    autocommit_writes_by_cursor: ClassVar[bool] = False
    #: A locking read (``LOCK IN SHARE MODE``) sees rows committed after the
    #: transaction's snapshot, so the retried get after a lost race uses one.
    locking_read_sees_latest: ClassVar[bool] = False
    #: Whether a read and an insert fit in one statement (a CTE: see
    #: :meth:`get_or_insert`), for lookup shapes that mostly miss.
    one_trip_get_or_insert: ClassVar[bool] = False
    #: Whether :meth:`defer_begin` may do something (asked first: finding the
    #: driver's connection costs a greenlet switch).
    defers_begin: ClassVar[bool] = False
    #: Execution options of the engine view that reads outside a session use.
    read_options: ClassVar[dict[str, Any]] = {}
    #: The execution options that make a connection autocommit (each
    #: statement commits by itself, no BEGIN), where ``autocommit_reads``.
    autocommit_options: ClassVar[dict[str, Any]] = {}

    def engine_defaults(self, url: URL, *, pgbouncer: bool) -> dict[str, Any]:
        """Engine options for this backend that the user did not choose;
        *pgbouncer*: a transaction-mode pooler sits in front of the server."""
        return {}

    def driver_rows(self, connection: Any, sql: str, args: Any) -> Any:
        """Every row of *sql* run with *args* on the pooled DBAPI *connection*
        (inside SQLAlchemy's greenlet): through its cursor, unless the driver
        has a cheaper way."""
        cursor = connection.cursor()
        try:
            cursor.execute(sql, args)
            return cursor.fetchall()
        finally:
            cursor.close()

    def autocommit_insert(
        self,
        dialect: Any,
        table: Any,
        values: dict[Any, Any],
        target: Sequence[str],
        returning: Sequence[Any],
    ) -> Any:
        """The one-statement get_or_create's INSERT of *values* into *table*
        on an autocommit connection, returning *returning*: it inserts no row
        (or raises ``IntegrityError``) when one with the *target* key exists.
        None where *dialect* cannot return the row. Here: ``INSERT ... ON
        CONFLICT (target) DO NOTHING RETURNING ...`` where the backend has
        ``ON CONFLICT`` (:meth:`on_conflict_insert`)."""
        insert = self.on_conflict_insert(table)
        if insert is None or not dialect.insert_returning:
            return None
        return (
            insert.values(values)
            .on_conflict_do_nothing(index_elements=list(target))
            .returning(*returning)
        )

    def get_or_insert(
        self,
        table: Any,
        select: Any,
        values: dict[Any, Any],
        target: Sequence[str],
        returning: Sequence[Any],
    ) -> Any:
        """One statement that returns the rows of *select*, or inserts
        *values* when it finds none (:data:`one_trip_get_or_insert`)."""
        raise NotImplementedError(self.name)

    def defer_begin(
        self, dbapi_connection: Any, dialect: Any
    ) -> Callable[[], bool] | None:
        """If the session's connection *dbapi_connection* has sent no BEGIN
        yet and runs at READ COMMITTED, make its next statement run without
        one (the BEGIN then comes with the statement after it) and return
        what undoes that, which says whether the connection is still without
        a transaction; else None. At READ COMMITTED every statement of a
        transaction sees what is committed when it starts, so a plain SELECT
        (no lock, no side effect) gives the same rows outside the
        transaction, and a transaction that only read needs no BEGIN or
        COMMIT at all."""
        return None

    def install(self, engine: AsyncEngine, sqlite_begin: str) -> None:
        """Install the event listeners this backend needs on *engine*."""

    def is_unique_violation(self, exc: IntegrityError) -> bool:
        """Whether *exc* is a unique or primary-key violation (a possible race)."""
        return False

    def must_rerun(self, exc: DBAPIError) -> bool:
        """Whether the server aborted the whole transaction (a deadlock or a
        serialization failure): nothing in it was written, and rerunning it is
        the documented remedy."""
        return False

    def savepoint_was_lost(self, exc: DBAPIError) -> bool:
        """Whether *exc* says the savepoint vanished with its whole transaction."""
        return False

    def has_snapshot_reads(self, isolation_level: str) -> bool:
        """Whether a re-read at *isolation_level* may miss newer committed rows."""
        return False

    def is_connection_broken(self, orig: BaseException | None) -> bool:
        """Whether *orig* leaves its connection unusable beyond what SQLAlchemy
        sees itself."""
        return False

    def on_conflict_insert(self, model: type[Any]) -> Any:
        """The dialect's INSERT of *model* (or a Table) with ``ON CONFLICT``
        clauses, or None where it has none."""
        return None

    #: Whether ``SELECT DISTINCT ON (fields)`` exists (PostgreSQL).
    distinct_on: ClassVar[bool] = False

    #: What ``QuerySet.explain()`` puts before the SELECT.
    explain_prefix: ClassVar[str] = "EXPLAIN"

    #: Whether a native ENUM column sorts by declaration order but compares
    #: with a value as text (MySQL): keyset pagination cannot use it.
    enum_sorts_unlike_it_compares: ClassVar[bool] = False

    #: Whether the INSERT of :meth:`insert_skipping_existing` may turn other
    #: errors than a duplicate key into warnings (MySQL's IGNORE).
    ignore_may_hide_errors: ClassVar[bool] = False

    def one_of(self, column: Any, values: Sequence[Any]) -> Any:
        """``column IN (values)``, as this backend sends a long list best."""
        return column.in_(list(values))

    def insert_skipping_existing(
        self, model: type[Any], key_columns: Sequence[str]
    ) -> Any:
        """An INSERT of *model* that skips a row whose *key_columns* already
        exist, and only such a row (bulk_get_or_create)."""
        if self.on_conflict_insert is None:
            raise NotImplementedError(
                f"bulk_get_or_create() is not supported on {self.name!r}"
            )
        return self.on_conflict_insert(model).on_conflict_do_nothing(
            index_elements=list(key_columns)
        )

    def insert_from_arrays(
        self, model: type[Any], names: Sequence[str], key_columns: Sequence[str]
    ) -> Any:
        """An INSERT of *model*'s columns *names* (attribute keys) from one
        array parameter per column (``array0``, ``array1``, ...), skipping
        rows whose *key_columns* exist and RETURNING whole rows; None where
        the backend has no such statement or a column needs what only the
        per-row INSERT gives (a Python-side callable default, a type
        converted in Python)."""
        return None

    def bulk_insert(
        self,
        model: type[Any],
        *,
        ignore_conflicts: bool,
        update: Sequence[tuple[str, str]],
        conflict_columns: Sequence[str],
    ) -> Any:
        """The INSERT of bulk_create with its conflict clause: skip conflicting
        rows, or on a conflict on *conflict_columns* set each ``(field, column)``
        of *update* from the row that was to be inserted."""
        if self.on_conflict_insert is None:
            raise NotImplementedError(
                f"bulk_create() is not supported on {self.name!r}"
            )
        stmt = self.on_conflict_insert(model)
        if ignore_conflicts:
            return stmt.on_conflict_do_nothing()
        if update:
            return stmt.on_conflict_do_update(
                index_elements=list(conflict_columns),
                set_={column: stmt.excluded[column] for _, column in update},
            )
        return stmt

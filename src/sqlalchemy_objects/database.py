"""Database: one engine, the models bound to it, and ``session()`` blocks."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.util import greenlet_spawn

from . import _dialects, _fast_insert
from .exceptions import ConfigurationError
from .session import enter_session, leave_session, shielded

_R = TypeVar("_R")

_BINDING_ATTR: Final = "__sqlalchemy_objects_database__"
_COMMIT_LOST_NOTE: Final = (
    "sqlalchemy-objects: the connection was lost while COMMIT was in flight, so the "
    "transaction may or may not have been committed. Check before writing again."
)

#: Set to "0" to turn get_or_create's one-statement path off by default.
FAST_PATH_ENV: Final = "SQLALCHEMY_OBJECTS_FAST_PATH"

_STATEMENT_LOST_NOTE: Final = (
    "sqlalchemy-objects: the connection was lost while the INSERT was in flight; "
    "it runs outside a transaction, so the row may or may not have been written. "
    "Check before writing again."
)

#: How many times an autocommit write is rerun after the server aborted its whole
#: transaction (deadlock or serialization failure) before the error is raised.
WRITE_RERUNS: Final = 3

logger = logging.getLogger("sqlalchemy_objects")


def _on_connection(
    engine: Engine,
    work: Callable[[Connection, _fast_insert.Progress], _R],
    progress: _fast_insert.Progress,
) -> _R:
    with engine.connect() as conn:
        return work(conn, progress)


class Database:
    """An async database that models can be bound to.

    Args:
        url: A SQLAlchemy URL. ``postgresql://``, ``mysql://``, ``mariadb://`` and
            ``sqlite://`` get their async driver (asyncpg, asyncmy, aiosqlite).
            Without a URL the ``DATABASE_URL`` environment variable is read, and
            without that an embedded SQLite file ``sqlalchemy_objects.sqlite3``
            in the working directory is used.
        sqlite_begin: How SQLite transactions that may write start. ``IMMEDIATE``
            (the default) takes the write lock at BEGIN, so concurrent writers
            wait up to the busy timeout instead of failing with "database is
            locked" when a read transaction upgrades. Reads made outside a
            session always use ``DEFERRED``. Ignored by other backends.
        fast_get_or_create: Let get_or_create create a row with one
            ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` statement in
            autocommit mode on PostgreSQL, where that cannot behave differently
            from the ORM path (see docs/performance.md). None (the default)
            means on, unless the ``SQLALCHEMY_OBJECTS_FAST_PATH`` environment
            variable is ``0``.
        **engine_options: Passed to :func:`sqlalchemy.ext.asyncio.create_async_engine`.
            On MySQL/MariaDB ``isolation_level`` defaults to ``READ COMMITTED``
            (as in Django); on SQLite the busy timeout defaults to 30 seconds
            (``connect_args={"timeout": ...}``).
    """

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        sqlite_begin: _dialects.SqliteBegin = "IMMEDIATE",
        fast_get_or_create: bool | None = None,
        **engine_options: Any,
    ) -> None:
        raw = (
            url
            if url is not None
            else os.environ.get("DATABASE_URL") or _dialects.DEFAULT_URL
        )
        self.url: URL = _dialects.normalise_url(raw)
        self.backend: str = self.url.get_backend_name()
        if self.backend == "mariadb":
            self.backend = "mysql"
        if sqlite_begin not in {"DEFERRED", "IMMEDIATE", "EXCLUSIVE"}:
            raise ConfigurationError(
                "sqlite_begin must be 'DEFERRED', 'IMMEDIATE' or 'EXCLUSIVE', "
                f"not {sqlite_begin!r}"
            )
        options = _dialects.engine_defaults(self.url)
        for key, value in engine_options.items():
            if key == "connect_args" and key in options:
                # Merge: a user's timeout must not drop our connection factory.
                options[key] = {**options[key], **value}
            else:
                options[key] = value
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        # Reads outside a session use their own engine view: on SQLite they
        # must not take the write lock.
        self.read_engine: AsyncEngine = self.engine
        _dialects.install_disconnect_detection(self.engine, self.backend)
        if self.backend == "sqlite":
            _dialects.install_sqlite_recipe(self.engine, sqlite_begin)
            self.read_engine = self.engine.execution_options(sqlite_begin="DEFERRED")
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )
        self.read_sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.read_engine, expire_on_commit=False
        )
        # PostgreSQL sessions without BEGIN: each statement commits by itself, at
        # the server's default READ COMMITTED. run_autocommit() uses them, and
        # run_read() too unless an isolation_level was asked for. Streaming
        # (server-side cursors) needs a transaction and keeps read_sessionmaker.
        self.autocommit_sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self.quick_read_sessionmaker = self.read_sessionmaker
        if self.backend == "postgresql":
            self.autocommit_sessionmaker = async_sessionmaker(
                self.engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
            )
            if "isolation_level" not in engine_options:
                self.quick_read_sessionmaker = self.autocommit_sessionmaker
        self._bases: list[type[Any]] = []
        if fast_get_or_create is None:
            fast_get_or_create = os.environ.get(FAST_PATH_ENV, "1") != "0"
        #: get_or_create's one-statement miss path on PostgreSQL.
        self.fast_get_or_create: bool = fast_get_or_create

    @property
    def one_statement_get_or_create(self) -> bool:
        """Whether get_or_create may take its one-statement path here: on
        PostgreSQL (the only backend with autocommit sessions), when enabled."""
        return self.fast_get_or_create and self.autocommit_sessionmaker is not None

    def sessionmakers(self) -> list[async_sessionmaker[AsyncSession]]:
        """Every sessionmaker this Database opens sessions with, each once (the
        pytest plugin binds them all to a test's connection)."""
        makers = [
            self.sessionmaker,
            self.read_sessionmaker,
            self.quick_read_sessionmaker,
            self.autocommit_sessionmaker,
        ]
        return list(dict.fromkeys(m for m in makers if m is not None))

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    def bind(self, base: type[Any]) -> type[Any]:
        """Bind *base* and all its subclasses to this database.

        Manager calls on those models run here when no session is active
        (autocommit: each call in its own short transaction). Returns *base*, so
        it also works as a class decorator.
        """
        if not hasattr(base, "metadata"):
            raise ConfigurationError(
                f"{base.__name__} has no metadata: bind a DeclarativeBase subclass "
                "(class Base(ManagerMixin, DeclarativeBase)) or a mapped model."
            )
        type.__setattr__(base, _BINDING_ATTR, self)
        if base not in self._bases:
            self._bases.append(base)
        return base

    def _metadatas(self) -> list[Any]:
        seen: list[Any] = []
        for base in self._bases:
            if base.metadata not in seen:
                seen.append(base.metadata)
        return seen

    async def create_all(self) -> None:
        """CREATE every table of the models bound to this database (if missing)."""
        async with self.engine.begin() as conn:
            for metadata in self._metadatas():
                await conn.run_sync(metadata.create_all)

    async def drop_all(self) -> None:
        """DROP every table of the models bound to this database (if present)."""
        async with self.engine.begin() as conn:
            for metadata in reversed(self._metadatas()):
                await conn.run_sync(metadata.drop_all)

    async def dispose(self) -> None:
        """Close every pooled connection (call at shutdown)."""
        await self.engine.dispose()

    async def run_read(self, work: Callable[[AsyncSession], Awaitable[_R]]) -> _R:
        """Run *work* in a short read transaction of its own (autocommit mode);
        on PostgreSQL, without BEGIN and ROLLBACK (see ``quick_read_sessionmaker``).

        If the connection turns out to be dead (killed, server restarted), SQLAlchemy
        invalidates the pool and *work* runs once more on a fresh connection: a read
        is always safe to repeat.
        """
        try:
            async with self.quick_read_sessionmaker() as session:
                return await work(session)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            logger.info("connection lost during a read; retrying it once: %s", exc.orig)
        async with self.quick_read_sessionmaker() as session:
            return await work(session)

    async def run_autocommit(
        self, work: Callable[[Any, _fast_insert.Progress], _R]
    ) -> _R | None:
        """Run *work* on one PostgreSQL connection without a transaction: each
        statement commits by itself. Return None at once on other backends.

        *work* is synchronous and runs inside SQLAlchemy's greenlet, all of it
        in one switch: it gets a sync ``Connection`` (or, when the pytest plugin
        has bound the sessions to the test's transaction, a sync ``Session`` on
        it) and uses only ``execute``, ``commit`` and ``rollback``.

        A connection found dead before anything was written (``progress.writing``
        unset) is replaced and *work* runs once more; one lost while an INSERT
        was in flight is raised with the "outcome unknown" note.
        """
        maker = self.autocommit_sessionmaker
        if maker is None:
            return None
        bind = maker.kw.get("bind")
        for attempt in (1, 2):
            progress = _fast_insert.Progress()
            try:
                if isinstance(bind, AsyncEngine):
                    return await greenlet_spawn(
                        _on_connection, bind.sync_engine, work, progress
                    )
                async with maker() as session:
                    return await session.run_sync(work, progress)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                if progress.writing:
                    exc.add_note(_STATEMENT_LOST_NOTE)
                    raise
                if attempt == 2:
                    raise
                logger.info(
                    "connection lost during a read; retrying it once: %s", exc.orig
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def autocommit_flush_listeners(self) -> bool:
        """Whether the autocommit sessions' class has flush listeners, which the
        one-statement get_or_create would not run."""
        maker = self.autocommit_sessionmaker
        sync_class = (maker.kw.get("sync_session_class") if maker else None) or Session
        return _fast_insert.has_flush_listeners(sync_class)

    async def run_write(self, work: Callable[[AsyncSession], Awaitable[_R]]) -> _R:
        """Run *work* (which must flush) in a short transaction of its own and commit.

        Two failures mean that nothing was written, so *work* runs again:

        - the connection was found dead *before* COMMIT was sent: once more, on
          a fresh connection;
        - the server aborted the whole transaction, a deadlock (InnoDB 1213,
          PostgreSQL 40P01) or a serialization failure (40001): up to
          :data:`WRITE_RERUNS` more times. InnoDB deadlocks on a unique index
          when several callers insert the same key and the first one rolls back
          (for instance because it was cancelled).

        A connection lost *during* COMMIT is raised, with a note that the outcome
        is unknown.
        """
        reconnected = False
        reruns = 0
        while True:
            async with self.sessionmaker() as session:
                try:
                    result = await work(session)
                except DBAPIError as exc:
                    if exc.connection_invalidated and not reconnected:
                        reconnected = True
                        logger.info(
                            "connection lost before COMMIT; retrying once: %s", exc.orig
                        )
                        continue
                    if not self._may_rerun(exc, reruns):
                        raise
                    reruns += 1
                    continue
                try:
                    await session.commit()
                except DBAPIError as exc:
                    if exc.connection_invalidated:
                        exc.add_note(_COMMIT_LOST_NOTE)
                        raise
                    if not self._may_rerun(exc, reruns):
                        raise
                    reruns += 1
                    continue
                return result

    def _may_rerun(self, exc: DBAPIError, reruns: int) -> bool:
        if reruns >= WRITE_RERUNS or not _dialects.transaction_must_rerun(
            exc, self.backend
        ):
            return False
        logger.info(
            "the server aborted the transaction; rerunning it (%d of %d): %s",
            reruns + 1,
            WRITE_RERUNS,
            exc.orig,
        )
        return True

    @asynccontextmanager
    async def session(self) -> AsyncGenerator[AsyncSession]:
        """Open a session that manager calls inside the block use.

        The block owns the transaction: it commits when the block exits normally
        and rolls back when it raises (or is cancelled). Manager calls inside only
        flush. Tasks started inside the block share the session; their manager
        calls are serialised.
        """
        async with self.ambient_session() as session:
            yield session
            await session.commit()

    @asynccontextmanager
    async def ambient_session(self) -> AsyncGenerator[AsyncSession]:
        """Open a session, make it the ambient one, and close it at the end.

        Unlike :meth:`session` it commits nothing: whatever is not committed by
        the caller is rolled back when the block ends. For integrations that
        decide themselves when to commit (``SessionMiddleware``).
        """
        session = self.sessionmaker()
        token = enter_session(session)
        try:
            yield session
        finally:
            leave_session(token)
            # close() rolls back whatever is still open and returns the connection.
            await shielded(session.close())


def bound_database(model: type[Any]) -> Database | None:
    """Return the Database that *model* (or one of its bases) is bound to."""
    db: Database | None = getattr(model, _BINDING_ATTR, None)
    return db


def own_binding(base: type[Any]) -> Database | None:
    """Return the Database bound to *base* itself (not inherited), if any."""
    db: Database | None = vars(base).get(_BINDING_ATTR)
    return db


def set_binding(base: type[Any], db: Database | None) -> None:
    """Bind *base* to *db*, or remove its own binding when *db* is None."""
    if db is not None:
        type.__setattr__(base, _BINDING_ATTR, db)
    elif _BINDING_ATTR in vars(base):
        type.__delattr__(base, _BINDING_ATTR)

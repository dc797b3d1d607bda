"""Database: one engine, the models bound to it, and ``session()`` blocks.

How its autocommit calls run (retries, reruns, notes) is the policy of
:mod:`._execution`; what differs per backend comes from :mod:`._dialects`.
"""

from __future__ import annotations

import asyncio
import copy
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool

from . import _dialects
from ._engines import EngineSet, LoopEngine
from ._execution import (
    COMMIT_LOST_NOTE,
    Executor,
    Progress,
    logger,
    rerun_delay,
    transaction_must_rerun,
)
from ._pool import FairAsyncQueuePool
from ._replicas import UNAVAILABLE, ReplicaSet
from .exceptions import ConfigurationError, TransactionManagementError
from .session import current_session, enter_session, leave_session, lifetime

_R = TypeVar("_R")

_BINDING_ATTR: Final = "__sqlalchemy_objects_database__"

#: Set to "0" to turn get_or_create's one-statement path off by default.
FAST_PATH_ENV: Final = "SQLALCHEMY_OBJECTS_FAST_PATH"


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
        pgbouncer: A transaction-mode pooler (PgBouncer ``pool_mode=transaction``)
            sits between the application and PostgreSQL: no named prepared
            statement outlives a statement (docs/deployments.md). None (the
            default) reads ``?pgbouncer=true`` in the URL, as other tools spell
            it; the parameter is removed before the URL reaches the driver.
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
        pgbouncer: bool | None = None,
        replicas: Sequence[str | URL] = (),
        read_your_writes: float = 2.0,
        **engine_options: Any,
    ) -> None:
        raw = (
            url
            if url is not None
            else os.environ.get("DATABASE_URL") or _dialects.DEFAULT_URL
        )
        if sqlite_begin not in {"DEFERRED", "IMMEDIATE", "EXCLUSIVE"}:
            raise ConfigurationError(
                "sqlite_begin must be 'DEFERRED', 'IMMEDIATE' or 'EXCLUSIVE', "
                f"not {sqlite_begin!r}"
            )
        self._sqlite_begin: _dialects.SqliteBegin = sqlite_begin
        self._pgbouncer_choice = pgbouncer
        self._engine_options = engine_options
        if isinstance(read_your_writes, bool) or not isinstance(  # pyright: ignore[reportUnnecessaryIsInstance]
            read_your_writes, int | float
        ):
            raise ConfigurationError(
                f"read_your_writes takes seconds (a number), not {read_your_writes!r}"
            )
        if read_your_writes < 0:
            raise ConfigurationError(
                f"read_your_writes must be >= 0 seconds, not {read_your_writes!r}"
            )
        if isinstance(replicas, str | URL):
            raise ConfigurationError(
                "replicas takes a list of URLs: Database(url, replicas=[replica_url])"
            )
        self._replica_urls = list(replicas)
        self._read_your_writes = float(read_your_writes)
        self._configure(raw, engine_options)
        #: The backend the engine options were given for.
        self._options_backend = self.url.get_backend_name()
        self._bases: list[type[Any]] = []
        if fast_get_or_create is None:
            fast_get_or_create = os.environ.get(FAST_PATH_ENV, "1") != "0"
        #: get_or_create's one-statement miss path on PostgreSQL.
        self.fast_get_or_create: bool = fast_get_or_create

    def _configure(self, raw: str | URL, engine_options: dict[str, Any]) -> None:
        """Set up everything that follows from the URL (its backend's facts,
        the engine options, a fresh set of engines)."""
        url_value, from_url = _dialects.pop_pgbouncer(_dialects.normalise_url(raw))
        self._raw_url = raw
        pgbouncer = self._pgbouncer_choice
        #: A transaction-mode pooler (PgBouncer) sits between us and the server.
        self.pgbouncer: bool = bool(from_url if pgbouncer is None else pgbouncer)
        self.url: URL = url_value
        #: The backend's facts (what differs between PostgreSQL, MySQL, SQLite).
        self.facts: _dialects.Backend = _dialects.backend_named(
            self.url.get_backend_name()
        )
        self.backend: str = self.facts.name or self.url.get_backend_name()
        if self.pgbouncer and self.backend != "postgresql":
            raise ConfigurationError(
                f"pgbouncer=True is for PostgreSQL, not {self.backend!r} ({self!r})."
            )
        options = self._options(self.url, engine_options)
        isolation_chosen = "isolation_level" in engine_options
        # An engine per running event loop, none across fork() (_engines.py).
        self._engines = EngineSet(self._maker(self.url, options, isolation_chosen))
        self._primary_view: Database | None = None
        self._replicas: ReplicaSet | None = None
        if self._replica_urls:
            self._replicas = self._replica_set(engine_options)

    def _options(self, url: URL, engine_options: dict[str, Any]) -> dict[str, Any]:
        """This backend's engine defaults for *url*, with the user's options."""
        options = self.facts.engine_defaults(url, pgbouncer=self.pgbouncer)
        for key, value in engine_options.items():
            if key == "connect_args" and key in options:
                # Merge: a user's timeout must not drop our connection factory.
                options[key] = {**options[key], **value}
            else:
                options[key] = value
        if "poolclass" not in options and "pool" not in options:
            # SQLAlchemy's queue pool, but first come first served (_pool).
            try:
                dialect: Any = url.get_dialect()
                plain = dialect.get_pool_class(url)
            except Exception:  # a missing driver: create_async_engine says so
                plain = None
            if plain is AsyncAdaptedQueuePool:
                options["poolclass"] = FairAsyncQueuePool
        return options

    def _maker(
        self, url: URL, options: dict[str, Any], isolation_chosen: bool
    ) -> Callable[[], LoopEngine]:
        facts, sqlite_begin = self.facts, self._sqlite_begin

        def make() -> LoopEngine:
            try:
                engine = create_async_engine(url, **options)
            except ImportError as exc:
                raise _dialects.missing_driver(url, exc) from exc
            facts.install(engine, sqlite_begin)
            return LoopEngine(engine, facts, isolation_chosen)

        return make

    def _replica_set(self, engine_options: dict[str, Any]) -> ReplicaSet:
        makers: list[Callable[[], LoopEngine]] = []
        names: list[str] = []
        for raw in self._replica_urls:
            url, _ = _dialects.pop_pgbouncer(_dialects.normalise_url(raw))
            if url.get_backend_name() != self.url.get_backend_name():
                raise ConfigurationError(
                    f"A replica of {self!r} must be on the same backend, not "
                    f"{url.render_as_string(hide_password=True)!r}."
                )
            options = self._options(url, engine_options)
            makers.append(
                self._maker(url, options, "isolation_level" in engine_options)
            )
            names.append(url.render_as_string(hide_password=True))
        return ReplicaSet(makers, names, self._read_your_writes)

    @property
    def primary(self) -> Database:
        """This Database without its replicas: ``qs.using(db.primary)`` reads
        from the primary whatever the routing would choose. It shares the
        engines (and pools) of this Database; without replicas it is the
        Database itself."""
        if self._replicas is None:
            return self
        view = self._primary_view
        if view is None:
            view = copy.copy(self)
            view._replicas = None
            view._replica_urls = []
            view._primary_view = None
            self._primary_view = view
        return view

    @property
    def replica_urls(self) -> list[URL]:
        """The replicas' URLs (reads outside a session go there)."""
        return [_dialects.normalise_url(u) for u in self._replica_urls]

    def point_at(self, url: str | URL) -> str | URL:
        """Connect to *url* from now on; return the URL used before (as given).

        What the pytest plugin does to an application's Database for a test
        run (and undoes at its end). The engines made before are dropped (call
        :meth:`dispose` first if they hold connections). Engine options given
        to the constructor are used if *url* is on the backend they were given
        for, and left out if not (they may not suit another driver).
        """
        old = self._raw_url
        backend = _dialects.normalise_url(url).get_backend_name()
        same = backend == self._options_backend
        self._configure(url, self._engine_options if same else {})
        return old

    # The running loop's engine and what is bound to it (see _engines.py).

    @property
    def engine(self) -> AsyncEngine:
        """The ``AsyncEngine`` of the running event loop (outside one: the
        engine made with this Database, which the first loop uses)."""
        return self._engines.current().engine

    @property
    def read_engine(self) -> AsyncEngine:
        """The engine reads outside a session use: on SQLite a view of
        :attr:`engine` that begins with ``BEGIN DEFERRED``; elsewhere
        :attr:`engine`."""
        return self._engines.current().read_engine

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        """The sessions of ``session()`` blocks and autocommit writes."""
        return self._engines.current().sessionmaker

    @property
    def read_sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        """The sessions of reads outside a session that need a transaction
        (streaming with ``async for``)."""
        return self._engines.current().read_sessionmaker

    @property
    def autocommit_sessionmaker(self) -> async_sessionmaker[AsyncSession] | None:
        """PostgreSQL sessions without BEGIN (each statement commits by
        itself); None elsewhere."""
        return self._engines.current().autocommit_sessionmaker

    @property
    def quick_read_sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        """The sessions of autocommit reads: on PostgreSQL at the default
        isolation level :attr:`autocommit_sessionmaker`, so a read sends no
        BEGIN/ROLLBACK; elsewhere :attr:`read_sessionmaker`."""
        return self._engines.current().quick_read_sessionmaker

    @property
    def executor(self) -> Executor:
        """How this loop's autocommit calls run: retries, reruns, notes."""
        return self._engines.current().executor

    @property
    def one_statement_get_or_create(self) -> bool:
        """Whether get_or_create may take its one-statement path here: on
        PostgreSQL (the only backend with autocommit sessions), when enabled."""
        return self.fast_get_or_create and self.facts.autocommit_reads

    def sessionmakers(self) -> list[async_sessionmaker[AsyncSession]]:
        """Every sessionmaker this Database opens sessions with in the running
        loop, each once (the pytest plugin binds them all to a test's
        connection)."""
        return self._engines.current().sessionmakers()

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
        """Close every pooled connection of the running loop's engine (call at
        shutdown). Engines of loops that have shut down were disposed then."""
        await self._engines.current().engine.dispose()
        if self._replicas is not None:
            for engines in self._replicas.engines:
                await engines.current().engine.dispose()

    async def run_read(self, work: Callable[[AsyncSession], Awaitable[_R]]) -> _R:
        """Run *work* in a short read transaction of its own (autocommit mode);
        on PostgreSQL, without BEGIN and ROLLBACK (see ``quick_read_sessionmaker``).
        A dead connection is replaced and *work* runs once more
        (``Executor.read``)."""
        return await self.executor.read(work)

    async def run_query_read(self, work: Callable[[AsyncSession], Awaitable[_R]]) -> _R:
        """Run the read *work* of a QuerySet outside a session: on a replica
        when this Database has replicas and the routing picks one (see
        :mod:`._replicas`), else as :meth:`run_read`. A replica that cannot
        answer is skipped for a while and *work* runs on the primary."""
        replicas = self._replicas
        index = None if replicas is None else replicas.pick()
        if replicas is None or index is None:
            return await self.executor.read(work)
        try:
            return await replicas.current(index).executor.read(work)
        except UNAVAILABLE as exc:
            replicas.failed(index, exc)
        return await self.executor.read(work)

    def query_read_sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        """The sessions a streamed QuerySet read outside a session uses: a
        replica's when the routing picks one."""
        replicas = self._replicas
        index = None if replicas is None else replicas.pick()
        if replicas is None or index is None:
            return self.read_sessionmaker
        return replicas.current(index).read_sessionmaker

    def wrote(self) -> None:
        """Note that this task wrote (its reads then go to the primary for
        ``read_your_writes`` seconds); nothing without replicas."""
        if self._replicas is not None:
            self._replicas.wrote()

    async def run_write(self, work: Callable[[AsyncSession], Awaitable[_R]]) -> _R:
        """Run *work* (which must flush) in a short transaction of its own and
        commit; rerun it where the server says nothing was written
        (``Executor.write``)."""
        try:
            return await self.executor.write(work)
        finally:
            self.wrote()

    async def run_autocommit(self, work: Callable[[Any, Progress], _R]) -> _R | None:
        """Run the synchronous *work* on one connection without a transaction
        (PostgreSQL); None at once on other backends
        (``Executor.autocommit``)."""
        try:
            return await self.executor.autocommit(work)
        finally:
            self.wrote()

    async def run_in_transaction(
        self,
        work: Callable[[AsyncSession], Awaitable[_R]],
        retries: int = 3,
        *,
        isolation_level: str | None = None,
    ) -> _R:
        """Run ``await work(session)`` in a transaction of its own and commit;
        run it again when the server aborted the whole transaction.

        *work* runs inside a new ambient session, as in ``async with
        db.session():`` (manager calls in it use the session). When the
        transaction is aborted as a whole -- a serialization failure (40001), a
        deadlock (40P01, MySQL/MariaDB 1213, which is also how Galera reports a
        certification conflict), the connection lost before COMMIT, or a lost
        get_or_create race that a REPEATABLE READ / SERIALIZABLE snapshot
        cannot see past -- it is rolled back and *work* runs again in a new
        transaction, up to *retries* more times, after a random back-off that
        doubles each time. Then the last error is raised, with a note of the
        attempts. Errors of the work's own (a ``ValueError``, a foreign-key
        violation) are raised at once, and a connection lost *during* COMMIT
        too (the outcome is unknown).

        *work* must be safe to run again: it may run several times, so it must
        not have effects outside the database (send mail, charge a card) that
        a rollback cannot undo. Returns what the successful run of *work*
        returned. *isolation_level* sets the transaction's level
        (``"SERIALIZABLE"``...); by default the engine's.
        """
        if current_session() is not None:
            raise TransactionManagementError(
                "run_in_transaction() cannot run inside a session: a rerun must "
                "start a new transaction, and the enclosing one cannot be rolled "
                "back from here. Call it outside `async with db.session():`."
            )
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ValueError(f"retries must be an integer >= 0, not {retries!r}")
        errors: list[str] = []
        attempt = 0
        while True:
            attempt += 1
            committing = False
            try:
                async with self.ambient_session() as session:
                    if isolation_level is not None:
                        await session.connection(
                            execution_options={"isolation_level": isolation_level}
                        )
                    result = await work(session)
                    committing = True
                    await session.commit()
                return result
            except BaseException as exc:
                lost_in_commit = (
                    committing
                    and isinstance(exc, DBAPIError)
                    and exc.connection_invalidated
                )
                if lost_in_commit:
                    exc.add_note(COMMIT_LOST_NOTE)
                    raise
                if not transaction_must_rerun(exc, self.facts):
                    raise
                errors.append(f"{type(exc).__name__}: {getattr(exc, 'orig', exc)}")
                if attempt > retries:
                    exc.add_note(
                        f"sqlalchemy-objects: run_in_transaction() ran the work "
                        f"{attempt} time(s) (retries={retries}); the server aborted "
                        f"every transaction: {'; '.join(errors)}"
                    )
                    raise
                logger.info(
                    "run_in_transaction: the transaction was aborted; rerunning it "
                    "(%d of %d): %s",
                    attempt,
                    retries,
                    errors[-1],
                )
            await asyncio.sleep(rerun_delay(attempt))

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
        # Closing rolls back whatever is still open and returns the connection.
        async with lifetime(self.sessionmaker()) as session:
            token = enter_session(session)
            try:
                yield session
            finally:
                leave_session(token)
                self.wrote()


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

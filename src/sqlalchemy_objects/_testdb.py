"""The pytest plugin's test database: made for the run, never the app's.

pytest-django's safety model. The URL the user configures names a *server*
and a database name; the tests run on a database of their own next to it:

- PostgreSQL and MySQL/MariaDB: ``test_<name>`` on the same server (with
  ``_<worker>`` appended under pytest-xdist: ``test_app_gw0``), created at the
  start of the run and dropped at its end. ``--reuse-db`` keeps it between
  runs; ``--create-db`` makes a new one even then.
- SQLite: a new file in pytest's temporary directory, whatever file the
  application uses.

A database the plugin made holds a marker table. The plugin drops a database
only if it holds the marker (or is empty), and empties tables only in the
database it made for this run: anything else raises a UsageError-style
:class:`UnsafeDatabase` naming the database, before any SQL that could lose
data is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from pathlib import Path
from typing import Final, TypeVar

from sqlalchemy import Column, MetaData, String, Table, inspect, select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from ._dialects import normalise_url
from .exceptions import ConfigurationError
from .session import shielded

#: The table that says "sqlalchemy_objects.testing made this database".
MARKER: Final = "_sqlalchemy_objects_test_database"
_MARKER_TEXT: Final = "created by sqlalchemy_objects.testing; dropped after the run"

_T = TypeVar("_T")

_marker = Table(MARKER, MetaData(), Column("note", String(100)))


class UnsafeDatabase(ConfigurationError):
    """The plugin was about to drop or empty a database it did not make."""


def shown(url: URL) -> str:
    """*url* as error messages show it (no password)."""
    return url.render_as_string(hide_password=True)


def url_for_tests(configured: str | URL, *, worker: str | None, tmp: Path) -> URL:
    """The URL of the test database that belongs to the *configured* one.

    *worker* is pytest-xdist's worker id (``gw0``), None without xdist; *tmp*
    a directory of this run for SQLite's file.
    """
    url = normalise_url(configured)
    if url.get_backend_name() == "sqlite":
        return url.set(database=str(tmp / "test.sqlite3"))
    name = f"test_{url.database or 'sqlalchemy_objects'}"
    if worker:
        name = f"{name}_{worker}"
    return url.set(database=name)


def _server(url: URL) -> URL:
    """A URL for server-level statements (CREATE/DROP DATABASE)."""
    if url.get_backend_name() == "postgresql":
        return url.set(database="postgres")
    # (URL.set() takes None for "unchanged".)
    return URL.create(
        url.drivername,
        username=url.username,
        password=url.password,
        host=url.host,
        port=url.port,
        query=url.query,
    )


async def _tables(url: URL) -> list[str] | None:
    """The tables of the database at *url*; None if it does not exist."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            names: list[str] = await conn.run_sync(
                lambda sync: inspect(sync).get_table_names()
            )
            return names
    finally:
        await engine.dispose()


async def _exists(conn: AsyncConnection, name: str) -> bool:
    """Whether the database *name* exists on *conn*'s server."""
    if conn.dialect.name == "postgresql":
        query = text("SELECT 1 FROM pg_database WHERE datname = :name")
    else:
        query = text(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"
        )
    return (await conn.execute(query, {"name": name})).first() is not None


async def _server_statement(
    url: URL, make: Callable[[AsyncConnection, str], Awaitable[_T]]
) -> _T:
    """Run ``make(conn, database_name)`` on the server of *url* in autocommit
    mode."""
    engine = create_async_engine(
        _server(url), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as conn:
            return await make(conn, str(url.database))
    finally:
        await engine.dispose()


def _quoted(conn: AsyncConnection, name: str) -> str:
    """*name* as an SQL identifier (quoted by the dialect's rules)."""
    return str(conn.dialect.identifier_preparer.quote_identifier(name))


async def check_ours(url: URL) -> list[str] | None:
    """Raise :class:`UnsafeDatabase` unless the database at *url* is missing,
    empty, or marked as made by the plugin; return its tables (None: missing)."""
    if url.get_backend_name() == "sqlite":
        if not _sqlite_files(url, remove=False):
            return None
    elif not await _server_statement(url, _exists):
        return None
    tables = await _tables(url)
    if tables and MARKER not in tables:
        raise UnsafeDatabase(
            f"sqlalchemy_objects.testing: the database {shown(url)} already exists "
            f"and was not made by this plugin (it holds {len(tables)} table(s), "
            f"e.g. {sorted(tables)[0]!r}, and no {MARKER} table). Nothing was "
            "dropped. Drop it yourself if it is a leftover, or point --objects-url "
            "at another database name."
        )
    return tables


async def create(url: URL, *, reuse: bool) -> bool:
    """Make the test database at *url* (PostgreSQL/MySQL: on its server).

    An existing database is dropped and made again, or kept when *reuse*;
    either only if :func:`check_ours` allows. Return whether it was kept.
    """
    tables = await check_ours(url)
    if tables is not None and reuse:
        await _mark(url)
        return True
    if tables is not None:
        await drop(url)
    if url.get_backend_name() != "sqlite":

        async def make(conn: AsyncConnection, name: str) -> None:
            await conn.execute(text(f"CREATE DATABASE {_quoted(conn, name)}"))

        await _server_statement(url, make)
    await _mark(url)
    return False


async def _mark(url: URL) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_marker.metadata.create_all)
            if (await conn.execute(select(_marker.c.note))).first() is None:
                await conn.execute(_marker.insert().values(note=_MARKER_TEXT))
    finally:
        await engine.dispose()


async def drop(url: URL) -> None:
    """Drop the test database at *url*, after :func:`check_ours` allowed it."""
    if await check_ours(url) is None:
        return
    if url.get_backend_name() == "sqlite":
        _sqlite_files(url, remove=True)
        return

    async def make(conn: AsyncConnection, name: str) -> None:
        force = " WITH (FORCE)" if conn.dialect.name == "postgresql" else ""
        await conn.execute(
            text(f"DROP DATABASE IF EXISTS {_quoted(conn, name)}{force}")
        )

    await _server_statement(url, make)


def _sqlite_files(url: URL, *, remove: bool) -> bool:
    """Whether the SQLite file of *url* exists; with *remove*, delete it and
    its journal files."""
    path = Path(str(url.database))
    found = path.exists()
    if remove:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return found


def refuse_unless(url: URL, made: URL | None) -> None:
    """Raise :class:`UnsafeDatabase` unless *url* is the database the plugin
    made for this run (*made*): tables are emptied only there."""
    if made is None or url.get_backend_name() != made.get_backend_name():
        ours = False
    else:
        ours = (url.host, url.port, url.database) == (
            made.host,
            made.port,
            made.database,
        )
    if not ours:
        raise UnsafeDatabase(
            f"sqlalchemy_objects.testing: refusing to empty the tables of "
            f"{shown(url)}: the plugin made {shown(made) if made else 'no database'} "
            "for this run and empties tables only there. Did something point the "
            "Database at another URL during the test?"
        )


# One connection, many sessions: objects_db's queue.


class _Turn:
    """A session's hold on the test connection; sessions opened by tasks it
    started queue on ``children`` (their savepoints nest inside its own)."""

    __slots__ = ("children", "gate")

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.children = asyncio.Lock()


_turn: ContextVar[_Turn | None] = ContextVar(
    "sqlalchemy_objects_test_turn", default=None
)


class Gate:
    """Sessions that share objects_db's one connection take turns.

    Each session there is a SAVEPOINT, and savepoints must end in the reverse
    order they began: two sessions interleaved (gathered autocommit calls, or
    ``db.session()`` blocks in sibling tasks) would release each other's.
    So a session waits until the one before it has ended. A session opened
    while another is open in the same task, or in a task that one started,
    nests inside it instead of waiting for it (which could never happen).
    """

    def __init__(self) -> None:
        self.root = asyncio.Lock()

    async def enter(self) -> tuple[asyncio.Lock, _Turn, Token[_Turn | None]]:
        outer = _turn.get()
        lock = outer.children if outer is not None and outer.gate is self else self.root
        await lock.acquire()
        turn = _Turn(self)
        return lock, turn, _turn.set(turn)

    @staticmethod
    async def leave(held: tuple[asyncio.Lock, _Turn, Token[_Turn | None]]) -> None:
        lock, turn, token = held
        try:
            _turn.reset(token)
        except ValueError:  # pragma: no cover - left in another context
            _turn.set(None)
        # Sessions of tasks this one started end first (their savepoints are
        # inside this one's).
        async with turn.children:
            pass
        lock.release()


class GatedSession(AsyncSession):
    """objects_db's sessions: an ``AsyncSession`` that takes its turn on the
    test connection for the time of its ``async with`` block."""

    gate: Gate | None = None

    async def __aenter__(self) -> GatedSession:
        gate = type(self).gate
        if gate is not None:
            self.info["sqlalchemy_objects.turn"] = await gate.enter()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        held = self.info.pop("sqlalchemy_objects.turn", None)
        try:
            await shielded(self.close())
        finally:
            if held is not None:
                await Gate.leave(held)


def gated_session_class(gate: Gate) -> type[GatedSession]:
    """A GatedSession class of *gate* (one per test)."""
    return type("GatedSession", (GatedSession,), {"gate": gate})

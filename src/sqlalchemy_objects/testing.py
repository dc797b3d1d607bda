"""pytest fixtures for your own test suite.

Enable the plugin in your ``conftest.py`` and say which declarative base holds
your models::

    pytest_plugins = ["sqlalchemy_objects.testing"]

    @pytest.fixture(scope="session")
    def objects_base():
        return Base

Then, in async tests (the plugin needs pytest-asyncio: install the ``testing``
extra):

- ``objects_db``: a :class:`~sqlalchemy_objects.Database` bound to your base,
  whose every session (``db.session()``, autocommit calls, ``using(db)``) runs
  inside one transaction on one connection that is rolled back when the test
  ends, even if the code under test commits (its commits release savepoints).
  Fast, and tests never see each other's rows.
- ``objects_database``: override it to return your application's own
  Database (the one its FastAPI middleware uses); the two fixtures above then
  run through that object.
- ``objects_db_commit``: a Database that really commits, for tests that need
  several connections (races, ``asyncio.gather`` of autocommit calls,
  separate processes). Every table of the base is emptied after the test.

The database comes from ``--objects-url``, else the ``sqlalchemy_objects_url``
ini option, else ``DATABASE_URL``, else a SQLite file in pytest's temporary
directory. The tables are created once per test run (dropped first, so point
it at a database meant for tests).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, Iterable

import pytest
import pytest_asyncio
from sqlalchemy import delete
from sqlalchemy.orm import DeclarativeBase

from .database import Database, own_binding, set_binding
from .session import shielded

__all__ = [
    "objects_base",
    "objects_database",
    "objects_db",
    "objects_db_commit",
    "objects_schema",
    "objects_url",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sqlalchemy-objects")
    group.addoption(
        "--objects-url",
        dest="objects_url",
        default=None,
        help="database URL for the objects_db fixtures (default: DATABASE_URL, "
        "then a temporary SQLite file)",
    )
    parser.addini(
        "sqlalchemy_objects_url", "database URL for the objects_db fixtures", default=""
    )


@pytest.fixture(scope="session")
def objects_base() -> type[DeclarativeBase] | Iterable[type[DeclarativeBase]]:
    """Override in your conftest.py: return your declarative base (or several)."""
    raise pytest.UsageError(
        "sqlalchemy_objects.testing needs to know your models: define a "
        "session-scoped fixture named objects_base in conftest.py that returns "
        "your declarative base class (the one that mixes in ManagerMixin)."
    )


@pytest.fixture(scope="session")
def objects_database() -> Database | None:
    """Override to return your application's own Database (the one its FastAPI
    middleware or workers use): the fixtures then run through that object, so the
    code under test and the test share the rolled-back transaction."""
    return None


@pytest.fixture(scope="session")
def objects_url(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    objects_database: Database | None,
) -> str:
    """The database URL the fixtures use for this run."""
    if objects_database is not None:
        return objects_database.url.render_as_string(hide_password=False)
    url: str | None = request.config.getoption("objects_url")
    url = url or str(request.config.getini("sqlalchemy_objects_url")) or None
    url = url or os.environ.get("DATABASE_URL")
    if not url:
        path = tmp_path_factory.mktemp("sqlalchemy_objects") / "test.sqlite3"
        url = f"sqlite+aiosqlite:///{path}"
    return url


def _bases(
    base: type[DeclarativeBase] | Iterable[type[DeclarativeBase]],
) -> list[type[DeclarativeBase]]:
    return [base] if isinstance(base, type) else list(base)


@pytest.fixture(scope="session")
def objects_schema(
    objects_url: str,
    objects_base: type[DeclarativeBase] | Iterable[type[DeclarativeBase]],
) -> str:
    """Drop and create the tables once per run (in a loop of its own)."""

    async def create() -> None:
        db = Database(objects_url)
        for base in _bases(objects_base):
            db.bind(base)
        try:
            await db.drop_all()
            await db.create_all()
        finally:
            await db.dispose()
            for base in _bases(objects_base):
                set_binding(base, None)

    asyncio.run(create())
    return objects_url


class _Binding:
    """Bind bases to a Database for one test; restore what was there before."""

    def __init__(self, db: Database, bases: list[type[DeclarativeBase]]) -> None:
        self.bases = bases
        self.before = {base: own_binding(base) for base in bases}
        for base in bases:
            db.bind(base)

    def restore(self) -> None:
        for base, previous in self.before.items():
            set_binding(base, previous)


@pytest_asyncio.fixture
async def objects_db(
    objects_schema: str,
    objects_base: type[DeclarativeBase] | Iterable[type[DeclarativeBase]],
    objects_database: Database | None,
) -> AsyncGenerator[Database]:
    """A Database whose work is rolled back at the end of the test."""
    db = objects_database or Database(objects_schema)
    connection = await db.engine.connect()
    outer = await connection.begin()
    makers = db.sessionmakers()
    saved = [dict(maker.kw) for maker in makers]
    # Every session of this Database joins the test's transaction; its commits
    # become savepoint releases, its rollbacks savepoint rollbacks.
    for maker in makers:
        maker.configure(bind=connection, join_transaction_mode="create_savepoint")
    binding = _Binding(db, _bases(objects_base))
    try:
        yield db
    finally:
        binding.restore()
        for maker, kw in zip(makers, saved, strict=True):
            maker.kw.clear()
            maker.kw.update(kw)
        await shielded(outer.rollback())
        await shielded(connection.close())
        # Pooled connections belong to this test's event loop: close them here.
        await shielded(db.dispose())


@pytest_asyncio.fixture
async def objects_db_commit(
    objects_schema: str,
    objects_base: type[DeclarativeBase] | Iterable[type[DeclarativeBase]],
    objects_database: Database | None,
) -> AsyncGenerator[Database]:
    """A Database that really commits; every table is emptied afterwards."""
    db = objects_database or Database(objects_schema)
    bases = _bases(objects_base)
    binding = _Binding(db, bases)
    try:
        yield db
    finally:
        binding.restore()
        try:
            async with db.engine.begin() as conn:
                for base in bases:
                    for table in reversed(base.metadata.sorted_tables):
                        await conn.execute(delete(table))
        finally:
            await db.dispose()

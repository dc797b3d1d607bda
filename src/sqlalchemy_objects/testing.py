"""pytest fixtures for your own test suite.

Enable the plugin in your ``conftest.py`` and say which declarative base holds
your models::

    pytest_plugins = ["sqlalchemy_objects.testing"]

    @pytest.fixture(scope="session")
    def objects_base():
        return Base

The tests never run on your application's database. As pytest-django does,
the plugin makes a test database for the run next to the one you configure
and drops it at the end: on PostgreSQL and MySQL/MariaDB ``test_<name>`` on
the same server (``test_<name>_gw0``... per pytest-xdist worker), on SQLite a
new file in pytest's temporary directory. ``--reuse-db`` keeps it between runs
(and reuses it; new tables are created, existing ones are not altered),
``--create-db`` makes it anew even with ``--reuse-db``. A database of that
name that the plugin did not make (it holds tables but not the plugin's
marker table) is never dropped: the run stops with an error naming it.

The configured database comes from ``--objects-url``, else the
``sqlalchemy_objects_url`` ini option, else the URL of the Database your
``objects_database`` fixture returns, else ``DATABASE_URL``, else the
embedded SQLite default. Only its server and name are used; it may not exist.

Then, in async tests (the plugin needs pytest-asyncio: install the ``testing``
extra):

- ``objects_db``: a :class:`~sqlalchemy_objects.Database` bound to your base,
  whose every session (``db.session()``, autocommit calls, ``using(db)``) runs
  inside one transaction on one connection that is rolled back when the test
  ends, even if the code under test commits (its commits release savepoints).
  Sessions there take turns: gathered calls and sessions of sibling tasks run
  one after the other. Fast, and tests never see each other's rows.
- ``objects_database``: override it to return your application's own
  Database (the one its FastAPI middleware uses): the plugin points it at the
  test database for the run (and back afterwards), and the fixtures run
  through that object.
- ``objects_db_commit``: a Database that really commits, for tests that need
  several connections (races, separate processes). Every table of the base is
  emptied after the test (only ever in the test database).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, Generator, Iterable

import pytest
import pytest_asyncio
from sqlalchemy import delete
from sqlalchemy.engine import URL
from sqlalchemy.orm import DeclarativeBase

from . import _testdb
from ._dialects import normalise_url
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


def _add(group: pytest.OptionGroup, *names: str, **kwargs: object) -> None:
    """Add an option unless another plugin (pytest-django) already did: both
    then read the same flag."""
    with contextlib.suppress(ValueError):
        group.addoption(*names, **kwargs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sqlalchemy-objects")
    _add(
        group,
        "--objects-url",
        dest="objects_url",
        default=None,
        help="database URL whose server (and name) the test database is made "
        "from (default: the ini option, objects_database's URL, DATABASE_URL, "
        "embedded SQLite)",
    )
    _add(
        group,
        "--reuse-db",
        action="store_true",
        dest="reuse_db",
        default=False,
        help="keep the test database at the end of the run and reuse it next time",
    )
    _add(
        group,
        "--create-db",
        action="store_true",
        dest="create_db",
        default=False,
        help="make the test database anew, even with --reuse-db",
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
    middleware or workers use): the plugin points it at the test database, so
    the code under test and the test share the rolled-back transaction."""
    return None


def _configured(config: pytest.Config, database: Database | None) -> str | URL:
    url: str | None = config.getoption("objects_url")
    url = url or str(config.getini("sqlalchemy_objects_url")) or None
    if url:
        return url
    if database is not None:
        return database.url
    return os.environ.get("DATABASE_URL") or Database().url


@pytest.fixture(scope="session")
def objects_url(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    objects_database: Database | None,
) -> str:
    """The URL of this run's test database (made by ``objects_schema``)."""
    url = _testdb.url_for_tests(
        _configured(request.config, objects_database),
        worker=os.environ.get("PYTEST_XDIST_WORKER"),
        tmp=tmp_path_factory.mktemp("sqlalchemy_objects"),
    )
    return url.render_as_string(hide_password=False)


def _bases(
    base: type[DeclarativeBase] | Iterable[type[DeclarativeBase]],
) -> list[type[DeclarativeBase]]:
    return [base] if isinstance(base, type) else list(base)


#: The test database this run made (objects_db_commit empties tables only there).
_made: list[URL] = []


@pytest.fixture(scope="session")
def objects_schema(
    request: pytest.FixtureRequest,
    objects_url: str,
    objects_base: type[DeclarativeBase] | Iterable[type[DeclarativeBase]],
    objects_database: Database | None,
) -> Generator[str]:
    """Make the test database and its tables for the run; drop it at the end
    (keep it with ``--reuse-db``). Each step runs in a loop of its own."""
    url = normalise_url(objects_url)
    reuse = bool(request.config.getoption("reuse_db"))
    fresh = bool(request.config.getoption("create_db"))
    bases = _bases(objects_base)

    async def create() -> None:
        await _testdb.create(url, reuse=reuse and not fresh)
        db = Database(url)
        for base in bases:
            db.bind(base)
        try:
            await db.create_all()
        finally:
            await db.dispose()
            for base in bases:
                set_binding(base, None)

    try:
        asyncio.run(create())
    except _testdb.UnsafeDatabase as exc:
        raise pytest.UsageError(str(exc)) from exc
    except Exception as exc:
        exc.add_note(
            f"sqlalchemy_objects.testing: while making the test database "
            f"{_testdb.shown(url)} (from --objects-url, the sqlalchemy_objects_url "
            "ini option, objects_database or DATABASE_URL)"
        )
        raise
    _made.append(url)
    previous = objects_database.point_at(url) if objects_database is not None else None
    try:
        yield objects_url
    finally:
        if objects_database is not None and previous is not None:
            objects_database.point_at(previous)
        _made.remove(url)
        if not reuse:
            asyncio.run(_testdb.drop(url))


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
    # They take turns on the connection (see _testdb.Gate).
    classes = [maker.class_ for maker in makers]
    session_class = _testdb.gated_session_class(_testdb.Gate())
    for maker in makers:
        maker.configure(bind=connection, join_transaction_mode="create_savepoint")
        maker.class_ = session_class
    binding = _Binding(db, _bases(objects_base))
    try:
        yield db
    finally:
        binding.restore()
        for maker, kw, class_ in zip(makers, saved, classes, strict=True):
            maker.kw.clear()
            maker.kw.update(kw)
            maker.class_ = class_
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
            _testdb.refuse_unless(db.url, _made[-1] if _made else None)
            async with db.engine.begin() as conn:
                for base in bases:
                    for table in reversed(base.metadata.sorted_tables):
                        await conn.execute(delete(table))
        finally:
            await db.dispose()

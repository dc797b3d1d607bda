"""sqlalchemy_objects.testing never touches the application's own database.

Each test here runs a user's test suite in a pytest subprocess (pytester) and
then looks at the servers from an independent connection: the app's rows are
still there, the plugin's test database (``test_<name>``) was made and
dropped, one it did not make is refused and left alone, ``--reuse-db`` and
``--create-db`` behave as in pytest-django, and pytest-xdist workers each get
a database of their own.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from sqlalchemy_objects._testdb import MARKER
from tests.conftest import MARIADB_URL, PG_URL
from tests.integration.test_testing_plugin import CONFTEST as PLUGIN_CONFTEST

# pytester restores sys.modules after each test: a driver first imported
# inside a test would be imported again by the next one, and a compiled
# driver (asyncpg's protocol) does not survive that. Import them now.
for _url in (PG_URL, MARIADB_URL):
    create_async_engine(_url)

INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"

SERVERS = [
    pytest.param(PG_URL, id="postgresql", marks=pytest.mark.postgresql),
    pytest.param(MARIADB_URL, id="mariadb", marks=pytest.mark.mariadb),
]

#: A user's project: test_testing_plugin's models, and the app's own Database
#: (APP_URL, or the embedded SQLite default when APP_URL is empty) given to
#: the plugin.
CONFTEST = (
    PLUGIN_CONFTEST
    + """
import os

from sqlalchemy_objects import Database

app_db = Database(os.environ.get("APP_URL") or None)
app_db.bind(Base)


@pytest.fixture(scope="session")
def objects_database():
    return app_db
"""
)

#: Tests that write through both fixtures and record the database they ran on.
TESTS = """
import asyncio
import os

from conftest import Item, app_db


def record(db):
    with open(os.environ["SEEN_FILE"], "a", encoding="utf-8") as seen:
        seen.write(f"{db.url.database}\\n")


async def test_rolled_back_writes(objects_db):
    assert objects_db is app_db
    record(objects_db)
    assert await Item.objects.count() == 0
    async with objects_db.session():
        await Item.objects.create(name="from-test")
    await asyncio.gather(*(Item.objects.get_or_create(name=f"k{i % 2}") for i in range(6)))
    assert await Item.objects.count() == 3


async def test_committed_writes(objects_db_commit):
    record(objects_db_commit)
    assert await Item.objects.count() == 0
    results = await asyncio.gather(*(Item.objects.get_or_create(name="hot") for _ in range(8)))
    assert sum(created for _, created in results) == 1
"""


async def _execute(url: URL | str, *statements: str) -> list[tuple[object, ...]]:
    """Run *statements* in autocommit mode; return the last one's rows."""
    engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    rows: list[tuple[object, ...]] = []
    try:
        async with engine.connect() as conn:
            for statement in statements:
                result = await conn.execute(text(statement))
                rows = [tuple(r) for r in result] if result.returns_rows else []
    finally:
        await engine.dispose()
    return rows


def databases(server: str) -> set[str]:
    """The database names on *server*'s server, from an independent connection."""
    url = make_url(server)
    if url.get_backend_name() == "postgresql":
        rows = asyncio.run(_execute(url, "SELECT datname FROM pg_database"))
    else:
        rows = asyncio.run(_execute(url, "SHOW DATABASES"))
    return {str(name) for (name,) in rows}


def quoted(url: URL, name: str) -> str:
    return f'"{name}"' if url.get_backend_name() == "postgresql" else f"`{name}`"


@pytest.fixture
def app_database(request: pytest.FixtureRequest) -> Iterator[URL]:
    """An application's database on *server* (the param): made here with a
    table the app's model shares and one row in it, dropped afterwards."""
    server = make_url(request.param)
    name = f"objects_app_{uuid.uuid4().hex[:8]}"
    q = quoted(server, name)
    asyncio.run(_execute(server, f"CREATE DATABASE {q}"))
    url = server.set(database=name)
    asyncio.run(
        _execute(
            url,
            "CREATE TABLE plugin_items (id INTEGER PRIMARY KEY, name VARCHAR(50) UNIQUE)",
            "INSERT INTO plugin_items (id, name) VALUES (1, 'dev-row')",
        )
    )
    try:
        yield url
    finally:
        asyncio.run(_execute(server, f"DROP DATABASE IF EXISTS {q}"))


def run_suite(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    app_url: str,
    *args: str,
) -> tuple[pytest.RunResult, list[str]]:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_app=TESTS)
    pytester.makeini(INI)
    seen = pytester.path / "seen.txt"
    seen.unlink(missing_ok=True)
    monkeypatch.setenv("SEEN_FILE", str(seen))
    monkeypatch.setenv("APP_URL", app_url)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=180)
    names = seen.read_text(encoding="utf-8").split() if seen.exists() else []
    return result, names


def test_the_apps_embedded_sqlite_file_is_untouched(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported data loss: ``objects_database`` returns the app's
    ``Database()`` (the embedded ./sqlalchemy_objects.sqlite3) and no
    DATABASE_URL is set. The dev file keeps its row; the tests ran on a
    file of their own."""
    dev = pytester.path / "sqlalchemy_objects.sqlite3"
    with sqlite3.connect(dev) as conn:
        conn.execute(
            "CREATE TABLE plugin_items (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"
        )
        conn.execute("INSERT INTO plugin_items VALUES (1, 'dev-row')")
    conn.close()
    result, names = run_suite(pytester, monkeypatch, "")
    result.assert_outcomes(passed=2)
    with sqlite3.connect(dev) as conn:
        rows = conn.execute("SELECT id, name FROM plugin_items").fetchall()
        tables = {r for (r,) in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert rows == [(1, "dev-row")]
    assert MARKER not in tables
    assert len(names) == 2
    assert all(Path(n).name == "test.sqlite3" and Path(n) != dev for n in names)
    assert all(not Path(n).exists() for n in names)  # dropped at the end


@pytest.mark.parametrize("app_database", SERVERS, indirect=True)
def test_the_apps_server_database_is_untouched(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, app_database: URL
) -> None:
    """The app's Database names a database on PostgreSQL/MariaDB: the tests
    run on ``test_<name>``, made for the run and dropped at its end; the
    app's row is still there and it holds no test row."""
    app_url = app_database.render_as_string(hide_password=False)
    test_name = f"test_{app_database.database}"
    result, names = run_suite(pytester, monkeypatch, app_url)
    result.assert_outcomes(passed=2)
    assert names == [test_name, test_name]
    rows = asyncio.run(_execute(app_database, "SELECT id, name FROM plugin_items"))
    assert rows == [(1, "dev-row")]
    assert test_name not in databases(app_url)


@pytest.mark.parametrize("server", SERVERS)
def test_a_configured_database_that_does_not_exist_is_fine(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    """Only the configured URL's server and name are used: a database name
    that does not exist yet gives a test database, not an error per test."""
    missing = f"objects_missing_{uuid.uuid4().hex[:8]}"
    url = make_url(server).set(database=missing).render_as_string(hide_password=False)
    result, names = run_suite(pytester, monkeypatch, "", "--objects-url", url)
    result.assert_outcomes(passed=2)
    assert names == [f"test_{missing}"] * 2
    assert not {missing, f"test_{missing}"} & databases(server)


@pytest.mark.parametrize("server", SERVERS)
def test_a_database_the_plugin_did_not_make_is_never_dropped(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    """``test_<name>`` exists, holds a table and no marker: the run stops
    with an error naming it, and its row survives."""
    base = f"objects_foreign_{uuid.uuid4().hex[:8]}"
    foreign = make_url(server).set(database=f"test_{base}")
    q = quoted(foreign, str(foreign.database))
    asyncio.run(_execute(server, f"CREATE DATABASE {q}"))
    try:
        asyncio.run(
            _execute(
                foreign,
                "CREATE TABLE precious (id INTEGER PRIMARY KEY)",
                "INSERT INTO precious (id) VALUES (7)",
            )
        )
        url = make_url(server).set(database=base).render_as_string(hide_password=False)
        for extra in ([], ["--create-db"], ["--reuse-db"]):
            result, names = run_suite(
                pytester, monkeypatch, "", "--objects-url", url, *extra
            )
            assert result.ret != 0
            assert names == []
            result.stdout.fnmatch_lines(
                [f"*{foreign.database}*already exists and was not made by this plugin*"]
            )
            assert asyncio.run(_execute(foreign, "SELECT id FROM precious")) == [(7,)]
    finally:
        asyncio.run(_execute(server, f"DROP DATABASE IF EXISTS {q}"))


@pytest.mark.parametrize("server", SERVERS)
def test_reuse_db_keeps_the_database_and_create_db_makes_it_anew(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    base = f"objects_reuse_{uuid.uuid4().hex[:8]}"
    url = make_url(server).set(database=base)
    test_db = url.set(database=f"test_{base}")
    configured = url.render_as_string(hide_password=False)
    probe = "CREATE TABLE reuse_probe (id INTEGER PRIMARY KEY)"
    try:
        result, _ = run_suite(
            pytester, monkeypatch, "", "--objects-url", configured, "--reuse-db"
        )
        result.assert_outcomes(passed=2)
        assert test_db.database in databases(server)  # kept
        asyncio.run(_execute(test_db, probe))
        result, _ = run_suite(
            pytester, monkeypatch, "", "--objects-url", configured, "--reuse-db"
        )
        result.assert_outcomes(passed=2)
        tables = asyncio.run(_execute(test_db, tables_query(test_db)))
        assert ("reuse_probe",) in tables  # the same database, reused
        result, _ = run_suite(
            pytester,
            monkeypatch,
            "",
            "--objects-url",
            configured,
            "--reuse-db",
            "--create-db",
        )
        result.assert_outcomes(passed=2)
        tables = asyncio.run(_execute(test_db, tables_query(test_db)))
        assert ("reuse_probe",) not in tables  # made anew, and kept
        assert (MARKER,) in tables
        result, _ = run_suite(pytester, monkeypatch, "", "--objects-url", configured)
        result.assert_outcomes(passed=2)
        assert test_db.database not in databases(server)  # without --reuse-db: dropped
    finally:
        q = quoted(test_db, str(test_db.database))
        asyncio.run(_execute(server, f"DROP DATABASE IF EXISTS {q}"))


def tables_query(url: URL) -> str:
    if url.get_backend_name() == "postgresql":
        return "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    return "SHOW TABLES"


@pytest.mark.parametrize("server", SERVERS)
def test_each_xdist_worker_gets_a_database_of_its_own(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    base = f"objects_xdist_{uuid.uuid4().hex[:8]}"
    configured = (
        make_url(server).set(database=base).render_as_string(hide_password=False)
    )
    result, names = run_suite(
        pytester,
        monkeypatch,
        "",
        "--objects-url",
        configured,
        "-n",
        "2",
        "--dist",
        "each",
    )
    result.assert_outcomes(passed=4)
    assert sorted(names) == sorted([f"test_{base}_gw0"] * 2 + [f"test_{base}_gw1"] * 2)
    assert not {f"test_{base}_gw0", f"test_{base}_gw1"} & databases(server)

"""Backends, the `db` fixture (a fresh schema per test) and statement counting.

Set DATABASE_URL_POSTGRESQL / DATABASE_URL_MARIADB to point the suite at other
servers. Under CI=true a server that cannot be reached fails the test; outside
CI it skips, and the summary says why.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from sqlalchemy_objects import Database, _on_conflict
from tests.models import Base

pytest_plugins = ["pytester"]

PG_URL = os.environ.get(
    "DATABASE_URL_POSTGRESQL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get(
    "DATABASE_URL_MARIADB", "mysql+asyncmy://root@127.0.0.1:3306/test"
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
]
SERVER_BACKENDS = BACKENDS[1:]


def backend_url(backend: str, tmp_path: Path) -> str:
    """Return the URL of *backend* for one test (SQLite: a file under tmp_path)."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
    return PG_URL if backend == "postgresql" else MARIADB_URL


async def open_database(backend: str, tmp_path: Path, **options: Any) -> Database:
    """Return a Database on *backend* with empty tables, bound to the test models."""
    db = Database(backend_url(backend, tmp_path), **options)
    db.bind(Base)
    try:
        await db.drop_all()
        await db.create_all()
    except OSError as exc:  # connection refused and friends
        await db.dispose()
        message = f"{backend} is not reachable at {db.url}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return db


@pytest.fixture(autouse=True)
def _fresh_miss_shares() -> None:
    """Each test starts with no lookup shape in get_or_create's miss mode
    (``_on_conflict.expects_miss``): which statements a test sees must not
    depend on the tests that ran before it."""
    _on_conflict.reset_outcomes()


@pytest.fixture(params=BACKENDS, name="backend")
def _backend(request: pytest.FixtureRequest) -> str:
    """The backend name of this test run."""
    param: str = request.param
    return param


@pytest.fixture(name="db")
async def _db(backend: str, tmp_path: Path) -> AsyncGenerator[Database]:
    """A Database on a fresh schema; dropped again at the end of the test."""
    db = await open_database(backend, tmp_path, pool_size=40, max_overflow=10)
    yield db
    try:
        assert db.engine.pool.checkedout() == 0, "a connection was left checked out"  # type: ignore[attr-defined]
    finally:
        await db.dispose()  # a test may have left dead connections in the pool
        await db.drop_all()
        await db.dispose()


class StatementLog:
    """Every SQL statement the engine sent, in order."""

    def __init__(self, backend: str = "") -> None:
        self.statements: list[str] = []
        self.backend = backend

    def __len__(self) -> int:
        return len(self.statements)

    def count(self, predicate: Callable[[str], bool]) -> int:
        return sum(1 for s in self.statements if predicate(s))

    def selects_on(self, table: str) -> int:
        return self.count(
            lambda s: s.lstrip().upper().startswith("SELECT") and table in s
        )


@pytest.fixture(name="sql")
def _sql(db: Database) -> StatementLog:
    """Record the statements `db` sends from now on."""
    log = StatementLog(db.backend)

    def _record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        log.statements.append(statement)

    # db.read_engine is an option view of db.engine: it runs db.engine's listeners.
    event.listen(db.engine.sync_engine, "before_cursor_execute", _record)
    return log


async def open_transactions(db: Database) -> int:
    """Count transactions left open on the server by anyone (this suite runs alone)."""
    if db.backend == "postgresql":
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
        )
    elif db.backend == "mysql":
        query = (
            "SELECT count(*) FROM information_schema.innodb_trx "
            "WHERE trx_mysql_thread_id <> connection_id()"
        )
    else:
        # SQLite keeps no server: a held write lock is what an open transaction
        # leaves behind, so try to take it without waiting.
        import sqlite3

        path = db.url.database
        assert path is not None
        raw = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("ROLLBACK")
            return 0
        except sqlite3.OperationalError:
            return 1
        finally:
            raw.close()
    probe = Database(db.url)
    try:
        async with probe.engine.connect() as conn:
            return int((await conn.execute(text(query))).scalar_one())
    finally:
        await probe.dispose()


async def settle() -> None:
    """Let cancelled tasks and shielded cleanups finish."""
    for _ in range(5):
        await asyncio.sleep(0.05)

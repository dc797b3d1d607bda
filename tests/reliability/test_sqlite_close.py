"""Closing a SQLite connection mid-transaction releases the write lock at once.

This is the root cause of the SQLite cancellation-storm hang found on
2026-11-22: a cancelled task made SQLAlchemy close its connection while a
transaction was open and a statement unfinished. ``sqlite3_close_v2`` then
leaves a "zombie" that keeps the transaction, and the write lock, until its
statements are finalized, which for CPython's sqlite3 module (a connection in
a reference cycle with its statement cache) waits for the cyclic garbage
collector. Every other writer sat in the busy handler meanwhile.
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sqlalchemy_objects import Database
from sqlalchemy_objects._dialects import RollbackOnCloseConnection


def _unfinished_select(conn: sqlite3.Connection) -> object:
    cursor = conn.execute("SELECT x FROM t")
    cursor.fetchone()  # one of two rows: the statement is still running
    return cursor


def _unfinished_returning(conn: sqlite3.Connection) -> object:
    return conn.execute("INSERT INTO t VALUES (3) RETURNING x")  # never fetched


@pytest.fixture(name="path")
def _path(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "close.sqlite3"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode = WAL")
    setup.execute("CREATE TABLE t (x INTEGER)")
    setup.close()
    gc.disable()  # the bug hides behind any collection that happens to run
    try:
        yield path
    finally:
        gc.enable()


def _lock_is_free(path: Path) -> bool:
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


def _close_mid_transaction(
    path: Path,
    factory: type[sqlite3.Connection],
    unfinished: Callable[[sqlite3.Connection], object],
) -> object:
    conn = sqlite3.connect(path, isolation_level=None, factory=factory)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.execute("INSERT INTO t VALUES (2)")
    cursor = unfinished(conn)
    conn.close()
    return cursor  # kept alive, as a traceback in a reference cycle keeps it


@pytest.mark.parametrize("unfinished", [_unfinished_select, _unfinished_returning])
def test_plain_sqlite3_keeps_the_lock_after_close(
    path: Path, unfinished: Callable[[sqlite3.Connection], object]
) -> None:
    """The baseline this fix exists for (CPython 3.11/3.12 behaviour)."""
    cursor = _close_mid_transaction(path, sqlite3.Connection, unfinished)
    assert not _lock_is_free(path)
    del cursor
    gc.collect()
    assert _lock_is_free(path)


@pytest.mark.parametrize("unfinished", [_unfinished_select, _unfinished_returning])
def test_our_connection_releases_the_lock_on_close(
    path: Path, unfinished: Callable[[sqlite3.Connection], object]
) -> None:
    cursor = _close_mid_transaction(path, RollbackOnCloseConnection, unfinished)
    assert _lock_is_free(path)
    # The transaction was rolled back, not committed.
    check = sqlite3.connect(path)
    try:
        assert check.execute("SELECT count(*) FROM t").fetchone() == (0,)
    finally:
        check.close()
    del cursor


def test_closing_twice_is_harmless(path: Path) -> None:
    conn = sqlite3.connect(path, factory=RollbackOnCloseConnection)
    conn.close()
    conn.close()
    assert _lock_is_free(path)


async def test_database_uses_it_and_keeps_user_connect_args(tmp_path: Path) -> None:
    """Database's SQLite engines open RollbackOnCloseConnection, and a user's own
    connect_args are merged with the defaults instead of dropping them."""
    db = Database(
        f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
        connect_args={"timeout": 5},
    )
    try:
        async with db.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            # aiosqlite keeps the sqlite3 connection in _connection.
            sqlite_conn = driver._connection
            assert isinstance(sqlite_conn, RollbackOnCloseConnection)
    finally:
        await db.dispose()

"""The pytest plugin's naming of test databases and its refusal to empty
tables anywhere but in the database it made (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from sqlalchemy_objects import ConfigurationError, Database
from sqlalchemy_objects._testdb import UnsafeDatabase, refuse_unless, url_for_tests


@pytest.mark.parametrize(
    ("configured", "worker", "expected"),
    [
        (
            "postgresql://u:pw@db:5432/myapp",
            None,
            "postgresql+asyncpg://u:pw@db:5432/test_myapp",
        ),
        (
            "postgresql+psycopg://u@db/myapp",
            "gw1",
            "postgresql+psycopg://u@db/test_myapp_gw1",
        ),
        (
            "mysql://root@127.0.0.1/shop",
            None,
            "mysql+asyncmy://root@127.0.0.1/test_shop",
        ),
        (
            "mariadb+aiomysql://root@h/shop",
            "gw0",
            "mariadb+aiomysql://root@h/test_shop_gw0",
        ),
        (
            "mysql://root@127.0.0.1",
            None,
            "mysql+asyncmy://root@127.0.0.1/test_sqlalchemy_objects",
        ),
    ],
)
def test_a_server_database_gets_test_and_its_name(
    configured: str, worker: str | None, expected: str, tmp_path: Path
) -> None:
    url = url_for_tests(configured, worker=worker, tmp=tmp_path)
    assert url.render_as_string(hide_password=False) == expected


@pytest.mark.parametrize(
    "configured",
    [
        "sqlite:///sqlalchemy_objects.sqlite3",
        "sqlite+aiosqlite://",
        "sqlite:////srv/app.db",
    ],
)
def test_sqlite_always_gets_a_file_of_the_run(configured: str, tmp_path: Path) -> None:
    url = url_for_tests(configured, worker="gw3", tmp=tmp_path)
    assert url.database == str(tmp_path / "test.sqlite3")
    assert url.drivername == "sqlite+aiosqlite"


def test_tables_are_emptied_only_in_the_database_made_for_the_run() -> None:
    made = make_url("postgresql+asyncpg://postgres@h:5432/test_app")
    refuse_unless(made, made)
    refuse_unless(make_url("postgresql+asyncpg://other-user@h:5432/test_app"), made)
    for other in (
        "postgresql+asyncpg://postgres@h:5432/app",
        "postgresql+asyncpg://postgres@elsewhere:5432/test_app",
        "mysql+asyncmy://postgres@h:5432/test_app",
    ):
        with pytest.raises(
            UnsafeDatabase, match=r"refusing to empty the tables of .*/(test_)?app"
        ):
            refuse_unless(make_url(other), made)
    with pytest.raises(UnsafeDatabase, match="the plugin made no database"):
        refuse_unless(made, None)
    assert issubclass(UnsafeDatabase, ConfigurationError)


def test_point_at_changes_the_url_and_can_go_back() -> None:
    db = Database("postgresql://postgres@h/app", pool_size=3)
    first = db.engine
    old = db.point_at("postgresql://postgres@h/test_app")
    assert old == "postgresql://postgres@h/app"
    assert db.url.database == "test_app"
    assert db.engine is not first
    assert db.engine.pool.size() == 3  # type: ignore[attr-defined]  # same backend: options kept
    db.point_at("sqlite:///x.sqlite3")  # another backend: its own facts, no pool_size
    assert (db.backend, db.facts.name) == ("sqlite", "sqlite")
    back = db.point_at(old)
    assert back == "sqlite:///x.sqlite3"
    assert db.url.render_as_string() == "postgresql+asyncpg://postgres@h/app"
    assert db.engine.pool.size() == 3  # type: ignore[attr-defined]

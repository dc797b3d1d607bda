"""Run every ```python block of the README and docs/, page by page.

A page's blocks are joined into one script and run in a fresh interpreter, on
each backend: a temporary SQLite file, and on PostgreSQL and MariaDB a database
of its own (``docs_examples``, made anew for every page). Pages run the way
their code would be run, several ``asyncio.run()`` calls on one module-level
Database included. Each ``print(...)`` line must print one line, and a trailing
``# expected`` comment must match it (``...`` at the end: a prefix).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import BACKENDS, MARIADB_URL, PG_URL

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
PRINT = re.compile(r"^\s*print\(.*\)(?:\s+#\s(?P<expected>.*))?$")
#: The database the pages use on the servers (never the suite's own).
DOCS_DATABASE = "docs_examples"


def docs_url(backend: str, tmp_path: Path) -> str:
    """A URL of an empty database on *backend* for one page's examples."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'docs.sqlite3'}"
    server = make_url(PG_URL if backend == "postgresql" else MARIADB_URL)
    drop = f"DROP DATABASE IF EXISTS {DOCS_DATABASE}"
    if backend == "postgresql":
        drop += " WITH (FORCE)"

    async def recreate() -> None:
        admin = create_async_engine(
            server.set(database="postgres" if backend == "postgresql" else None),
            isolation_level="AUTOCOMMIT",
        )
        try:
            async with admin.connect() as conn:
                await conn.execute(text(drop))
                await conn.execute(text(f"CREATE DATABASE {DOCS_DATABASE}"))
        finally:
            await admin.dispose()

    try:
        asyncio.run(recreate())
    except OSError as exc:  # connection refused and friends
        message = f"{backend} is not reachable at {server}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return server.set(database=DOCS_DATABASE).render_as_string(hide_password=False)


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_every_page_with_code_is_collected() -> None:
    """The README and the get_or_create page hold runnable examples."""
    with_code = {p.name for p in PAGES if python_blocks(p)}
    assert {"README.md", "index.md", "sessions.md", "get-or-create.md"} <= with_code


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name
)
def test_examples_run_and_print_what_they_say(
    page: Path, backend: str, tmp_path: Path
) -> None:
    """The examples of *page* run on *backend*, and their prints match the
    documented output."""
    script = "\n\n".join(python_blocks(page))
    env = {**os.environ, "DATABASE_URL": docs_url(backend, tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    expected = [
        m["expected"] for line in script.splitlines() if (m := PRINT.match(line))
    ]
    printed = done.stdout.splitlines()
    assert len(printed) == len(expected), (printed, expected)
    for got, want in zip(printed, expected, strict=True):
        if want is None:
            continue
        if want.endswith("..."):
            assert got.startswith(want[:-3]), (got, want)
        else:
            assert got == want, (got, want)

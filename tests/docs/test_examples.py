"""Run every ```python block of the README and docs/, page by page.

A page's blocks are joined into one script and run in a fresh interpreter on a
temporary SQLite database. Each ``print(...)`` line must print one line, and a
trailing ``# expected`` comment must match it (``...`` at the end: a prefix).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
PRINT = re.compile(r"^\s*print\(.*\)(?:\s+#\s(?P<expected>.*))?$")


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_every_page_with_code_is_collected() -> None:
    """The README and the get_or_create page hold runnable examples."""
    with_code = {p.name for p in PAGES if python_blocks(p)}
    assert {"README.md", "index.md", "sessions.md", "get-or-create.md"} <= with_code


@pytest.mark.parametrize(
    "page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name
)
def test_examples_run_and_print_what_they_say(page: Path, tmp_path: Path) -> None:
    """The examples of *page* run, and their prints match the documented output."""
    script = "\n\n".join(python_blocks(page))
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'docs.sqlite3'}",
    }
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

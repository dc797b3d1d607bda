"""docs/alembic.md, run as written on every backend: ``alembic init -t
async``, the page's env.py and models, autogenerate, upgrade, a
get_or_create on the migrated tables, downgrade."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.docs.test_examples import docs_url

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "alembic.md"
#: A file of the page: a ```py block whose first line is "# <path>".
FILE = re.compile(r"^```py\n# ([\w./]+)\n(.*?)^```", re.S | re.M)
ALEMBIC = Path(sys.executable).parent / "alembic"


def run(*args: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_the_alembic_page(backend: str, tmp_path: Path) -> None:
    files = dict(FILE.findall(PAGE.read_text(encoding="utf-8")))
    assert set(files) == {"migrations/env.py", "myapp.py"}
    url = docs_url(backend, tmp_path)
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(tmp_path)}
    project = tmp_path
    run(str(ALEMBIC), "init", "-t", "async", "migrations", cwd=project, env=env)
    for name, source in files.items():
        (project / name).write_text(source, encoding="utf-8")
    run(
        str(ALEMBIC),
        "revision",
        "--autogenerate",
        "-m",
        "authors and books",
        cwd=project,
        env=env,
    )
    (revision,) = (project / "migrations" / "versions").glob("*.py")
    text = revision.read_text(encoding="utf-8")
    assert "op.create_table('authors'" in text or 'op.create_table("authors"' in text, (
        text
    )
    assert (
        "sa.UniqueConstraint('title')" in text or 'sa.UniqueConstraint("title")' in text
    ), text
    run(str(ALEMBIC), "upgrade", "head", cwd=project, env=env)
    script = (
        "import asyncio\n"
        "from myapp import Author, Book, db\n"
        "async def main():\n"
        "    author, created = await Author.objects.get_or_create(name='ann')\n"
        "    results = await asyncio.gather(*(Book.objects.get_or_create("
        "title='t', defaults={'author_id': author.id}) for _ in range(8)))\n"
        "    print(created, sum(c for _, c in results), await Book.objects.count())\n"
        "    await db.dispose()\n"
        "asyncio.run(main())\n"
    )
    out = run(sys.executable, "-c", script, cwd=project, env=env)
    assert out.split() == ["True", "1", "1"], out
    # The upgrade is recorded; a second autogenerate finds nothing to do.
    run(
        str(ALEMBIC),
        "revision",
        "--autogenerate",
        "-m",
        "nothing",
        cwd=project,
        env=env,
    )
    second = [
        p for p in (project / "migrations" / "versions").glob("*.py") if p != revision
    ]
    assert len(second) == 1
    assert "op.create_table" not in second[0].read_text(encoding="utf-8")
    second[0].unlink()
    run(str(ALEMBIC), "downgrade", "base", cwd=project, env=env)
    names = tables(project, env)
    assert "authors" not in names
    assert "books" not in names


def tables(project: Path, env: dict[str, str]) -> list[str]:
    """The tables of DATABASE_URL's database, from a process of its own."""
    script = (
        "import asyncio\n"
        "from sqlalchemy import inspect\n"
        "from sqlalchemy_objects import Database\n"
        "async def main():\n"
        "    db = Database()\n"
        "    async with db.engine.connect() as conn:\n"
        "        print(*await conn.run_sync(lambda c: inspect(c).get_table_names()))\n"
        "    await db.dispose()\n"
        "asyncio.run(main())\n"
    )
    return run(sys.executable, "-c", script, cwd=project, env=env).split()

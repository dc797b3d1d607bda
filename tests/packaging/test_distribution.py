"""The wheel and sdist that ``python -m build`` makes install and work in a
fresh virtualenv holding only what their extras bring in."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from sqlalchemy_objects import __version__

ROOT = Path(__file__).resolve().parents[2]

DEMO = ROOT / "examples" / "demo.py"


def run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=out)
    return out


def test_wheel_and_sdist_hold_the_package_and_nothing_else(dist: Path) -> None:
    wheel = next(dist.glob("*.whl"))
    sdist = next(dist.glob("*.tar.gz"))
    assert wheel.name == f"sqlalchemy_objects-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "sqlalchemy_objects/py.typed" in names
    assert "sqlalchemy_objects/fastapi.py" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    top = f"sqlalchemy_objects-{__version__}"
    assert f"{top}/src/sqlalchemy_objects/queryset.py" in members
    assert f"{top}/CHANGELOG.md" in members
    assert not [m for m in members if "/.hypothesis" in m or "/.ci/" in m]


@pytest.mark.parametrize("kind", ["whl", "tar.gz"])
def test_installs_in_a_fresh_venv_with_no_extra(
    dist: Path, tmp_path: Path, kind: str
) -> None:
    """Installed with no extra: it imports from site-packages, the demo's
    get_or_create storm works on the embedded SQLite default (aiosqlite is a
    core dependency), no server driver or FastAPI is pulled in, and a URL
    whose driver is missing says which extra to install."""
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    artifact = next(dist.glob(f"*.{kind}"))
    run(python, "-m", "pip", "install", "--quiet", str(artifact), cwd=tmp_path)
    version, location = run(
        python,
        "-c",
        "import sqlalchemy_objects as m; print(m.__version__, m.__file__)",
        cwd=tmp_path,
    ).split()
    assert version == __version__
    assert "site-packages" in location
    # The README's demo (300 concurrent get_or_create calls on 5 keys) runs
    # against the installed package, on the default embedded database.
    demo = run(python, DEMO, cwd=tmp_path)
    assert "rows in table    5" in demo, demo
    assert "created=True     5 " in demo, demo
    assert "exceptions       0" in demo, demo
    assert (tmp_path / "sqlalchemy_objects.sqlite3").exists()
    installed = run(
        python, "-m", "pip", "list", "--format=freeze", cwd=tmp_path
    ).lower()
    assert "aiosqlite" in installed
    for absent in ("fastapi", "asyncpg", "asyncmy", "psycopg", "aiomysql", "pytest"):
        assert absent not in installed, installed
    missing = run(
        python,
        "-c",
        "from sqlalchemy_objects import ConfigurationError, Database\n"
        "for url in ('postgresql://u@h/db', 'mysql://u@h/db', "
        "'postgresql+psycopg://u@h/db', 'mysql+aiomysql://u@h/db'):\n"
        "    try:\n"
        "        Database(url)\n"
        "    except ConfigurationError as exc:\n"
        "        print(exc)\n",
        cwd=tmp_path,
    ).splitlines()
    assert len(missing) == 4, missing
    for line, (package, extra) in zip(
        missing,
        [
            ("asyncpg", "postgresql"),
            ("asyncmy", "mysql"),
            ("psycopg", "psycopg"),
            ("aiomysql", "aiomysql"),
        ],
        strict=True,
    ):
        assert f"needs the {package} driver" in line, line
        assert f'pip install "sqlalchemy-objects[{extra}]"' in line, line


def test_the_readme_install_from_a_checkout_works(tmp_path: Path) -> None:
    """The README's line, ``pip install "<checkout>[postgresql]"``, in a fresh
    venv: the package and asyncpg are installed, and a get_or_create runs."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'pip install "./sqlalchemy-objects[postgresql]"' in readme
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", f"{ROOT}[postgresql]", cwd=tmp_path)
    installed = run(
        python, "-m", "pip", "list", "--format=freeze", cwd=tmp_path
    ).lower()
    assert "asyncpg" in installed
    assert "sqlalchemy-objects" in installed or "sqlalchemy_objects" in installed
    demo = run(python, DEMO, cwd=tmp_path)
    assert "exceptions       0" in demo, demo


def test_make_demo_installs_only_what_the_demo_needs(tmp_path: Path) -> None:
    """``make demo`` in a fresh copy of the project: it installs the package
    with its database drivers and none of the tools (pytest, mypy, mkdocs),
    runs, and the second time has nothing left to install."""
    project = tmp_path / "project"
    files = run(
        "git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=ROOT
    ).split()
    for name in files:
        source = ROOT / name
        if source.is_file():
            target = project / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    out = run("make", "demo", f"PYTHON={sys.executable}", cwd=project)
    assert "exceptions       0" in out, out
    installed = run(
        project / ".venv" / "bin" / "python",
        "-m",
        "pip",
        "list",
        "--format=freeze",
        cwd=project,
    ).lower()
    assert "asyncpg" in installed
    assert "asyncmy" in installed
    for tool in ("pytest", "mypy", "pyright", "mkdocs", "ruff"):
        assert tool not in installed, installed
    again = run("make", "-n", "demo", f"PYTHON={sys.executable}", cwd=project)
    assert "pip" not in again, again
    assert "examples/demo.py" in again


def test_a_new_user_gets_from_pip_install_to_a_passing_fastapi_test(
    dist: Path, tmp_path: Path
) -> None:
    """The path of docs/testing.md, in a fresh venv: install the wheel with the
    extras the docs name (plus httpx, which they ask for), write the page's
    files as they stand, set the ini option the page names, run pytest."""
    from tests.integration.test_testing_plugin import doc_examples

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    wheel = next(dist.glob("*.whl"))
    run(
        python,
        *("-m", "pip", "install", "--quiet"),
        f"{wheel}[sqlite,fastapi,testing]",
        "httpx",
        cwd=tmp_path,
    )
    for number, (files, tests) in enumerate(zip(doc_examples(), (3, 2), strict=True)):
        project = tmp_path / f"project{number}"
        project.mkdir()
        for name, source in files.items():
            (project / name).write_text(source, encoding="utf-8")
        (project / "pytest.ini").write_text(
            "[pytest]\nasyncio_mode = auto\n", encoding="utf-8"
        )
        # The developer's own database (the app's embedded default) holds a
        # row of the table the tests use: the run must leave it as it was.
        dev = project / "sqlalchemy_objects.sqlite3"
        with sqlite3.connect(dev) as conn:
            conn.execute("CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
            conn.execute("INSERT INTO tags VALUES (1, 'dev-row')")
        conn.close()
        env_before = os.environ.pop("DATABASE_URL", None)
        try:
            out = run(
                python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project
            )
        finally:
            if env_before is not None:
                os.environ["DATABASE_URL"] = env_before
        assert f"{tests} passed" in out, out
        assert "failed" not in out, out
        assert "error" not in out.lower(), out
        with sqlite3.connect(dev) as conn:
            rows = conn.execute("SELECT id, name FROM tags").fetchall()
        conn.close()
        assert rows == [(1, "dev-row")]

"""The wheel and sdist that ``python -m build`` makes install and work in a
fresh virtualenv holding only what their extras bring in."""

from __future__ import annotations

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
def test_installs_in_a_fresh_venv_with_one_extra(
    dist: Path, tmp_path: Path, kind: str
) -> None:
    """Installed with only the ``sqlite`` extra: it imports from site-packages,
    the demo's get_or_create storm works, and FastAPI (another extra) is not
    pulled in."""
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    artifact = next(dist.glob(f"*.{kind}"))
    run(python, "-m", "pip", "install", "--quiet", f"{artifact}[sqlite]", cwd=tmp_path)
    version, location = run(
        python,
        "-c",
        "import sqlalchemy_objects as m; print(m.__version__, m.__file__)",
        cwd=tmp_path,
    ).split()
    assert version == __version__
    assert "site-packages" in location
    # The README's demo (300 concurrent get_or_create calls on 5 keys) runs
    # against the installed package.
    demo = run(python, DEMO, cwd=tmp_path)
    assert "rows in table    5" in demo, demo
    assert "created=True     5 " in demo, demo
    assert "exceptions       0" in demo, demo
    installed = run(python, "-m", "pip", "list", "--format=freeze", cwd=tmp_path)
    assert "fastapi" not in installed.lower()
    assert "aiosqlite" in installed.lower()


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
        out = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project)
        assert f"{tests} passed" in out, out
        assert "failed" not in out, out
        assert "error" not in out.lower(), out

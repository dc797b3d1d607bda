"""sqlalchemy_objects.testing, run the way a user runs it: a separate pytest
session (pytester, in a subprocess) with the plugin enabled in conftest.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import MARIADB_URL, PG_URL

#: --objects-url per backend (None: the plugin's own temporary SQLite file).
URLS = [
    pytest.param(None, id="sqlite"),
    pytest.param(PG_URL, id="postgresql", marks=pytest.mark.postgresql),
    pytest.param(MARIADB_URL, id="mariadb", marks=pytest.mark.mariadb),
]
INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"

CONFTEST = """
import pytest
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sqlalchemy_objects import ManagerMixin

pytest_plugins = ["sqlalchemy_objects.testing"]


class Base(ManagerMixin, DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "plugin_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)


@pytest.fixture(scope="session")
def objects_base():
    return Base
"""

TESTS = """
import asyncio

import pytest
from sqlalchemy.exc import IntegrityError

from conftest import Item
from sqlalchemy_objects import Database


async def test_1_commits_are_rolled_back_at_the_end(objects_db):
    async with objects_db.session():
        await Item.objects.create(name="in-block")
    await Item.objects.create(name="autocommit")
    assert await Item.objects.count() == 2


async def test_2_the_next_test_starts_empty(objects_db):
    assert await Item.objects.count() == 0
    item, created = await Item.objects.get_or_create(name="a")
    assert created
    again, created = await Item.objects.get_or_create(name="a")
    assert (again.id, created) == (item.id, False)


async def test_3_a_failed_insert_leaves_the_test_usable(objects_db):
    await Item.objects.create(name="x")
    with pytest.raises(IntegrityError):
        await Item.objects.create(name="x")
    with pytest.raises(ZeroDivisionError):
        async with objects_db.session():
            await Item.objects.create(name="y")
            1 / 0
    assert await Item.objects.values_list("name", flat=True) == ["x"]


async def test_3a_gathered_calls_and_sessions_take_turns(objects_db):
    # Every session here is a savepoint on the test's one connection:
    # gathered autocommit calls and sessions of sibling tasks run one after
    # the other instead of releasing each other's savepoints.
    results = await asyncio.gather(
        *(Item.objects.get_or_create(name=f"k{i % 3}") for i in range(12))
    )
    assert sum(created for _, created in results) == 3

    async def block(i):
        async with objects_db.session():
            await Item.objects.create(name=f"s{i}")
            await asyncio.sleep(0)
            if i == 2:
                raise ValueError("rolled back alone")

    outcomes = await asyncio.gather(*(block(i) for i in range(4)), return_exceptions=True)
    assert [type(o).__name__ for o in outcomes] == ["NoneType", "NoneType", "ValueError", "NoneType"]
    async with objects_db.session():
        await Item.objects.create(name="outer")

        async def child(i):
            async with objects_db.session():  # nests inside the block around it
                await Item.objects.create(name=f"c{i}")

        await asyncio.gather(child(0), child(1))
    names = sorted(await Item.objects.values_list("name", flat=True))
    assert names == ["c0", "c1", "k0", "k1", "k2", "outer", "s0", "s1", "s3"]


async def test_4_commit_fixture_really_commits(objects_db_commit):
    results = await asyncio.gather(
        *(Item.objects.get_or_create(name="hot") for _ in range(8))
    )
    assert sum(created for _, created in results) == 1
    other = Database(objects_db_commit.url)  # another connection sees it
    try:
        assert await Item.objects.using(other).count() == 1
    finally:
        await other.dispose()


async def test_5_commit_fixture_emptied_the_tables(objects_db):
    assert await Item.objects.count() == 0
"""


@pytest.mark.parametrize("url", URLS)
def test_plugin_fixtures(pytester: pytest.Pytester, url: str | None) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_items=TESTS)
    pytester.makeini(INI)
    args = ["-p", "no:cacheprovider", "-v"]
    if url is not None:
        args += ["--objects-url", url]
    result = pytester.runpytest_subprocess(*args, timeout=120)
    result.assert_outcomes(passed=6)


def test_missing_objects_base_is_a_clear_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["sqlalchemy_objects.testing"]\n')
    pytester.makepyfile(
        test_x="async def test_x(objects_db):\n    pass\n",
    )
    pytester.makeini(INI)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        ["*define a session-scoped fixture named objects_base*"]
    )


DOCS = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
#: A file of the page: a ```py block whose first line is "# <file name>".
TITLED_BLOCK = re.compile(r"^```py\n# ([\w.]+)\n(.*?)^```", re.S | re.M)


def doc_examples() -> list[dict[str, str]]:
    """The page's two examples, before and after its FastAPI section:
    {file name: source}."""
    text = DOCS.read_text(encoding="utf-8")
    parts = text.split("\n## Testing a FastAPI app", 1)
    return [dict(TITLED_BLOCK.findall(part)) for part in parts]


@pytest.mark.parametrize("url", URLS)
def test_the_docs_examples_pass(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, url: str | None
) -> None:
    """docs/testing.md's files, run as they are written: the model example and
    the FastAPI one (whose app reads DATABASE_URL)."""
    models, fastapi_app = doc_examples()
    assert set(models) == {"conftest.py", "test_tags.py"}
    assert set(fastapi_app) == {"myapp.py", "conftest.py", "test_myapp.py"}
    for files, passed in ((models, 3), (fastapi_app, 2)):
        for old in list(pytester.path.iterdir()):
            if old.suffix in {".py", ".ini"}:
                old.unlink()
        for name, source in files.items():
            pytester.makepyfile(**{name.removesuffix(".py"): source})
        pytester.makeini(INI)
        args = ["-p", "no:cacheprovider"]
        if url is not None:
            args += ["--objects-url", url]
            monkeypatch.setenv("DATABASE_URL", url)
        result = pytester.runpytest_subprocess(*args, timeout=120)
        result.assert_outcomes(passed=passed)

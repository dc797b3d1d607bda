"""Models declared the other ways users declare them, on every backend:
SQLModel (``class Hero(ManagerMixin, SQLModel, table=True)``), SQLAlchemy's
``MappedAsDataclass`` and ``AsyncAttrs`` bases. get_or_create (racing too),
the QuerySet, relationships, pagination, FastAPI's ``response_model`` and the
pytest plugin work on them as on a plain ``DeclarativeBase``."""

# No "from __future__ import annotations": SQLModel reads its annotations at
# class creation (quoted forward references instead).
import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import ForeignKey, String
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    MappedAsDataclass,
    mapped_column,
    relationship,
)
from sqlmodel import Field, Relationship, SQLModel

from sqlalchemy_objects import Database, ManagerMixin
from sqlalchemy_objects.fastapi import SessionMiddleware, install_exception_handlers
from tests.conftest import backend_url

# -- SQLModel ------------------------------------------------------------------


class Team(ManagerMixin, SQLModel, table=True):
    __tablename__ = "sqlm_teams"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=50)
    heroes: list["Hero"] = Relationship(back_populates="team")


class Hero(ManagerMixin, SQLModel, table=True):
    __tablename__ = "sqlm_heroes"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=50)
    age: int = 0
    team_id: int | None = Field(default=None, foreign_key="sqlm_teams.id")
    team: Team | None = Relationship(back_populates="heroes")


class HeroCreate(SQLModel):
    name: str
    age: int = 0


class HeroPublic(SQLModel):
    id: int
    name: str
    age: int


# -- MappedAsDataclass ----------------------------------------------------------


class DataBase(ManagerMixin, MappedAsDataclass, DeclarativeBase):
    pass


class Book(DataBase):
    __tablename__ = "dc_books"
    id: Mapped[int] = mapped_column(primary_key=True, init=False)
    title: Mapped[str] = mapped_column(String(50), unique=True)
    pages: Mapped[int] = mapped_column(default=0)


# -- AsyncAttrs --------------------------------------------------------------------


class AttrsBase(ManagerMixin, AsyncAttrs, DeclarativeBase):
    pass


class Shelf(AttrsBase):
    __tablename__ = "aa_shelves"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(50), unique=True)
    boxes: Mapped[list["Box"]] = relationship(back_populates="shelf")


class Box(AttrsBase):
    __tablename__ = "aa_boxes"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(50), unique=True)
    shelf_id: Mapped[int] = mapped_column(ForeignKey("aa_shelves.id"))
    shelf: Mapped[Shelf] = relationship(back_populates="boxes")


BASES: list[type] = [SQLModel, DataBase, AttrsBase]


@pytest.fixture
async def styled(backend: str, tmp_path: Path) -> AsyncGenerator[Database]:
    db = Database(backend_url(backend, tmp_path))
    for base in BASES:
        db.bind(base)
    await db.drop_all()
    await db.create_all()
    try:
        yield db
    finally:
        await db.drop_all()
        await db.dispose()


async def test_sqlmodel_get_or_create_queryset_and_relationships(
    styled: Database,
) -> None:
    team, created = await Team.objects.get_or_create(name="avengers")
    assert created
    assert isinstance(team, Team)
    assert team.id is not None
    hero, created = await Hero.objects.get_or_create(
        name="thor", defaults={"age": 1500, "team_id": team.id}
    )
    assert (created, hero.age, hero.team_id) == (True, 1500, team.id)
    again, created = await Hero.objects.get_or_create(name="thor", defaults={"age": 1})
    assert (created, again.id, again.age) == (False, hero.id, 1500)
    await Hero.objects.create(name="hulk", age=49, team_id=team.id)
    await Hero.objects.create(name="loki", age=1000)
    assert await Hero.objects.filter(team__name="avengers").order_by(
        "name"
    ).values_list("name", flat=True) == ["hulk", "thor"]
    assert await Hero.objects.filter(age__gte=1000).count() == 2
    loaded = await Hero.objects.select_related("team").get(name="hulk")
    assert loaded.team is not None
    assert loaded.team.name == "avengers"
    first = await Hero.objects.order_by("-age").paginate(size=2)
    assert [h.name for h in first.items] == ["thor", "loki"]
    rest = await Hero.objects.order_by("-age").paginate(after=first.next, size=2)
    assert ([h.name for h in rest.items], rest.next) == (["hulk"], None)
    with pytest.raises(Hero.DoesNotExist):
        await Hero.objects.get(name="nobody")


async def test_racing_get_or_create_on_sqlmodel_and_dataclass_models(
    styled: Database,
) -> None:
    heroes = await asyncio.gather(
        *(Hero.objects.get_or_create(name="hot") for _ in range(16))
    )
    books = await asyncio.gather(
        *(
            Book.objects.get_or_create(title="hot", defaults={"pages": 3})
            for _ in range(16)
        )
    )
    for results, model in ((heroes, Hero), (books, Book)):
        assert sum(created for _, created in results) == 1
        assert len({obj.id for obj, _ in results}) == 1
        assert await model.objects.count() == 1


async def test_dataclass_models(styled: Database) -> None:
    book, created = await Book.objects.get_or_create(
        title="Dune", defaults={"pages": 412}
    )
    assert created
    assert (book.title, book.pages) == ("Dune", 412)
    assert isinstance(book.id, int)
    await Book.objects.bulk_create(
        [Book(title="Emma"), Book(title="Ulysses", pages=730)]
    )
    assert await Book.objects.order_by("-pages").values_list("title", flat=True) == [
        "Ulysses",
        "Dune",
        "Emma",
    ]
    updated, created = await Book.objects.update_or_create(
        title="Emma", defaults={"pages": 474}
    )
    assert (created, updated.pages) == (False, 474)


async def test_async_attrs_models(styled: Database) -> None:
    shelf = await Shelf.objects.create(label="top")
    await Box.objects.bulk_create(
        [Box(code="a", shelf_id=shelf.id), Box(code="b", shelf_id=shelf.id)]
    )
    async with styled.session():
        found = await Shelf.objects.get(label="top")
        boxes = await found.awaitable_attrs.boxes
        assert sorted(b.code for b in boxes) == ["a", "b"]
        box = await Box.objects.get(code="a")
        assert (await box.awaitable_attrs.shelf).label == "top"
    box, created = await Box.objects.get_or_create(
        code="c", defaults={"shelf_id": shelf.id}
    )
    assert created
    assert await Box.objects.filter(shelf__label="top").count() == 3


async def test_fastapi_response_model_with_sqlmodel(styled: Database) -> None:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, database=styled)
    install_exception_handlers(app)

    @app.post("/heroes", response_model=HeroPublic)
    async def create_hero(body: HeroCreate) -> Hero:
        hero, _ = await Hero.objects.get_or_create(
            name=body.name, defaults={"age": body.age}
        )
        return hero

    @app.get("/heroes/{name}", response_model=HeroPublic)
    async def read_hero(name: str) -> Hero:
        return await Hero.objects.get(name=name)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answers = await asyncio.gather(
            *(client.post("/heroes", json={"name": "ann", "age": 30}) for _ in range(8))
        )
        assert {a.status_code for a in answers} == {200}
        bodies = [a.json() for a in answers]
        assert len({b["id"] for b in bodies}) == 1
        assert bodies[0] == {"id": bodies[0]["id"], "name": "ann", "age": 30}
        assert (await client.get("/heroes/ann")).json() == bodies[0]
        missing = await client.get("/heroes/bob")
        assert (missing.status_code, missing.json()) == (
            404,
            {"detail": "Hero not found"},
        )
    assert await Hero.objects.count() == 1


PLUGIN_CONFTEST = """
import pytest
from sqlmodel import Field, SQLModel

from sqlalchemy_objects import ManagerMixin

pytest_plugins = ["sqlalchemy_objects.testing"]


class Hero(ManagerMixin, SQLModel, table=True):
    __tablename__ = "plugin_heroes"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=50)


@pytest.fixture(scope="session")
def objects_base():
    return SQLModel
"""

PLUGIN_TESTS = """
import asyncio

from conftest import Hero


async def test_rolled_back(objects_db):
    hero, created = await Hero.objects.get_or_create(name="a")
    assert created
    assert await Hero.objects.count() == 1


async def test_starts_empty(objects_db):
    assert await Hero.objects.count() == 0


async def test_commit_race(objects_db_commit):
    results = await asyncio.gather(*(Hero.objects.get_or_create(name="hot") for _ in range(8)))
    assert sum(created for _, created in results) == 1
"""


def test_the_pytest_plugin_with_sqlmodel(
    pytester: pytest.Pytester, backend: str, tmp_path: Path
) -> None:
    pytester.makeconftest(PLUGIN_CONFTEST)
    pytester.makepyfile(test_heroes=PLUGIN_TESTS)
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    args = ["-p", "no:cacheprovider"]
    if backend != "sqlite":
        args += ["--objects-url", backend_url(backend, tmp_path)]
    result = pytester.runpytest_subprocess(*args, timeout=180)
    result.assert_outcomes(passed=3)

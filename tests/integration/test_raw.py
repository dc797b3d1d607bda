"""``Model.objects.raw()``, Django's: raw SQL with ``%s`` placeholders that
gives model objects, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import inspect

from sqlalchemy_objects import Database, FieldError, RawQuerySet
from tests.models import Article, Counter, User


async def people() -> dict[str, int]:
    ages = {"ann": 30, "bob": 20, "cy": 40}
    ids = {
        n: (await User.objects.create(username=n, age=a)).id for n, a in ages.items()
    }
    await Article.objects.create(title="a", author_id=ids["ann"])
    await Article.objects.create(title="b", author_id=ids["ann"])
    return ids


async def test_raw_gives_model_objects(db: Database) -> None:
    await people()
    older = User.objects.raw("SELECT * FROM users WHERE age > %s ORDER BY age", [25])
    assert isinstance(older, RawQuerySet)
    found = await older
    assert [(u.username, u.age) for u in found] == [("ann", 30), ("cy", 40)]
    assert all(isinstance(u, User) and inspect(u).detached for u in found)
    assert [u.username async for u in older] == ["ann", "cy"]
    named = User.objects.raw(
        "SELECT * FROM users WHERE username = %(name)s", {"name": "bob"}
    )
    assert [u.age for u in await named] == [20]
    # %% is a percent sign; colons are literal text
    like = User.objects.raw(
        "SELECT id, username, ':' AS sep FROM users WHERE username LIKE 'a%%'"
    )
    (ann,) = await like
    assert (ann.username, ann.sep) == ("ann", ":")  # type: ignore[attr-defined]
    assert "age" in inspect(ann).unloaded  # not selected: not loaded, as only()
    assert repr(like).startswith("<RawQuerySet: SELECT id, username")


async def test_raw_columns_types_translations_and_extras(db: Database) -> None:
    ids = await people()
    counted = User.objects.raw(
        "SELECT users.*, (SELECT COUNT(*) FROM articles"
        " WHERE articles.author_id = users.id) AS n FROM users ORDER BY users.id"
    )
    assert [(u.username, u.n) for u in await counted] == [  # type: ignore[attr-defined]
        ("ann", 2),
        ("bob", 0),
        ("cy", 0),
    ]
    renamed = User.objects.raw(
        "SELECT id AS ident, username AS login FROM users WHERE id = %s",
        [ids["cy"]],
        translations={"ident": "id", "login": "username"},
    )
    assert [(u.id, u.username) for u in await renamed] == [(ids["cy"], "cy")]
    # values are read through the column types, as any query's (SQLite keeps
    # datetimes as text and booleans as integers)
    seen = dt.datetime(2024, 5, 6, 7, 8, 9)
    await Counter.objects.create(
        name="c", seen=seen, active=True, day=dt.date(2024, 1, 2)
    )
    (counter,) = await Counter.objects.raw("SELECT * FROM counters")
    assert (counter.seen, counter.active, counter.day) == (
        seen,
        True,
        dt.date(2024, 1, 2),
    )


async def test_raw_inside_a_session(db: Database) -> None:
    await people()
    async with db.session() as session:
        await User.objects.create(username="dee", age=50)  # not committed yet
        rows = await User.objects.raw("SELECT * FROM users WHERE age > %s", [45]).using(
            session
        )
        assert [u.username for u in rows] == ["dee"]


async def test_raw_refuses_what_cannot_work(db: Database) -> None:
    await people()
    with pytest.raises(
        FieldError, match="Raw query must include the primary key of User"
    ):
        await User.objects.raw("SELECT username FROM users")
    with pytest.raises(IndexError, match="2 params for 1 %s placeholders"):
        User.objects.raw("SELECT * FROM users WHERE age > %s", [1, 2])
    with pytest.raises(IndexError, match="more %s placeholders"):
        User.objects.raw("SELECT * FROM users WHERE age > %s", [])
    with pytest.raises(TypeError, match="must be a list, tuple or dict"):
        User.objects.raw("SELECT * FROM users WHERE username = %s", "ann")
    with pytest.raises(KeyError, match="no value for %\\(who\\)s"):
        User.objects.raw("SELECT * FROM users WHERE username = %(who)s", {"name": 1})

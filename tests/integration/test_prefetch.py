"""Django's ``Prefetch`` objects: ``prefetch_related(Prefetch("articles",
queryset=..., to_attr=...))`` on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import inspect

from sqlalchemy_objects import (
    Count,
    Database,
    FieldError,
    NotSupportedError,
    Prefetch,
)
from tests.conftest import StatementLog
from tests.integration.test_queryset import items_with_tags
from tests.models import Article, Item, Tag, User


async def writers() -> dict[str, int]:
    """ann (30): a (published), b, c (published); bob (20): d; cat (40): nothing."""
    ages = {"ann": 30, "bob": 20, "cat": 40}
    ids = {
        n: (await User.objects.create(username=n, age=a)).id for n, a in ages.items()
    }
    for title, author, published in (
        ("a", "ann", True),
        ("b", "ann", False),
        ("c", "ann", True),
        ("d", "bob", False),
    ):
        await Article.objects.create(
            title=title, author_id=ids[author], published=published
        )
    return ids


def titles(articles: Any) -> list[str]:
    return [a.title for a in articles]


async def test_a_queryset_chooses_and_orders_the_related_rows(
    db: Database, sql: StatementLog
) -> None:
    await writers()
    published = Article.objects.filter(published=True).order_by("-title")
    sql.statements.clear()
    users = await User.objects.order_by("username").prefetch_related(
        Prefetch("articles", queryset=published)
    )
    assert len(sql.statements) == 2  # the users, then one SELECT ... IN
    assert [(u.username, titles(u.articles)) for u in users] == [
        ("ann", ["c", "a"]),
        ("bob", []),
        ("cat", []),
    ]
    assert all(inspect(u).detached for u in users)  # loaded: no IO to read them
    streamed = User.objects.order_by("username").prefetch_related(
        Prefetch("articles", queryset=published, to_attr="out")
    )
    assert [titles(u.out) async for u in streamed.iterator()] == [["c", "a"], [], []]  # type: ignore[attr-defined]
    # into another attribute: the relationship is left alone, as in Django
    everything = Article.objects.order_by("title")
    ann = await User.objects.prefetch_related(
        Prefetch("articles", queryset=everything, to_attr="all_articles")
    ).get(username="ann")
    assert titles(ann.all_articles) == ["a", "b", "c"]  # type: ignore[attr-defined]
    assert "articles" in inspect(ann).unloaded
    # a plain Prefetch is the name
    bob = await User.objects.prefetch_related(Prefetch("articles")).first()
    assert bob is not None
    assert "articles" not in inspect(bob).unloaded


async def test_many_to_one_and_many_to_many(db: Database) -> None:
    await writers()
    older = User.objects.filter(age__gt=25)
    articles = await Article.objects.order_by("title").prefetch_related(
        Prefetch("author", queryset=older, to_attr="older_author")
    )
    assert [
        (a.title, a.older_author and a.older_author.username)  # type: ignore[attr-defined]
        for a in articles
    ] == [("a", "ann"), ("b", "ann"), ("c", "ann"), ("d", None)]
    await items_with_tags(db)
    items = (
        await Item.objects.filter(name__in=["red", "blue", "plain"])
        .order_by("name")
        .prefetch_related(
            Prefetch("tags", queryset=Tag.objects.order_by("-name")),
            Prefetch("tags", queryset=Tag.objects.filter(name="b"), to_attr="b_tags"),
        )
    )
    assert [(i.name, [t.name for t in i.tags]) for i in items] == [
        ("blue", ["a"]),
        ("plain", []),
        ("red", ["b", "a"]),
    ]
    assert [[t.name for t in i.b_tags] for i in items] == [[], [], ["b"]]  # type: ignore[attr-defined]


async def test_the_inner_queryset_keeps_its_annotations_and_prefetches(
    db: Database,
) -> None:
    await writers()
    inner = Article.objects.order_by("title").prefetch_related(
        Prefetch("author", to_attr="writer")
    )
    users = (
        await User.objects.annotate(n=Count("articles"))
        .order_by("username")
        .prefetch_related(Prefetch("articles", queryset=inner, to_attr="mine"))
    )
    ann = users[0]
    assert ann.n == 3  # type: ignore[attr-defined]
    assert [(a.title, a.writer.username) for a in ann.mine] == [  # type: ignore[attr-defined]
        ("a", "ann"),
        ("b", "ann"),
        ("c", "ann"),
    ]
    counted = Article.objects.annotate(n=Count("author")).order_by("title")
    (bob,) = await User.objects.filter(username="bob").prefetch_related(
        Prefetch("articles", queryset=counted, to_attr="with_n")
    )
    assert [(a.title, a.n) for a in bob.with_n] == [("d", 1)]  # type: ignore[attr-defined]


async def test_prefetch_refuses_what_cannot_work(db: Database) -> None:
    with pytest.raises(FieldError, match="Invalid field name 'nope' in Prefetch"):
        User.objects.prefetch_related(Prefetch("nope", to_attr="x"))
    with pytest.raises(ValueError, match="needs a QuerySet of Article, not of Tag"):
        User.objects.prefetch_related(Prefetch("articles", queryset=Tag.objects.all()))
    with pytest.raises(ValueError, match="cannot use raw\\(\\), values\\(\\)"):
        Prefetch("articles", queryset=Article.objects.values("title"))
    with pytest.raises(ValueError, match="'age' conflicts with a field"):
        User.objects.prefetch_related(Prefetch("articles", to_attr="age"))
    with pytest.raises(NotSupportedError, match="sliced or combined"):
        User.objects.prefetch_related(
            Prefetch("articles", queryset=Article.objects.all()[:2])
        )
    with pytest.raises(NotSupportedError, match="one relationship step"):
        Article.objects.prefetch_related(
            Prefetch("author__articles", queryset=Article.objects.all())
        )
    with pytest.raises(TypeError, match="takes relationship names"):
        User.objects.prefetch_related(User.articles)  # type: ignore[arg-type]

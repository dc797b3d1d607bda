"""Django's GROUP BY (``values(...).annotate(...)``), ``values()`` through
to-many relationships (a row per related row), and Django's rule that an
aggregate after a ``filter()`` through a relationship reads only the related
rows that filter matched. Each test on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sqlalchemy_objects import (
    Avg,
    Count,
    Database,
    F,
    FieldError,
    Max,
    NotSupportedError,
    Q,
    Sum,
)
from tests.conftest import StatementLog
from tests.integration.test_queryset import items_with_tags
from tests.models import Article, Item, User


async def writers() -> dict[str, int]:
    """ann (30): a (published), b; bob (30): c (published); cat (40): nothing."""
    ages = {"ann": 30, "bob": 30, "cat": 40}
    ids = {
        n: (await User.objects.create(username=n, age=a)).id for n, a in ages.items()
    }
    await Article.objects.create(title="a", author_id=ids["ann"], published=True)
    await Article.objects.create(title="b", author_id=ids["ann"])
    await Article.objects.create(title="c", author_id=ids["bob"], published=True)
    return ids


async def test_values_annotate_groups_rows(db: Database, sql: StatementLog) -> None:
    ids = await writers()
    sql.statements.clear()
    per_author = await Article.objects.values("author").annotate(n=Count("id"))
    assert sorted(per_author, key=lambda row: row["author"]) == [
        {"author": ids["ann"], "n": 2},
        {"author": ids["bob"], "n": 1},
    ]
    assert len(sql.statements) == 1  # one grouped SELECT
    assert "GROUP BY" in sql.statements[0]
    rows = await (
        Article.objects.values("author__username")
        .annotate(
            n=Count("id"),
            out=Count("id", filter=Q(published=True)),
            last=Max("title"),
        )
        .order_by("-n")
    )
    assert rows == [
        {"author__username": "ann", "n": 2, "out": 1, "last": "b"},
        {"author__username": "bob", "n": 1, "out": 1, "last": "c"},
    ]
    # grouping by a column of the model, counting through a to-many relationship:
    # a group with no related row counts 0 (an outer join, as Django's)
    by_age = (
        await User.objects.values("age").annotate(n=Count("articles")).order_by("age")
    )
    assert by_age == [{"age": 30, "n": 3}, {"age": 40, "n": 0}]
    assert await User.objects.values("age").annotate(n=Count("*")).order_by("age") == [
        {"age": 30, "n": 2},
        {"age": 40, "n": 1},
    ]
    # filter() before: WHERE, so the groups count only those rows
    assert (
        await Article.objects.filter(published=True)
        .values("author")
        .annotate(n=Count("id"))
        .count()
        == 2
    )
    assert await User.objects.filter(age__gt=35).values("age").annotate(
        n=Count("articles")
    ) == [{"age": 40, "n": 0}]


async def test_conditions_on_aggregates_are_having(db: Database) -> None:
    await writers()
    groups = User.objects.values("username").annotate(n=Count("articles"))
    assert await groups.filter(n__gt=1) == [{"username": "ann", "n": 2}]
    assert await groups.filter(n=0) == [{"username": "cat", "n": 0}]
    assert sorted(r["username"] for r in await groups.exclude(n__gt=1)) == [
        "bob",
        "cat",
    ]
    assert await groups.filter(n__gte=1, username__startswith="b") == [
        {"username": "bob", "n": 1}
    ]
    assert await groups.filter(n__in=[0, 2]).order_by("username").values_list(
        "username", flat=True
    ) == ["ann", "cat"]
    assert await groups.filter(n__gt=5).exists() is False
    # values() after annotate() picks columns; the groups stay the same
    assert sorted(await groups.values_list("n", flat=True)) == [0, 1, 2]
    assert await groups.filter(n=2).values("username") == [{"username": "ann"}]
    with pytest.raises(FieldError, match="Cannot select 'email' after values"):
        groups.values("email")
    with pytest.raises(FieldError, match="Unsupported lookup 'nope' on the annotation"):
        await groups.filter(n__nope=1)
    with pytest.raises(TypeError, match="Cannot filter a query once a slice"):
        groups[:1].filter(n=1)


async def test_grouped_rows_order_slice_and_shape(db: Database) -> None:
    await writers()
    grouped = User.objects.values("age").annotate(
        n=Count("articles"), m=Max("articles__title")
    )
    assert await grouped.order_by("-age")[:1] == [{"age": 40, "n": 0, "m": None}]
    assert await grouped.order_by(F("n").desc()).first() == {
        "age": 30,
        "n": 3,
        "m": "c",
    }
    assert await grouped.first() == {"age": 30, "n": 3, "m": "c"}  # by the fields
    assert await grouped.last() == {"age": 40, "n": 0, "m": None}
    assert await grouped.count() == 2
    tuples = User.objects.values_list("age").annotate(n=Count("articles"))
    assert await tuples.order_by("age") == [(30, 3), (40, 0)]
    named = User.objects.values_list("age", named=True).annotate(n=Count("articles"))
    row = (await named.order_by("age"))[0]
    assert (row.age, row.n) == (30, 3)
    # ordering by a field that is not grouped adds it to the GROUP BY, as Django
    by_user = (
        await User.objects.values("age")
        .annotate(n=Count("articles"))
        .order_by("username")
    )
    assert by_user == [{"age": 30, "n": 2}, {"age": 30, "n": 1}, {"age": 40, "n": 0}]
    # a non-aggregate annotation is grouped by too
    doubled = await (
        User.objects.values("age")
        .annotate(twice=F("age") * 2, users=Count("id"))
        .order_by("age")
    )
    assert doubled == [
        {"age": 30, "twice": 60, "users": 2},
        {"age": 40, "twice": 80, "users": 1},
    ]
    with pytest.raises(NotSupportedError, match="takes names"):
        await grouped.order_by(F("n").desc(nulls_last=True))


async def test_grouped_values_are_djangos_types(db: Database) -> None:
    ids = await writers()
    totals = await (
        Article.objects.values("published")
        .annotate(ids=Sum("author_id"), mean=Avg("author_id"), n=Count("id"))
        .order_by("published")
    )
    assert totals == [
        {"published": False, "ids": ids["ann"], "mean": float(ids["ann"]), "n": 1},
        {
            "published": True,
            "ids": ids["ann"] + ids["bob"],
            "mean": (ids["ann"] + ids["bob"]) / 2,
            "n": 2,
        },
    ]
    assert all(type(row["ids"]) is int for row in totals)  # MariaDB: DECIMAL
    assert all(type(row["n"]) is int for row in totals)
    assert not any(isinstance(row["mean"], Decimal) for row in totals)
    # a related field, through the join, keeps its type too
    summed = await User.objects.values("age").annotate(s=Sum("articles__author_id"))
    assert all(row["s"] is None or type(row["s"]) is int for row in summed)


async def test_values_through_to_many_is_a_row_per_related_row(db: Database) -> None:
    ids = await writers()
    rows = await User.objects.order_by("username").values("username", "articles__title")
    assert sorted(rows, key=lambda r: (r["username"], r["articles__title"] or "")) == [
        {"username": "ann", "articles__title": "a"},
        {"username": "ann", "articles__title": "b"},
        {"username": "bob", "articles__title": "c"},
        {"username": "cat", "articles__title": None},
    ]
    # two fields of one path come from the same related row
    pairs = await User.objects.values_list("articles__title", "articles__published")
    assert sorted(pairs, key=lambda p: p[0] or "") == [
        (None, None),
        ("a", True),
        ("b", False),
        ("c", True),
    ]
    # the relationship itself: the related primary key; a foreign key: its value
    article_ids = await User.objects.filter(username="ann").values_list(
        "articles", flat=True
    )
    a = await Article.objects.get(title="a")
    b = await Article.objects.get(title="b")
    assert sorted(article_ids) == sorted([a.id, b.id])
    assert await Article.objects.filter(title="c").values("author") == [
        {"author": ids["bob"]}
    ]
    assert await User.objects.values("articles__title").count() == 4
    # many-to-many, through its secondary table
    await items_with_tags(db)
    tagged = await Item.objects.filter(name__in=["red", "blue", "plain"]).values_list(
        "name", "tags__name"
    )
    assert sorted(tagged, key=lambda p: (p[0], p[1] or "")) == [
        ("blue", "a"),
        ("plain", None),
        ("red", "a"),
        ("red", "b"),
    ]
    per_tag = await Item.objects.values("tags__name").annotate(n=Count("id"))
    assert sorted(per_tag, key=lambda r: r["tags__name"] or "") == [
        {"tags__name": None, "n": 4},
        {"tags__name": "a", "n": 2},
        {"tags__name": "b", "n": 1},
    ]


async def test_filter_before_annotate_restricts_the_aggregate(db: Database) -> None:
    """Django's "Order of annotate() and filter() clauses": a filter() through
    a relationship before annotate() restricts the related rows aggregated;
    after annotate() it only chooses the rows."""
    await writers()
    before = User.objects.filter(articles__published=True).annotate(n=Count("articles"))
    assert sorted(await before.values_list("username", "n")) == [("ann", 1), ("bob", 1)]
    after = User.objects.annotate(n=Count("articles")).filter(articles__published=True)
    assert sorted(await after.values_list("username", "n")) == [("ann", 2), ("bob", 1)]
    # several conditions of one call: one related row
    one_row = User.objects.filter(articles__published=True, articles__title="a")
    assert await one_row.annotate(n=Count("articles")).values_list("username", "n") == [
        ("ann", 1)
    ]
    # isnull=False chooses the rows and counts every related row
    assert sorted(
        await User.objects.filter(articles__isnull=False)
        .annotate(n=Count("articles"))
        .values_list("username", "n")
    ) == [("ann", 2), ("bob", 1)]
    # the same rule in a GROUP BY, and for values() through the relationship
    grouped = await (
        User.objects.filter(articles__published=True)
        .values("age")
        .annotate(n=Count("articles"))
    )
    assert grouped == [{"age": 30, "n": 2}]
    titles = await User.objects.filter(articles__published=True).values_list(
        "username", "articles__title"
    )
    assert sorted(titles) == [("ann", "a"), ("bob", "c")]
    # where Django's answer depends on its joins, a clear error, not a guess
    with pytest.raises(
        NotSupportedError, match="several filter\\(\\) calls through 'articles'"
    ):
        User.objects.filter(articles__published=True).filter(
            articles__title="a"
        ).annotate(n=Count("articles"))
    with pytest.raises(NotSupportedError, match="with \\| or ~ through 'articles'"):
        User.objects.filter(Q(articles__title="a") | Q(age=40)).annotate(
            n=Count("articles")
        )
    # exclude() does not join: every related row is counted
    assert sorted(
        await User.objects.exclude(articles__title="a")
        .annotate(n=Count("articles"))
        .values_list("username", "n")
    ) == [("bob", 1), ("cat", 0)]


async def test_grouping_errors_name_the_problem(db: Database) -> None:
    with pytest.raises(FieldError, match="'nope' into a column of User"):
        User.objects.values("age").annotate(n=Count("nope"))
    with pytest.raises(FieldError, match="'nope' into a column of Article"):
        User.objects.values("age").annotate(n=Count("articles__nope"))
    with pytest.raises(ValueError, match="'age' conflicts with a field"):
        User.objects.values("username").annotate(age=Count("id"))
    with pytest.raises(ValueError, match="'id__count' is given twice"):
        User.objects.values("age").annotate(Count("id"), id__count=Count("id"))
    with pytest.raises(TypeError, match="Complex annotations require an alias"):
        User.objects.values("age").annotate(F("age"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Cannot annotate a query once a slice"):
        User.objects.values("age")[:2].annotate(n=Count("id"))


async def test_aggregate_through_relationships_and_annotations(db: Database) -> None:
    """Django's ``aggregate(Count("books"))`` (over the joined related rows,
    an earlier filter()'s rows only) and ``aggregate(Avg("n"))`` of an
    annotation."""
    await writers()
    assert await User.objects.aggregate(
        n=Count("articles"), last=Max("articles__title"), ages=Sum("age")
    ) == {"n": 3, "last": "c", "ages": 130}  # ages over the joined rows, as Django
    assert await User.objects.filter(articles__published=True).aggregate(
        n=Count("articles")
    ) == {"n": 2}
    assert await User.objects.filter(username="cat").aggregate(
        n=Count("articles"), last=Max("articles__title")
    ) == {"n": 0, "last": None}
    assert await User.objects.aggregate(
        published=Count("articles", filter=Q(articles__published=True))
    ) == {"published": 2}
    per_user = User.objects.annotate(n=Count("articles"))
    totals = await per_user.aggregate(mean=Avg("n"), total=Sum("n"), most=Max("n"))
    assert totals == {"mean": 1.0, "total": 3, "most": 2}
    assert type(totals["total"]) is int  # MariaDB sums to a DECIMAL
    assert await per_user.filter(n__gt=0).aggregate(Count("n")) == {"n__count": 2}
    with pytest.raises(NotSupportedError, match="over a slice or beside annotations"):
        await User.objects.order_by("id")[:2].aggregate(Count("articles"))


async def test_alias_filters_and_orders_without_selecting(db: Database) -> None:
    """Django's ``alias()``: an annotation to filter and order on, not
    selected, not set on the objects, refused by ``values()``."""
    await writers()
    busy = User.objects.alias(n=Count("articles")).filter(n__gte=1).order_by("-n")
    users = await busy
    assert [u.username for u in users] == ["ann", "bob"]
    assert not hasattr(users[0], "n")
    assert set((await busy.values())[0]) == {
        "id",
        "username",
        "email",
        "nickname",
        "status",
        "age",
    }
    assert await busy.aggregate(total=Sum("n")) == {"total": 3}
    both = User.objects.alias(n=Count("articles")).annotate(twice=F("age") * 2)
    ann = await both.filter(n=2).get()
    assert ann.twice == 60  # type: ignore[attr-defined]
    with pytest.raises(FieldError, match="Cannot select the 'n' alias"):
        User.objects.alias(n=Count("articles")).values("n")
    with pytest.raises(ValueError, match="'n' is given twice"):
        User.objects.alias(n=Count("articles")).annotate(n=Count("articles"))

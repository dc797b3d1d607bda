"""One query inside another, as Django writes it: ``Exists()``, ``OuterRef()``,
``Subquery()``, ``values()`` as a lazy QuerySet and as a lookup value, and
``F()`` in annotations and across relationships. Each on every backend."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from sqlalchemy_objects import (
    Count,
    Database,
    Exists,
    F,
    FieldError,
    NotSupportedError,
    OuterRef,
    Q,
    Subquery,
    ValuesQuerySet,
)
from tests.conftest import StatementLog
from tests.integration.test_queryset import item_names, items_with_tags
from tests.models import Article, Item, User


async def authors(db: Database) -> dict[str, int]:
    """ann: a (published) and b; bob: c; cat: nothing."""
    ids = {n: (await User.objects.create(username=n)).id for n in ("ann", "bob", "cat")}
    await Article.objects.create(title="a", author_id=ids["ann"], published=True)
    await Article.objects.create(title="b", author_id=ids["ann"])
    await Article.objects.create(title="c", author_id=ids["bob"])
    return ids


async def usernames(qs: Any) -> list[str]:
    return sorted(await qs.values_list("username", flat=True))


async def test_exists_and_outer_ref(db: Database) -> None:
    await authors(db)
    wrote = Exists(Article.objects.filter(author=OuterRef("pk")))
    assert await usernames(User.objects.filter(wrote)) == ["ann", "bob"]
    assert await usernames(User.objects.filter(~wrote)) == ["cat"]
    assert await usernames(User.objects.exclude(wrote)) == ["cat"]
    published = Exists(Article.objects.filter(author_id=OuterRef("id"), published=True))
    assert await usernames(User.objects.filter(published)) == ["ann"]
    # combined with Q objects, both ways round
    assert await usernames(User.objects.filter(published | Q(username="cat"))) == [
        "ann",
        "cat",
    ]
    assert await usernames(User.objects.filter(Q(username="bob") | published)) == [
        "ann",
        "bob",
    ]
    assert await usernames(User.objects.filter(wrote & ~published)) == ["bob"]
    assert await usernames(User.objects.filter(wrote, username__startswith="b")) == [
        "bob"
    ]
    # an inner query that does not refer to the outer one
    assert (
        await User.objects.filter(Exists(Article.objects.filter(title="zz"))).count()
        == 0
    )
    assert (
        await User.objects.filter(Exists(Article.objects.filter(title="a"))).count()
        == 3
    )


async def test_exists_as_an_annotation(db: Database) -> None:
    await authors(db)
    rows = await (
        User.objects.annotate(
            published=Exists(
                Article.objects.filter(author=OuterRef("pk"), published=True)
            )
        )
        .order_by("username")
        .values("username", "published")
    )
    assert rows == [
        {"username": "ann", "published": True},
        {"username": "bob", "published": False},
        {"username": "cat", "published": False},
    ]
    users = await User.objects.annotate(
        wrote=Exists(Article.objects.filter(author=OuterRef("pk")))
    ).filter(wrote=True)
    assert sorted(u.username for u in users) == ["ann", "bob"]
    assert all(u.wrote is True for u in users)  # type: ignore[attr-defined]


async def test_a_model_inside_itself_is_not_correlated_away(db: Database) -> None:
    """``Item`` in ``Item``: the inner query is an alias, so "items that are
    some item's parent" means what it says."""
    await items_with_tags(db)
    parents = Item.objects.filter(Exists(Item.objects.filter(parent=OuterRef("pk"))))
    assert await item_names(parents) == ["child", "grand"]
    leaves = Item.objects.exclude(Exists(Item.objects.filter(parent_id=OuterRef("id"))))
    assert await item_names(leaves) == ["blue", "kid", "plain", "red"]


async def test_subquery_annotation(db: Database) -> None:
    await authors(db)
    newest = Subquery(
        Article.objects.filter(author=OuterRef("pk"))
        .order_by("-title")
        .values("title")[:1]
    )
    rows = await (
        User.objects.annotate(newest=newest)
        .order_by("username")
        .values_list("username", "newest")
    )
    assert rows == [("ann", "b"), ("bob", "c"), ("cat", None)]
    assert await usernames(User.objects.annotate(newest=newest).filter(newest="c")) == [
        "bob"
    ]
    with pytest.raises(TypeError, match=r"Subquery\(\) needs a QuerySet of one field"):
        await User.objects.annotate(
            x=Subquery(
                Article.objects.filter(author=OuterRef("pk")).values("id", "title")
            )
        )


async def test_an_outer_ref_alone_is_refused(db: Database) -> None:
    with pytest.raises(
        ValueError, match=r"reference to an outer query.*OuterRef\('pk'\)"
    ):
        await Article.objects.filter(author=OuterRef("pk"))
    with pytest.raises(FieldError, match="nope"):
        await User.objects.filter(
            Exists(Article.objects.filter(author=OuterRef("nope")))
        )
    with pytest.raises(TypeError, match="Q objects, Exists"):
        Q("username")  # type: ignore[arg-type]


async def test_values_is_a_lazy_queryset(db: Database, sql: StatementLog) -> None:
    await authors(db)
    sql.statements.clear()
    titles = Article.objects.values("title", "author__username")
    assert isinstance(titles, ValuesQuerySet)
    assert sql.statements == []  # lazy: nothing sent yet
    rows = await titles.filter(published=False).order_by("-title")
    assert rows == [
        {"title": "c", "author__username": "bob"},
        {"title": "b", "author__username": "ann"},
    ]
    assert await titles.count() == 3
    assert await titles.filter(title="zz").exists() is False
    assert await titles.first() == {"title": "a", "author__username": "ann"}
    assert await titles.last() == {"title": "c", "author__username": "bob"}
    assert await titles.order_by("title")[1:2] == [
        {"title": "b", "author__username": "ann"}
    ]
    streamed = [row["title"] async for row in titles.order_by("title")]
    assert streamed == ["a", "b", "c"]
    flat: Sequence[str] = await Article.objects.values_list(
        "title", flat=True
    ).order_by("title")
    assert flat == ["a", "b", "c"]
    author_ids = Article.objects.values_list("author_id", flat=True)
    assert await author_ids.distinct().count() == 2
    named = await User.objects.values_list("username", "age", named=True).filter(
        username="ann"
    )
    assert (named[0].username, named[0].age) == ("ann", 0)
    assert named[0] == ("ann", 0)
    with pytest.raises(TypeError, match="'flat' and 'named'"):
        User.objects.values_list("username", flat=True, named=True)  # type: ignore[call-overload]
    with pytest.raises(FieldError, match="nope"):
        User.objects.values("nope")  # at the call, before any SQL


async def test_values_as_a_lookup_value_is_one_statement(
    db: Database, sql: StatementLog
) -> None:
    await authors(db)
    sql.statements.clear()
    published_authors = Article.objects.filter(published=True).values("author_id")
    found = await User.objects.filter(id__in=published_authors)
    assert [u.username for u in found] == ["ann"]
    assert sql.count(lambda s: s.lstrip().upper().startswith("SELECT")) == 1
    assert await usernames(
        User.objects.exclude(id__in=Article.objects.values_list("author_id", flat=True))
    ) == ["cat"]
    with pytest.raises(TypeError, match="multi-field values as a filter value"):
        User.objects.filter(id__in=Article.objects.values("author_id", "title"))


async def test_f_in_annotations_and_across_relationships(db: Database) -> None:
    ids = await authors(db)
    await User.objects.filter(username="ann").update(age=30)
    await User.objects.filter(username="bob").update(age=20)
    rows = await (
        User.objects.annotate(double=F("age") * 2, n=Count("articles"))
        .filter(double__gte=40)
        .order_by("-double")
        .values_list("username", "double", "n")
    )
    assert rows == [("ann", 60, 2), ("bob", 40, 1)]
    # F() through a many-to-one step: a correlated value of the related row
    older = Article.objects.filter(author__age__gt=F("author__age") - 1)
    assert await older.count() == 3
    titled_like_author = (
        await Article.objects.annotate(who=F("author__username"))
        .order_by("title")
        .values_list("title", "who")
    )
    assert titled_like_author == [("a", "ann"), ("b", "ann"), ("c", "bob")]
    await Article.objects.filter(author_id=ids["bob"]).update(
        title=F("author__username")
    )
    assert await Article.objects.filter(author_id=ids["bob"]).values_list(
        "title", flat=True
    ) == ["bob"]
    with pytest.raises(TypeError, match="Complex annotations require an alias"):
        User.objects.annotate(F("age"))  # type: ignore[arg-type]


# -- union(), intersection(), difference() ------------------------------------------


async def test_union_intersection_difference(db: Database) -> None:
    await authors(db)
    await User.objects.filter(username="bob").update(age=20)
    young = User.objects.filter(age__lt=10)  # ann, cat
    b_names = User.objects.filter(username__startswith="b")  # bob
    a_or_b = User.objects.filter(username__in=["ann", "bob"])
    assert await usernames(young.union(b_names)) == ["ann", "bob", "cat"]
    assert await usernames(young.union(a_or_b)) == ["ann", "bob", "cat"]
    assert await young.union(a_or_b).count() == 3  # UNION drops the duplicate
    assert await young.union(a_or_b, all=True).count() == 4
    assert await usernames(young.intersection(a_or_b)) == ["ann"]
    assert await usernames(young.difference(a_or_b)) == ["cat"]
    assert await usernames(young.union(b_names, a_or_b)) == ["ann", "bob", "cat"]
    # ordered, sliced, values(), first(), exists() on the whole
    ordered = young.union(b_names).order_by("-username")
    assert [u.username for u in await ordered] == ["cat", "bob", "ann"]
    assert [u.username for u in await ordered[1:3]] == ["bob", "ann"]
    assert await ordered.values_list("username", flat=True) == ["cat", "bob", "ann"]
    assert await ordered.values("username", "age") == [
        {"username": "cat", "age": 0},
        {"username": "bob", "age": 20},
        {"username": "ann", "age": 0},
    ]
    first = await young.union(b_names).first()
    assert first is not None
    assert first.username == "ann"
    assert await young.intersection(b_names).exists() is False
    # parts that are ordered and sliced themselves (SQLite refuses that in a
    # compound part: each is a derived table)
    top = User.objects.order_by("-username")[:1]  # cat
    bottom = User.objects.order_by("username")[:1]  # ann
    assert await usernames(top.union(bottom)) == ["ann", "cat"]
    # none() parts, as Django treats them
    assert await usernames(young.union(User.objects.none())) == ["ann", "cat"]
    assert await usernames(User.objects.none().union(b_names)) == ["bob"]
    assert await young.intersection(User.objects.none()).count() == 0
    assert await User.objects.none().difference(young).count() == 0
    # a union as an __in value: one statement
    assert await Article.objects.filter(author__in=young.union(b_names)).count() == 3


async def test_what_a_combined_queryset_refuses(db: Database) -> None:
    both = User.objects.filter(age=1).union(User.objects.filter(age=2))
    builders: list[Callable[[], object]] = [
        lambda: both.filter(username="x"),
        lambda: both.exclude(username="x"),
        lambda: both.annotate(n=Count("articles")),
        lambda: both.distinct(),
        lambda: both.select_related("articles"),
    ]
    for build in builders:
        with pytest.raises(NotSupportedError, match="after union"):
            build()
    with pytest.raises(NotSupportedError, match=r"update\(\) after union"):
        await both.update(age=3)
    with pytest.raises(NotSupportedError, match=r"delete\(\) after union"):
        await both.delete()
    with pytest.raises(TypeError, match="combines QuerySets of User"):
        User.objects.all().union(Article.objects.all())  # type: ignore[arg-type]


# -- distinct(*fields) ----------------------------------------------------------------


async def test_distinct_on_fields(db: Database) -> None:
    """PostgreSQL's DISTINCT ON: the first row of each group in the
    QuerySet's order; elsewhere NotSupportedError, as in Django."""
    await authors(db)
    latest = Article.objects.order_by("author_id", "-title").distinct("author_id")
    if db.facts.distinct_on:
        assert await latest.values_list("title", flat=True) == ["b", "c"]
        assert await latest.count() == 2
    else:
        with pytest.raises(
            NotSupportedError, match="DISTINCT ON fields is not supported"
        ):
            await latest
        with pytest.raises(NotSupportedError, match=r"distinct\('author_id'\)"):
            await latest.values_list("title", flat=True)
    with pytest.raises(FieldError, match="nope"):
        Article.objects.distinct("nope")
    assert sorted(
        await Article.objects.values_list("author_id", flat=True).distinct()
    ) == sorted(set(await Article.objects.values_list("author_id", flat=True)))


async def test_outer_ref_of_an_outer_ref(db: Database) -> None:
    """``OuterRef(OuterRef("pk"))``: a field of the query two levels out."""
    ids = await authors(db)
    dan = await User.objects.create(username="dan", age=50)
    await Article.objects.create(title="d", author_id=dan.id)
    await User.objects.filter(pk=ids["cat"]).update(age=60)  # old, but no article
    old = Exists(User.objects.filter(pk=OuterRef(OuterRef("pk")), age__gt=35))
    wrote_while_old = Exists(Article.objects.filter(old, author=OuterRef("pk")))
    assert await usernames(User.objects.filter(wrote_while_old)) == ["dan"]
    assert await usernames(User.objects.exclude(wrote_while_old)) == [
        "ann",
        "bob",
        "cat",
    ]
    assert repr(OuterRef(OuterRef("pk"))) == "OuterRef(OuterRef('pk'))"
    assert OuterRef(OuterRef("pk")) != OuterRef("pk")
    with pytest.raises(ValueError, match="reference to an outer query"):
        await Article.objects.filter(old).count()


async def test_a_grouped_values_queryset_as_a_subquery(db: Database) -> None:
    """Django's count-in-a-subquery idiom:
    ``Subquery(qs.filter(author=OuterRef("pk")).values("author")
    .annotate(n=Count("pk")).values("n"))``."""
    await authors(db)
    per_author = (
        Article.objects.filter(author=OuterRef("pk"))
        .values("author")
        .annotate(n=Count("pk"))
    )
    counted = User.objects.annotate(n=Subquery(per_author.values("n")))
    assert sorted(await counted.values_list("username", "n")) == [
        ("ann", 2),
        ("bob", 1),
        ("cat", None),
    ]
    prolific = Exists(per_author.filter(n__gt=1))
    assert await usernames(User.objects.filter(prolific)) == ["ann"]
    with pytest.raises(TypeError, match="needs one column"):
        User.objects.annotate(n=Subquery(per_author))


async def test_values_querysets_of_different_models_combine(db: Database) -> None:
    """Django's ``Author.objects.values_list("name").union(Book.objects
    .values_list("title"))``: columns matched by position, rows shaped as the
    first part's."""
    await authors(db)
    names = User.objects.filter(username__in=["ann", "bob"]).values_list(
        "username", flat=True
    )
    titles = Article.objects.values_list("title", flat=True)
    both = names.union(titles)
    assert sorted(await both) == ["a", "ann", "b", "bob", "c"]
    assert await both.order_by("-username")[:2] == ["c", "bob"]
    assert await both.count() == 5
    assert await both.exists() is True
    same = User.objects.values_list("username", flat=True).union(
        User.objects.values_list("username", flat=True), all=True
    )
    assert await same.count() == 6  # all=True keeps duplicates
    dicts = (
        User.objects.filter(username="cat")
        .values("username", "id")
        .union(Article.objects.filter(title="a").values("title", "author_id"))
    )
    rows = await dicts.order_by("username")
    assert [r["username"] for r in rows] == ["a", "cat"]
    assert set(rows[0]) == {"username", "id"}  # the first part's names
    common = User.objects.values_list("username", flat=True).intersection(
        Article.objects.values_list("title", flat=True)
    )
    assert await common == []
    rest = User.objects.values_list("id", flat=True).difference(
        Article.objects.values_list("author_id", flat=True)
    )
    cat = await User.objects.get(username="cat")
    assert await rest == [cat.id]
    nested = both.union(User.objects.filter(username="cat").values_list("username"))
    assert sorted(await nested) == ["a", "ann", "b", "bob", "c", "cat"]
    with pytest.raises(TypeError, match="every part must select 1 columns"):
        names.union(Article.objects.values_list("title", "id"))
    with pytest.raises(NotSupportedError, match="Calling filter\\(\\) after union"):
        both.filter(username="x")
    with pytest.raises(FieldError, match="does not match any column"):
        both.order_by("title")

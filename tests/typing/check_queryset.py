"""QuerySet typing, checked by mypy --strict and pyright strict; never run."""

from __future__ import annotations

from typing import Any, assert_type

from sqlalchemy_objects import Avg, Count, Q, QuerySet
from tests.models import Article, ArticleQuerySet, User


async def queryset_types() -> None:
    qs = User.objects.filter(Q(age__gte=18) | ~Q(username="bot"), email="x")
    assert_type(qs, QuerySet[User])
    assert_type(qs.order_by("-age").reverse()[1:5], QuerySet[User])
    assert_type(await qs.first(), User | None)
    assert_type(await User.objects.filter(age=1).last(), User | None)
    assert_type(await User.objects.last(), User | None)
    assert_type(await qs.values("username"), list[dict[str, Any]])
    assert_type(await qs.values_list("username", "age"), list[tuple[Any, ...]])
    assert_type(await qs.values_list("username", flat=True), list[Any])
    assert_type(await User.objects.values_list("id", flat=True), list[Any])
    assert_type(await qs.in_bulk([1, 2]), dict[Any, User])
    assert_type(await qs.aggregate(Avg("age"), n=Count("*")), dict[str, Any])
    assert_type(await qs.update(email="y"), int)
    assert_type(await qs.delete(), tuple[int, dict[str, int]])
    assert_type(
        await User.objects.update_or_create(username="a", defaults={"age": 1}),
        tuple[User, bool],
    )
    assert_type(await User.objects.bulk_create([User(username="a")]), list[User])
    assert_type(
        Article.objects.select_related("author").prefetch_related("author__articles"),
        QuerySet[Article],
    )
    async for user in User.objects.filter(age=1):
        assert_type(user, User)
    assert_type(User.objects.only("username").defer("email"), QuerySet[User])
    assert_type(User.objects.filter(username__regex="^a").reverse(), QuerySet[User])


async def custom_queryset_types() -> None:
    # as_manager(): custom and built-in methods chain in either order, typed
    assert_type(Article.stories, ArticleQuerySet)
    assert_type(Article.stories.published().filter(id=1).titled("a"), ArticleQuerySet)
    assert_type(await Article.stories.published().titles(), list[str])
    assert_type(await Article.stories.published().get(id=1), Article)
    assert_type(await Article.stories.get_or_create(title="x"), tuple[Article, bool])


async def rejected() -> None:
    # Each line must be an error for mypy (warn_unused_ignores proves it is).
    await User.objects.bulk_create([Article(title="x")])  # type: ignore[list-item]
    User.objects.filter(3)  # type: ignore[arg-type]
    Article.stories.no_such_method()  # type: ignore[attr-defined]

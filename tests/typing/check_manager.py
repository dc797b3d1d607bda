"""Checked by mypy --strict and pyright strict; never run (no test_ prefix)."""

from __future__ import annotations

from typing import assert_type

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from sqlalchemy_objects import (
    Database,
    Manager,
    MultipleObjectsReturned,
    ObjectDoesNotExist,
    QuerySet,
)
from tests.models import Article, PublishedManager, User


async def manager_types(db: Database, session: AsyncSession) -> None:
    assert_type(User.objects, Manager[User])
    assert_type(await User.objects.get(username="ann"), User)
    assert_type(await User.objects.get_or_none(username="ann"), User | None)
    assert_type(await User.objects.create(username="ann"), User)
    assert_type(await User.objects.get_or_create(username="ann"), tuple[User, bool])
    user, created = await User.objects.get_or_create(
        username="ann", defaults={"email": "a"}
    )
    assert_type(user, User)
    assert_type(created, bool)
    assert_type(User.objects.filter(age__gte=18), QuerySet[User])
    assert_type(User.objects.using(session), QuerySet[User])
    assert_type(User.objects.using(db).exclude(age=3), QuerySet[User])
    assert_type(await User.objects.filter(age=1), list[User])
    assert_type(await User.objects.first(), User | None)
    assert_type(await User.objects.count(), int)
    assert_type(await User.objects.exists(), bool)
    assert_type(User.objects.filter(age=1).statement, Select[User])


async def custom_manager_keeps_its_type() -> None:
    assert_type(Article.published_objects, PublishedManager)
    assert_type(await Article.published_objects.get(title="x"), Article)
    assert_type(Article.objects, Manager[Article])


def errors_are_per_model() -> None:
    assert_type(User.DoesNotExist, type[ObjectDoesNotExist])
    assert_type(User.MultipleObjectsReturned, type[MultipleObjectsReturned])


async def rejected() -> None:
    # Each line must be an error for mypy (warn_unused_ignores proves it is).
    await User.objects.get_or_create(defaults=3)  # type: ignore[arg-type]
    User.objects.using("sqlite://")  # type: ignore[arg-type]

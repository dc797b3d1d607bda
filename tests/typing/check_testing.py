"""The pytest plugin as docs/testing.md uses it, typed: checked by mypy --strict
and pyright strict; never collected (the file name does not start with test_)."""

from __future__ import annotations

from typing import assert_type

import pytest
from sqlalchemy.orm import DeclarativeBase

from sqlalchemy_objects import Database
from tests.models import Base, User


@pytest.fixture(scope="session")
def objects_base() -> type[DeclarativeBase]:
    """A user's override has the plugin's fixture type."""
    return Base


async def a_users_test(objects_db: Database) -> None:
    assert_type(await User.objects.get_or_create(username="a"), tuple[User, bool])
    async with objects_db.session():
        assert_type(await User.objects.filter(age=1).first(), User | None)

"""Checked by mypy --strict and pyright strict; never run (no test_ prefix)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, assert_type

from sqlalchemy.ext.asyncio import AsyncSession

from sqlalchemy_objects import Database
from sqlalchemy_objects.fastapi import SessionMiddleware, lifespan, session_dependency


def fastapi_types(db: Database, app: Any) -> None:
    assert_type(session_dependency(db), Callable[[], AsyncGenerator[AsyncSession]])
    assert_type(
        lifespan(db, create_all=True),
        Callable[[Any], AbstractAsyncContextManager[None]],
    )
    assert_type(SessionMiddleware(app, database=db).rollback_status, int)


async def session_types(db: Database) -> None:
    async with db.session() as session:
        assert_type(session, AsyncSession)
    async with db.ambient_session() as session:
        assert_type(session, AsyncSession)


async def run_types(db: Database) -> None:
    async def names(session: AsyncSession) -> list[str]:
        return []

    assert_type(await db.run_read(names), list[str])
    assert_type(await db.run_write(names), list[str])

"""Where a call runs (SPEC §2), and how it runs there.

A manager call runs on, in this order: the explicit target of
``using(session | db)``; the ambient ``db.session()`` around the task; the
Database bound to the model (autocommit: the call's own short session, under
the Database's execution policy); else :class:`ConfigurationError`.

Inside a session, the calls of sibling tasks are serialised on the session's
lock (an ``AsyncSession`` allows one operation at a time).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from .database import Database, bound_database
from .exceptions import ConfigurationError
from .session import current_session, lock_for

_R = TypeVar("_R")

Target = AsyncSession | Database


def declarative_base(model: type[Any]) -> type[Any]:
    """The class *model*'s tables are declared on (the one holding its
    ``metadata``: a DeclarativeBase subclass, or SQLModel): what to bind."""
    for klass in reversed(model.__mro__):
        if "metadata" in vars(klass) and klass is not model:
            return klass
    return model


def resolve(model: type[Any], explicit: Target | None) -> Target:
    """The session or Database a call on *model* runs on."""
    if explicit is not None:
        return explicit
    session = current_session()
    if session is not None:
        return session
    db = bound_database(model)
    if db is None:
        raise ConfigurationError(
            f"No session or database for {model.__name__}: call "
            f"db.bind({declarative_base(model).__name__}) "
            'once at start-up, or run the call inside "async with db.session():", '
            "or pass one explicitly with .using(session_or_db)."
        )
    return db


async def read(target: Target, work: Callable[[AsyncSession], Awaitable[_R]]) -> _R:
    """Run the read *work* on *target*: a short read session of the Database's
    own, or the session (holding its lock)."""
    if isinstance(target, Database):
        return await target.run_query_read(work)  # a replica's, maybe
    async with lock_for(target).hold():
        return await work(target)


async def write(target: Target, work: Callable[[AsyncSession], Awaitable[_R]]) -> _R:
    """Run the write *work* (which flushes) on *target*: a short transaction of
    the Database's own that commits, or the session (holding its lock), which
    its block commits."""
    if isinstance(target, Database):
        return await target.run_write(work)
    async with lock_for(target).hold():
        return await work(target)

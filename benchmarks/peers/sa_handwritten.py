"""Hand-written SQLAlchemy 2: select; on a miss begin_nested() + add + flush;
on IntegrityError roll the savepoint back and select again."""

from __future__ import annotations

import asyncio
from typing import Any

from harness import arguments, measure
from sa_model import item_model, side_model
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def main() -> None:
    args = arguments()

    class Base(DeclarativeBase):
        pass

    Item = item_model(Base, args.table)
    Side = side_model(Base, f"{args.table}_side")

    engine = create_async_engine(URL, pool_size=20, max_overflow=0)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def on(session: Any, key: str) -> tuple[Any, bool]:
        obj = await session.scalar(select(Item).where(Item.key == key))
        if obj is not None:
            return obj, False
        try:
            async with session.begin_nested():
                obj = Item(key=key, value="v")
                session.add(obj)
            return obj, True
        except IntegrityError:
            found = await session.scalar(select(Item).where(Item.key == key))
            if found is None:
                raise
            return found, False

    async def get_or_create(key: str) -> tuple[Any, bool]:
        async with sessions() as session, session.begin():
            return await on(session, key)

    async def in_transaction(side_key: str, key: str) -> bool:
        async with sessions() as session, session.begin():
            session.add(Side(key=side_key))
            await session.flush()
            return (await on(session, key))[1]

    await measure(args, get_or_create, in_transaction)
    await engine.dispose()


asyncio.run(main())

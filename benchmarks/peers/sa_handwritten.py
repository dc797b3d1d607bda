"""Hand-written SQLAlchemy 2: select; on a miss begin_nested() + add + flush;
on IntegrityError roll the savepoint back and select again."""

from __future__ import annotations

import asyncio
from typing import Any

from harness import arguments, measure
from sa_model import item_model
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

    engine = create_async_engine(URL, pool_size=20, max_overflow=0)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def get_or_create(key: str) -> tuple[Any, bool]:
        async with sessions() as session:
            obj = await session.scalar(select(Item).where(Item.key == key))
            if obj is not None:
                return obj, False
            try:
                async with session.begin_nested():
                    obj = Item(key=key, value="v")
                    session.add(obj)
                await session.commit()
                return obj, True
            except IntegrityError:
                found = await session.scalar(select(Item).where(Item.key == key))
                if found is None:
                    raise
                return found, False

    await measure(args, get_or_create)
    await engine.dispose()


asyncio.run(main())

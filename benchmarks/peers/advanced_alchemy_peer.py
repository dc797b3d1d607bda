"""advanced-alchemy: ``SQLAlchemyAsyncRepository.get_or_upsert(match_fields=["key"])``
in a session per call, committed."""

from __future__ import annotations

import asyncio
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from harness import arguments, measure
from sa_model import item_model, side_model
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

ARGS = arguments()


class Base(DeclarativeBase):
    pass


Item = item_model(Base, ARGS.table)
Side = side_model(Base, f"{ARGS.table}_side")


class ItemRepository(SQLAlchemyAsyncRepository[Item]):
    model_type = Item


async def main() -> None:
    engine = create_async_engine(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
        pool_size=20,
        max_overflow=0,
    )
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def get_or_create(key: str) -> tuple[Any, bool]:
        async with sessions() as session:
            repo = ItemRepository(session=session)
            obj, created = await repo.get_or_upsert(
                match_fields=["key"], key=key, value="v"
            )
            await session.commit()
            return obj, created

    async def in_transaction(side_key: str, key: str) -> bool:
        async with sessions() as session, session.begin():
            session.add(Side(key=side_key))
            await session.flush()
            repo = ItemRepository(session=session)
            _, created = await repo.get_or_upsert(
                match_fields=["key"], key=key, value="v"
            )
            return bool(created)

    await measure(ARGS, get_or_create, in_transaction)
    await engine.dispose()


asyncio.run(main())

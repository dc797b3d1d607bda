"""sqlalchemy-objects: ``Item.objects.get_or_create`` in autocommit mode."""

from __future__ import annotations

import asyncio
from typing import Any

from harness import arguments, measure
from sa_model import item_model, side_model
from sqlalchemy.orm import DeclarativeBase

from sqlalchemy_objects import Database, ManagerMixin

URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def main() -> None:
    args = arguments()

    class Base(ManagerMixin, DeclarativeBase):
        pass

    Item = item_model(Base, args.table)
    Side = side_model(Base, f"{args.table}_side")

    db = Database(URL, pool_size=20, max_overflow=0)
    db.bind(Base)

    async def get_or_create(key: str) -> tuple[Any, bool]:
        result: tuple[Any, bool] = await Item.objects.get_or_create(
            key=key, defaults={"value": "v"}
        )
        return result

    async def in_transaction(side_key: str, key: str) -> bool:
        async with db.session():
            await Side.objects.create(key=side_key)
            _, created = await Item.objects.get_or_create(
                key=key, defaults={"value": "v"}
            )
        return bool(created)

    await measure(args, get_or_create, in_transaction)
    await db.dispose()


asyncio.run(main())

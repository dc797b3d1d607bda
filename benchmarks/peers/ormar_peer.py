"""ormar: ``Item.objects.get_or_create(_defaults=..., key=...)``."""

from __future__ import annotations

import asyncio
from typing import Any

import ormar
import sqlalchemy
from harness import arguments, measure

ARGS = arguments()
DATABASE = ormar.DatabaseConnection(
    "postgresql+asyncpg://postgres@127.0.0.1:5432/test", pool_size=20, max_overflow=0
)
CONFIG = ormar.OrmarConfig(metadata=sqlalchemy.MetaData(), database=DATABASE)


class Item(ormar.Model):
    ormar_config = CONFIG.copy(tablename=ARGS.table)

    id: int = ormar.Integer(primary_key=True)
    key: str = ormar.Text(unique=True)
    value: str = ormar.Text()


class Side(ormar.Model):
    ormar_config = CONFIG.copy(tablename=f"{ARGS.table}_side")

    id: int = ormar.Integer(primary_key=True)
    key: str = ormar.Text(unique=True)


async def main() -> None:
    await DATABASE.connect()

    async def get_or_create(key: str) -> tuple[Any, bool]:
        return await Item.objects.get_or_create(_defaults={"value": "v"}, key=key)

    async def in_transaction(side_key: str, key: str) -> bool:
        async with DATABASE.transaction():
            await Side.objects.create(key=side_key)
            _, created = await Item.objects.get_or_create(
                _defaults={"value": "v"}, key=key
            )
            return bool(created)

    await measure(ARGS, get_or_create, in_transaction)
    await DATABASE.disconnect()


asyncio.run(main())

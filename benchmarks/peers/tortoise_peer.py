"""Tortoise ORM: ``Item.get_or_create(key=..., defaults=...)``. Tortoise refuses
a unique TextField, so the key is a CharField mapped onto the same text column."""

from __future__ import annotations

import asyncio
from typing import Any

from harness import arguments, measure
from tortoise import Tortoise, fields, models
from tortoise.transactions import in_transaction as tortoise_transaction

ARGS = arguments()


class Item(models.Model):
    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=255, unique=True)  # a text column; see run.py
    value = fields.TextField()

    class Meta:
        table = ARGS.table


class Side(models.Model):
    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=255, unique=True)

    class Meta:
        table = f"{ARGS.table}_side"


async def main() -> None:
    await Tortoise.init(
        db_url="asyncpg://postgres@127.0.0.1:5432/test?minsize=20&maxsize=20",
        modules={"models": ["__main__"]},
    )

    async def get_or_create(key: str) -> tuple[Any, bool]:
        return await Item.get_or_create(key=key, defaults={"value": "v"})

    async def in_transaction(side_key: str, key: str) -> bool:
        async with tortoise_transaction() as conn:
            await Side.create(key=side_key, using_db=conn)
            _, created = await Item.get_or_create(
                key=key, defaults={"value": "v"}, using_db=conn
            )
            return bool(created)

    await measure(ARGS, get_or_create, in_transaction)
    await Tortoise.close_connections()


asyncio.run(main())

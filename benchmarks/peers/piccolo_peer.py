"""piccolo: ``Item.objects().get_or_create(Item.key == ..., defaults=...)``."""

from __future__ import annotations

import asyncio
from typing import Any

from harness import arguments, measure
from piccolo.columns import Text
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ARGS = arguments()
DB = PostgresEngine(
    config={"host": "127.0.0.1", "port": 5432, "database": "test", "user": "postgres"}
)


class Item(Table, tablename=ARGS.table, db=DB):
    key = Text(unique=True)
    value = Text()


class Side(Table, tablename=f"{ARGS.table}_side", db=DB):
    key = Text(unique=True)


async def main() -> None:
    await DB.start_connection_pool(min_size=20, max_size=20)

    async def get_or_create(key: str) -> tuple[Any, bool]:
        obj = await Item.objects().get_or_create(
            Item.key == key, defaults={Item.value: "v"}
        )
        return obj, bool(obj._was_created)

    async def in_transaction(side_key: str, key: str) -> bool:
        async with DB.transaction():
            await Side.insert(Side(key=side_key))
            obj = await Item.objects().get_or_create(
                Item.key == key, defaults={Item.value: "v"}
            )
            return bool(obj._was_created)

    await measure(ARGS, get_or_create, in_transaction)
    await DB.close_connection_pool()


asyncio.run(main())

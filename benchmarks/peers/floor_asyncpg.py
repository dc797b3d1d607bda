"""The floor: raw asyncpg. SELECT; INSERT ... ON CONFLICT (key) DO NOTHING
RETURNING; re-SELECT if nothing came back."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from harness import arguments, measure

URL = "postgresql://postgres@127.0.0.1:5432/test"


async def main() -> None:
    args = arguments()
    pool = await asyncpg.create_pool(URL, min_size=20, max_size=20)
    select = f"SELECT id, key, value FROM {args.table} WHERE key = $1"
    insert = (
        f"INSERT INTO {args.table} (key, value) VALUES ($1, 'v') "
        "ON CONFLICT (key) DO NOTHING RETURNING id, key, value"
    )

    side = f"INSERT INTO {args.table}_side (key) VALUES ($1)"

    async def on(conn: Any, key: str) -> tuple[Any, bool]:
        row = await conn.fetchrow(select, key)
        if row is not None:
            return row, False
        row = await conn.fetchrow(insert, key)
        if row is not None:
            return row, True
        return await conn.fetchrow(select, key), False

    async def get_or_create(key: str) -> tuple[Any, bool]:
        async with pool.acquire() as conn:
            return await on(conn, key)

    async def in_transaction(side_key: str, key: str) -> bool:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(side, side_key)
            return (await on(conn, key))[1]

    await measure(args, get_or_create, in_transaction)
    await pool.close()


asyncio.run(main())

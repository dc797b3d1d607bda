"""Tortoise ORM's ``Item.get_or_create`` on one backend, beside that driver's
raw floor: the Tortoise half of benchmarks/backends.py, run by it in Tortoise's
own virtualenv (``--child <backend>``, the same arguments). It measures with
backends.py's own code (its ``Raw`` floor, ``compare`` and ``race``) and
prints one JSON line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends import BACKENDS, CONC, TABLE, Raw, compare
from tortoise import Tortoise, fields, models

#: Tortoise's URL of each backend (asyncmy is its MySQL client when installed).
URLS = {
    "sqlite": "sqlite://{tmp}/bench.sqlite3",
    "mariadb": "mysql://root:@127.0.0.1:3306/test?minsize={n}&maxsize={n}",
    "psycopg": "psycopg://postgres@127.0.0.1:5432/test?minsize={n}&maxsize={n}",
    "asyncpg": "asyncpg://postgres@127.0.0.1:5432/test?minsize={n}&maxsize={n}",
}


class Item(models.Model):
    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=64, unique=True)
    value = fields.CharField(max_length=64)

    class Meta:
        table = TABLE


async def run(
    name: str, calls: int, hot: int, blocks: int, rounds: int
) -> dict[str, Any]:
    tmp = tempfile.mkdtemp()
    await Tortoise.init(
        db_url=URLS[name].format(tmp=tmp, n=CONC), modules={"models": ["__main__"]}
    )
    conn = Tortoise.get_connection("default")
    quote = "`" if name == "mariadb" else '"'
    await conn.execute_script(f"DROP TABLE IF EXISTS {quote}{TABLE}{quote}")
    await Tortoise.generate_schemas()
    await Item.bulk_create([Item(key=f"hot{i}", value="v") for i in range(hot)])
    raw = Raw(name, BACKENDS[name].format(tmp=tmp))
    await raw.open(CONC)

    async def tortoise(key: str) -> bool:
        _, created = await Item.get_or_create(key=key, defaults={"value": "v"})
        return bool(created)

    try:
        result = await compare(tortoise, raw, calls, hot, blocks, rounds)
    finally:
        await raw.close()
        await conn.execute_script(f"DROP TABLE IF EXISTS {quote}{TABLE}{quote}")
        await Tortoise.close_connections()
    return {"backend": name, **result}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=sorted(URLS), required=True)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--hot", type=int, default=1000)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print(
        json.dumps(
            asyncio.run(run(args.child, args.calls, args.hot, args.blocks, args.rounds))
        )
    )

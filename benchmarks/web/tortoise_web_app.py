"""Tortoise ORM's version of benchmarks/web/web_apps.py (its own venv):
``RegisterTortoise``, ``Item.get_or_create``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from tortoise import fields, models
from tortoise.contrib.fastapi import RegisterTortoise

TABLE = os.environ.get("TABLE", "bench_request_items")
POOL = int(os.environ.get("POOL", "10"))


class Item(models.Model):
    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=64, unique=True)
    value = fields.CharField(max_length=64)

    class Meta:
        table = TABLE


@asynccontextmanager
async def life(app: FastAPI) -> AsyncIterator[None]:
    async with RegisterTortoise(
        app,
        db_url=f"asyncpg://postgres@127.0.0.1:5432/test?minsize={POOL}&maxsize={POOL}",
        modules={"models": ["tortoise_web_app"]},
        generate_schemas=False,
    ):
        yield


app = FastAPI(lifespan=life)


@app.post("/items/{key}")
async def item(key: str) -> dict[str, object]:
    obj, created = await Item.get_or_create(key=key, defaults={"value": "v"})
    return {"id": obj.id, "key": obj.key, "value": obj.value, "created": created}

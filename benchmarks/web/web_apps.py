"""The endpoints of benchmarks/web_requests.py: ``POST /items/{key}`` doing
one get_or_create and returning the row as JSON, on one table.

    APP=raw          uvicorn web_apps:app   # asyncpg by hand (the floor)
    APP=middleware   uvicorn web_apps:app   # ours, as docs/fastapi.md shows
    APP=autocommit   uvicorn web_apps:app   # ours, no session (autocommit mode)

``TABLE`` names the table, ``POOL`` the connections per worker process.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sqlalchemy_objects import Database, ManagerMixin
from sqlalchemy_objects.fastapi import SessionMiddleware, lifespan

APP = os.environ.get("APP", "middleware")
TABLE = os.environ.get("TABLE", "bench_request_items")
POOL = int(os.environ.get("POOL", "10"))
DSN = "postgresql://postgres@127.0.0.1:5432/test"


class Base(ManagerMixin, DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = TABLE

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    value: Mapped[str] = mapped_column(String(64))


def raw_app() -> FastAPI:
    import asyncpg

    pool: Any = None

    @asynccontextmanager
    async def life(app: FastAPI) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(DSN, min_size=POOL, max_size=POOL)
        yield
        await pool.close()

    app = FastAPI(lifespan=life)
    select = f"SELECT id, key, value FROM {TABLE} WHERE key = $1"
    insert = (
        f"INSERT INTO {TABLE} (key, value) VALUES ($1, 'v') "
        "ON CONFLICT (key) DO NOTHING RETURNING id, key, value"
    )

    @app.post("/items/{key}")
    async def item(key: str) -> dict[str, object]:
        async with pool.acquire() as conn:
            row = await conn.fetchrow(select, key)
            created = False
            if row is None:
                row = await conn.fetchrow(insert, key)
                created = row is not None
                if row is None:
                    row = await conn.fetchrow(select, key)
        return {
            "id": row["id"],
            "key": row["key"],
            "value": row["value"],
            "created": created,
        }

    return app


def ours_app(middleware: bool) -> FastAPI:
    db = Database(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
        pool_size=POOL,
        max_overflow=0,
    )
    db.bind(Base)
    app = FastAPI(lifespan=lifespan(db))
    if middleware:
        app.add_middleware(SessionMiddleware, database=db)

    @app.post("/items/{key}")
    async def item(key: str) -> dict[str, object]:
        obj, created = await Item.objects.get_or_create(
            key=key, defaults={"value": "v"}
        )
        return {"id": obj.id, "key": obj.key, "value": obj.value, "created": created}

    return app


app = raw_app() if APP == "raw" else ours_app(APP == "middleware")

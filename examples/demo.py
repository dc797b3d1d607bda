"""Fire a few hundred concurrent get_or_create calls at a handful of keys.

Runs on the embedded SQLite database by default, or on DATABASE_URL if it is set:

    make demo
    DATABASE_URL=postgresql://postgres@127.0.0.1/test make demo
"""

from __future__ import annotations

import asyncio
import collections
import time

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sqlalchemy_objects import Database, ManagerMixin


class Base(ManagerMixin, DeclarativeBase):
    pass


class Tag(Base):
    __tablename__ = "demo_tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    colour: Mapped[str] = mapped_column(String(20), default="grey")


KEYS = ["python", "sqlalchemy", "asyncio", "postgresql", "sqlite"]
CALLS = 300


async def main() -> None:
    db = Database(pool_size=20, max_overflow=0)
    db.bind(Base)
    await db.drop_all()
    await db.create_all()

    async def call(i: int) -> tuple[str, bool]:
        tag, created = await Tag.objects.get_or_create(
            name=KEYS[i % len(KEYS)], defaults={"colour": "blue"}
        )
        return tag.name, created

    started = time.perf_counter()
    results = await asyncio.gather(
        *(call(i) for i in range(CALLS)), return_exceptions=True
    )
    elapsed = time.perf_counter() - started

    errors = [r for r in results if isinstance(r, BaseException)]
    ok = [r for r in results if not isinstance(r, BaseException)]
    created = collections.Counter(name for name, was_created in ok if was_created)
    rows = await Tag.objects.count()

    print(f"database         {db.url.render_as_string(hide_password=True)}")
    print(f"calls            {CALLS} concurrent get_or_create on {len(KEYS)} keys")
    print(f"rows in table    {rows}")
    print(f"created=True     {sum(created.values())} ({', '.join(sorted(created))})")
    print(f"found existing   {len(ok) - sum(created.values())}")
    print(f"exceptions       {len(errors)}")
    print(f"elapsed          {elapsed:.2f} s")
    for err in errors[:3]:
        print(f"  {type(err).__name__}: {err}")
    await db.drop_all()
    await db.dispose()
    if errors or rows != len(KEYS) or sum(created.values()) != len(KEYS):
        raise SystemExit("demo: the race was not handled correctly")


if __name__ == "__main__":
    asyncio.run(main())

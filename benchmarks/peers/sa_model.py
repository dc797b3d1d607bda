"""The benchmark table as a SQLAlchemy model, for the scripts built on
SQLAlchemy (ours, hand-written, advanced-alchemy), each in its own venv."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Text
from sqlalchemy.orm import mapped_column


def item_model(base: type[Any], table: str) -> Any:
    """Return the model ``Item(id, key, value)`` on *table*, under *base*."""
    return type(
        "Item",
        (base,),
        {
            "__tablename__": table,
            "id": mapped_column(Integer, primary_key=True),
            "key": mapped_column(Text, unique=True, nullable=False),
            "value": mapped_column(Text, nullable=False),
        },
    )


def side_model(base: type[Any], table: str) -> Any:
    """Return the model ``Side(id, key)`` on *table*: the row each caller of
    the in-transaction race writes before its get_or_create."""
    return type(
        "Side",
        (base,),
        {
            "__tablename__": table,
            "id": mapped_column(Integer, primary_key=True),
            "key": mapped_column(Text, unique=True, nullable=False),
        },
    )

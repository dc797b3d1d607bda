"""Django 6: ``Item.objects.aget_or_create(key=..., defaults=...)``."""

from __future__ import annotations

import asyncio
from typing import Any

import django
from django.conf import settings
from harness import arguments, measure

ARGS = arguments()
settings.configure(
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "test",
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": 5432,
            "CONN_MAX_AGE": None,
        }
    },
    INSTALLED_APPS=[],
    USE_TZ=True,
)
django.setup()

from django.db import models  # noqa: E402


class Item(models.Model):
    key = models.TextField(unique=True)
    value = models.TextField()

    class Meta:
        app_label = "peers"
        db_table = ARGS.table


async def get_or_create(key: str) -> tuple[Any, bool]:
    return await Item.objects.aget_or_create(key=key, defaults={"value": "v"})


asyncio.run(measure(ARGS, get_or_create))

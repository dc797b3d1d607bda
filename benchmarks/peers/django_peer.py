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

from asgiref.sync import sync_to_async  # noqa: E402
from django.db import models, transaction  # noqa: E402


class Item(models.Model):
    key = models.TextField(unique=True)
    value = models.TextField()

    class Meta:
        app_label = "peers"
        db_table = ARGS.table


class Side(models.Model):
    key = models.TextField(unique=True)

    class Meta:
        app_label = "peers"
        db_table = f"{ARGS.table}_side"


async def get_or_create(key: str) -> tuple[Any, bool]:
    return await Item.objects.aget_or_create(key=key, defaults={"value": "v"})


def _in_transaction(side_key: str, key: str) -> bool:
    # Django's transactions are synchronous: atomic() in a sync_to_async call.
    with transaction.atomic():
        Side.objects.create(key=side_key)
        _, created = Item.objects.get_or_create(key=key, defaults={"value": "v"})
    return bool(created)


in_transaction = sync_to_async(_in_transaction)

asyncio.run(measure(ARGS, get_or_create, in_transaction))

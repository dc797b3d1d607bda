"""A Django-style ``objects`` manager for SQLAlchemy 2 async models.

``user, created = await User.objects.get_or_create(username="ann", defaults={...})``
"""

from __future__ import annotations

from ._version import __version__
from .database import Database
from .exceptions import (
    ConfigurationError,
    FieldError,
    MultipleObjectsReturned,
    ObjectDoesNotExist,
    ObjectsError,
)
from .manager import Manager, ManagerMixin
from .queryset import QuerySet
from .session import current_session

__all__ = [
    "ConfigurationError",
    "Database",
    "FieldError",
    "Manager",
    "ManagerMixin",
    "MultipleObjectsReturned",
    "ObjectDoesNotExist",
    "ObjectsError",
    "QuerySet",
    "__version__",
    "current_session",
]

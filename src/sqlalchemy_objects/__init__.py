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
    TransactionManagementError,
)
from .expressions import Avg, Count, F, Max, Min, Q, Sum
from .manager import Manager, ManagerMixin
from .queryset import Page, QuerySet
from .session import current_session

__all__ = [
    "Avg",
    "ConfigurationError",
    "Count",
    "Database",
    "F",
    "FieldError",
    "Manager",
    "ManagerMixin",
    "Max",
    "Min",
    "MultipleObjectsReturned",
    "ObjectDoesNotExist",
    "ObjectsError",
    "Page",
    "Q",
    "QuerySet",
    "Sum",
    "TransactionManagementError",
    "__version__",
    "current_session",
]

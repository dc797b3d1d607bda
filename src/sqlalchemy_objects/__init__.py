"""A Django-style ``objects`` manager for SQLAlchemy 2 async models.

``user, created = await User.objects.get_or_create(username="ann", defaults={...})``
"""

from __future__ import annotations

from ._prefetch import Prefetch
from ._raw import RawQuerySet
from ._subqueries import Exists, OuterRef, Subquery
from ._version import __version__
from .database import Database
from .exceptions import (
    ConfigurationError,
    FieldError,
    MultipleObjectsReturned,
    NotSupportedError,
    ObjectDoesNotExist,
    ObjectsError,
    TransactionManagementError,
)
from .expressions import Avg, Count, F, Max, Min, Q, Sum
from .manager import Manager, ManagerMixin
from .queryset import Page, QuerySet, ValuesQuerySet
from .session import current_session

__all__ = [
    "Avg",
    "ConfigurationError",
    "Count",
    "Database",
    "Exists",
    "F",
    "FieldError",
    "Manager",
    "ManagerMixin",
    "Max",
    "Min",
    "MultipleObjectsReturned",
    "NotSupportedError",
    "ObjectDoesNotExist",
    "ObjectsError",
    "OuterRef",
    "Page",
    "Prefetch",
    "Q",
    "QuerySet",
    "RawQuerySet",
    "Subquery",
    "Sum",
    "TransactionManagementError",
    "ValuesQuerySet",
    "__version__",
    "current_session",
]

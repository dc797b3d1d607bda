"""
Exceptions raised by sqlalchemy-objects.

* ObjectsError                base: catch this to catch everything we raise
  + ConfigurationError        no session, no bound Database, bad URL or option
  + TransactionManagementError  select_for_update() outside a session
  + FieldError                unknown field or lookup: names model, name, choices
  + ObjectDoesNotExist        base of every Model.DoesNotExist (also a LookupError)
  + MultipleObjectsReturned   base of every Model.MultipleObjectsReturned

SQLAlchemy's own errors (``IntegrityError``, ``OperationalError``, ...) pass through
unwrapped; ``get_or_create`` re-raises the original ``IntegrityError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class ObjectsError(Exception):
    """Base class of every error sqlalchemy-objects raises on purpose."""


class ConfigurationError(ObjectsError):
    """The library is not set up for this call: no session, no database, bad option."""


class NotSupportedError(ObjectsError):
    """The database cannot do what the QuerySet asks (``distinct(*fields)``
    off PostgreSQL). Django's name."""


class TransactionManagementError(ObjectsError):
    """A call that needs a transaction (``select_for_update()``) ran outside
    one. Django's name."""


class FieldError(ObjectsError, TypeError):
    """A field or lookup name that the model does not have."""

    def __init__(
        self,
        message: str,
        *,
        model: type[Any] | None = None,
        name: str | None = None,
        valid: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.model = model
        self.name = name
        self.valid = tuple(valid)


class _ModelLookupError(ObjectsError):
    """A get() matched the wrong number of rows; carries .model and .lookup."""

    def __init__(
        self,
        message: str,
        *,
        model: type[Any] | None = None,
        lookup: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.model = model
        self.lookup = dict(lookup or {})


class ObjectDoesNotExist(_ModelLookupError, LookupError):
    """No row matched the lookup of ``get()``."""


class MultipleObjectsReturned(_ModelLookupError):
    """More than one row matched the lookup of ``get()``."""

"""The base of every model attribute that hands out a manager or a QuerySet.

``ManagerMixin.objects`` is declared with this type, so a model may assign any
subclass (a custom ``Manager``, ``QuerySet.as_manager()``) and type checkers
still see ``User.objects`` as a ``Manager[User]`` by default. Each subclass
implements ``__get__`` itself; this class only carries the typing, which is why
it can sit below both ``queryset`` and ``manager`` without importing either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn, overload

from ._typing import OwnerT

if TYPE_CHECKING:
    from .manager import Manager


def no_instance_access(owner: type[Any]) -> AttributeError:
    """The error for ``user.objects`` (a manager read from an instance)."""
    return AttributeError(
        f"Manager isn't accessible via {owner.__name__} instances; "
        f"use {owner.__name__}.objects"
    )


class ManagerDescriptor:
    """A model attribute that hands out a manager (or a QuerySet) per model."""

    __slots__ = ()

    if TYPE_CHECKING:

        @overload
        def __get__(self, instance: None, owner: type[OwnerT]) -> Manager[OwnerT]: ...
        @overload
        def __get__(self, instance: object, owner: type[Any]) -> NoReturn: ...
        def __get__(
            self, instance: object | None, owner: type[OwnerT]
        ) -> Manager[OwnerT]: ...

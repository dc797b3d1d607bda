"""Manager[T], ManagerMixin, the ``objects`` descriptor and per-model exceptions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NoReturn, Self, overload

from sqlalchemy.ext.asyncio import AsyncSession

from . import exceptions
from ._typing import ModelT, OwnerT
from .database import Database
from .queryset import QuerySet

if TYPE_CHECKING:
    from sqlalchemy import Select


def _no_instance_access(owner: type[Any]) -> AttributeError:
    return AttributeError(
        f"Manager isn't accessible via {owner.__name__} instances; "
        f"use {owner.__name__}.objects"
    )


class _ObjectsDescriptor:
    """The mixin's ``objects``: a Manager typed by the class it is read from."""

    def __init__(self) -> None:
        self._managers: dict[type[Any], Manager[Any]] = {}

    @overload
    def __get__(self, instance: None, owner: type[OwnerT]) -> Manager[OwnerT]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any]) -> NoReturn: ...
    def __get__(self, instance: object | None, owner: type[OwnerT]) -> Manager[OwnerT]:
        if instance is not None:
            raise _no_instance_access(owner)
        manager = self._managers.get(owner)
        if manager is None:
            manager = self._managers[owner] = Manager[OwnerT]().__get__(None, owner)
        return manager


class Manager(_ObjectsDescriptor, Generic[ModelT]):
    """The interface to a model's rows: ``User.objects.get(...)``.

    Subclass it and override :meth:`get_queryset` for a custom manager, as in
    Django; declare it on the model (``published = PublishedManager()``). Read
    from a subclass of the declaring model, a manager works on that subclass.
    """

    model: type[ModelT]

    def __init__(self) -> None:
        super().__init__()
        self._bound_model: type[ModelT] | None = None
        self._copies: dict[type[Any], Self] = {}

    @overload  # type: ignore[override]  # a custom manager keeps its own type
    def __get__(self, instance: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, instance: object, owner: type[Any]) -> NoReturn: ...
    def __get__(self, instance: object | None, owner: type[Any]) -> Self:
        if instance is not None:
            raise _no_instance_access(owner)
        if self._bound_model is owner:
            return self
        copy = self._copies.get(owner)
        if copy is None:
            copy = self._copies[owner] = self._bound_to(owner)
        return copy

    def _bound_to(self, model: type[Any]) -> Self:
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy._managers = {}
        copy._copies = {}
        copy._bound_model = model
        copy.model = model
        return copy

    def __repr__(self) -> str:
        model = (
            self._bound_model.__name__ if self._bound_model is not None else "unbound"
        )
        return f"<{type(self).__name__} of {model}>"

    def get_queryset(self) -> QuerySet[ModelT]:
        """Return the QuerySet every method of this manager starts from."""
        if self._bound_model is None:
            raise exceptions.ConfigurationError(
                f"{type(self).__name__} is not attached to a model; declare it on a "
                "model class and read it from there (User.objects)."
            )
        return QuerySet(self._bound_model)

    # The QuerySet's public methods, so `User.objects.get(...)` reads like Django.

    def using(self, target: AsyncSession | Database) -> QuerySet[ModelT]:
        """Return a QuerySet that runs on *target* (a session, or a Database)."""
        return self.get_queryset().using(target)

    def all(self) -> QuerySet[ModelT]:
        """Return a QuerySet of every row."""
        return self.get_queryset()

    def filter(self, **lookup: Any) -> QuerySet[ModelT]:
        """Return a QuerySet of the rows matching *lookup*."""
        return self.get_queryset().filter(**lookup)

    def exclude(self, **lookup: Any) -> QuerySet[ModelT]:
        """Return a QuerySet of the rows not matching *lookup*."""
        return self.get_queryset().exclude(**lookup)

    @property
    def statement(self) -> Select[ModelT]:
        """The SQLAlchemy ``Select`` of :meth:`get_queryset`."""
        return self.get_queryset().statement

    async def get(self, **lookup: Any) -> ModelT:
        """Return the one row matching *lookup*; see :meth:`QuerySet.get`."""
        return await self.get_queryset().get(**lookup)

    async def get_or_none(self, **lookup: Any) -> ModelT | None:
        """Return the one row matching *lookup*, or None."""
        return await self.get_queryset().get_or_none(**lookup)

    async def create(self, **values: Any) -> ModelT:
        """Insert and return a row; see :meth:`QuerySet.create`."""
        return await self.get_queryset().create(**values)

    async def get_or_create(
        self, defaults: Mapping[str, Any] | None = None, **lookup: Any
    ) -> tuple[ModelT, bool]:
        """Return ``(object, created)``; see :meth:`QuerySet.get_or_create`."""
        return await self.get_queryset().get_or_create(defaults, **lookup)

    async def count(self) -> int:
        """Return the number of rows."""
        return await self.get_queryset().count()

    async def exists(self) -> bool:
        """Return whether there is any row."""
        return await self.get_queryset().exists()

    async def first(self) -> ModelT | None:
        """Return the row with the lowest primary key, or None."""
        return await self.get_queryset().first()


def _subclass_exception(
    name: str, bases: tuple[type[Exception], ...], model: type[Any]
) -> type[Exception]:
    exc = type(
        name,
        bases,
        {
            "__module__": model.__module__,
            "__qualname__": f"{model.__qualname__}.{name}",
        },
    )
    return exc


class ManagerMixin:
    """Give every model an ``objects`` manager and its own exception classes.

    ``class Base(ManagerMixin, DeclarativeBase): pass`` -- then ``User.objects``
    is a ``Manager[User]``, and ``User.DoesNotExist`` / ``User.MultipleObjectsReturned``
    subclass :class:`ObjectDoesNotExist` / :class:`MultipleObjectsReturned`
    (and the parent model's, for inherited models).
    """

    objects = _ObjectsDescriptor()  # no ClassVar: models may assign a custom manager
    DoesNotExist: ClassVar[type[exceptions.ObjectDoesNotExist]] = (
        exceptions.ObjectDoesNotExist
    )
    MultipleObjectsReturned: ClassVar[type[exceptions.MultipleObjectsReturned]] = (
        exceptions.MultipleObjectsReturned
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("DoesNotExist", "MultipleObjectsReturned"):
            bases = tuple(
                dict.fromkeys(
                    getattr(b, name) for b in cls.__bases__ if hasattr(b, name)
                )
            )
            type.__setattr__(cls, name, _subclass_exception(name, bases, cls))

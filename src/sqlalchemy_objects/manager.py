"""Manager[T], ManagerMixin, the ``objects`` descriptor and per-model exceptions."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Generic,
    Literal,
    NoReturn,
    Self,
    overload,
)

from sqlalchemy.ext.asyncio import AsyncSession

from . import exceptions
from ._descriptor import ManagerDescriptor, no_instance_access
from ._pages import Page
from ._prefetch import Prefetch
from ._typing import ModelT, OwnerT
from .database import Database
from .expressions import Aggregate, Combinable, Conditional, OrderBy, Q
from .queryset import QuerySet, QuerySetManager, RawQuerySet, ValuesQuerySet

if TYPE_CHECKING:
    from sqlalchemy import Select

__all__ = ["Manager", "ManagerMixin", "QuerySetManager"]


class _ObjectsDescriptor(ManagerDescriptor):
    """The mixin's ``objects``: a Manager typed by the class it is read from."""

    def __init__(self) -> None:
        self._managers: dict[type[Any], Manager[Any]] = {}

    @overload
    def __get__(self, instance: None, owner: type[OwnerT]) -> Manager[OwnerT]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any]) -> NoReturn: ...
    def __get__(self, instance: object | None, owner: type[OwnerT]) -> Manager[OwnerT]:
        if instance is not None:
            raise no_instance_access(owner)
        manager = self._managers.get(owner)
        if manager is None:
            manager = self._managers[owner] = Manager[OwnerT]().__get__(None, owner)
        return manager


class Manager(ManagerDescriptor, Generic[ModelT]):
    """The interface to a model's rows: ``User.objects.get(...)``.

    Subclass it and override :meth:`get_queryset` for a custom manager, as in
    Django; declare it on the model (``published = PublishedManager()``). Read
    from a subclass of the declaring model, a manager works on that subclass.
    """

    model: type[ModelT]
    #: The QuerySet class :meth:`get_queryset` builds (see :meth:`from_queryset`).
    _queryset_class: ClassVar[type[QuerySet[Any]]] = QuerySet

    def __init__(self) -> None:
        self._bound_model: type[ModelT] | None = None
        self._copies: dict[type[Any], Self] = {}

    @overload  # type: ignore[override]  # a custom manager keeps its own type
    def __get__(self, instance: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, instance: object, owner: type[Any]) -> NoReturn: ...
    def __get__(self, instance: object | None, owner: type[Any]) -> Self:
        if instance is not None:
            raise no_instance_access(owner)
        if self._bound_model is owner:
            return self
        copy = self._copies.get(owner)
        if copy is None:
            copy = self._copies[owner] = self._bound_to(owner)
        return copy

    def _bound_to(self, model: type[Any]) -> Self:
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy._copies = {}
        copy._bound_model = model
        copy.model = model
        return copy

    def __repr__(self) -> str:
        model = (
            self._bound_model.__name__ if self._bound_model is not None else "unbound"
        )
        return f"<{type(self).__name__} of {model}>"

    if not TYPE_CHECKING:  # type checkers keep flagging unknown attributes

        def __getattr__(self, name: str) -> Any:
            # Only reached for attributes a Manager does not have.
            if name == "delete":
                model = self.__dict__.get("_bound_model")
                label = model.__name__ if model is not None else "Model"
                raise AttributeError(
                    f"{label}.objects has no delete(), as in Django: delete some "
                    f"rows with await {label}.objects.filter(...).delete(), or "
                    f"every row with await {label}.objects.all().delete().",
                    name=name,
                    obj=self,
                )
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}",
                name=name,
                obj=self,
            )

    def get_queryset(self) -> QuerySet[ModelT]:
        """Return the QuerySet every method of this manager starts from."""
        if self._bound_model is None:
            raise exceptions.ConfigurationError(
                f"{type(self).__name__} is not attached to a model; declare it on a "
                "model class and read it from there (User.objects)."
            )
        return self._queryset_class(model=self._bound_model)

    @classmethod
    def from_queryset(
        cls, queryset_class: type[QuerySet[Any]], class_name: str | None = None
    ) -> type[Self]:
        """Return a Manager subclass whose querysets are *queryset_class*, with the
        custom public methods of *queryset_class* copied onto it, as Django's
        ``Manager.from_queryset``.

        Type checkers cannot see methods added at run time; for a custom
        QuerySet they can follow, use :meth:`QuerySet.as_manager`.
        """
        if not (
            isinstance(queryset_class, type) and issubclass(queryset_class, QuerySet)  # pyright: ignore[reportUnnecessaryIsInstance]
        ):
            raise TypeError(
                f"from_queryset() takes a QuerySet subclass, not {queryset_class!r}"
            )
        attrs: dict[str, Any] = {"_queryset_class": queryset_class}
        for klass in reversed(queryset_class.__mro__):
            if not issubclass(klass, QuerySet) or klass is QuerySet:
                continue
            members: dict[str, Any] = dict(klass.__dict__)
            for name, value in members.items():
                if getattr(value, "queryset_only", None) is False and callable(value):
                    attrs[name] = _proxy(name, value)
                    continue
                if name.startswith("_") or hasattr(cls, name) or not callable(value):
                    continue
                if isinstance(value, classmethod | staticmethod):
                    continue
                # Django: queryset_only=True keeps a method off the manager,
                # queryset_only=False puts even a _private one on it.
                if getattr(value, "queryset_only", False):
                    continue
                attrs[name] = _proxy(name, value)
        name = class_name or f"{cls.__name__}From{queryset_class.__name__}"
        manager_class: Any = type(name, (cls,), attrs)
        return manager_class  # type: ignore[no-any-return]

    # The QuerySet's public methods, so `User.objects.get(...)` reads like Django.

    def using(self, target: AsyncSession | Database) -> QuerySet[ModelT]:
        """Return a QuerySet that runs on *target* (a session, or a Database)."""
        return self.get_queryset().using(target)

    def all(self) -> QuerySet[ModelT]:
        """Return a QuerySet of every row."""
        return self.get_queryset()

    def filter(self, *args: Q | Conditional, **lookup: Any) -> QuerySet[ModelT]:
        """Return a QuerySet of the rows matching every ``Q`` and lookup."""
        return self.get_queryset().filter(*args, **lookup)

    def exclude(self, *args: Q | Conditional, **lookup: Any) -> QuerySet[ModelT]:
        """Return a QuerySet of the rows not matching *args* and *lookup*."""
        return self.get_queryset().exclude(*args, **lookup)

    def order_by(self, *fields: str | Combinable | OrderBy) -> QuerySet[ModelT]:
        """Return a QuerySet ordered by *fields* (``"-name"`` descending)."""
        return self.get_queryset().order_by(*fields)

    def reverse(self) -> QuerySet[ModelT]:
        """Return a QuerySet in descending primary-key order."""
        return self.get_queryset().reverse()

    def annotate(
        self, *args: Aggregate, **kwargs: Aggregate | Combinable
    ) -> QuerySet[ModelT]:
        """Return a QuerySet with aggregates per row; see :meth:`QuerySet.annotate`."""
        return self.get_queryset().annotate(*args, **kwargs)

    def alias(self, **kwargs: Aggregate | Combinable) -> QuerySet[ModelT]:
        """Annotations to filter and order on, not selected; see
        :meth:`QuerySet.alias`."""
        return self.get_queryset().alias(**kwargs)

    def none(self) -> QuerySet[ModelT]:
        """Return a QuerySet that matches nothing (no statement is sent)."""
        return self.get_queryset().none()

    def distinct(self, *fields: str) -> QuerySet[ModelT]:
        """Return a QuerySet without duplicate rows."""
        return self.get_queryset().distinct(*fields)

    def select_for_update(
        self, *, nowait: bool = False, skip_locked: bool = False, of: Sequence[str] = ()
    ) -> QuerySet[ModelT]:
        """Return a QuerySet that locks its rows; see
        :meth:`QuerySet.select_for_update`."""
        return self.get_queryset().select_for_update(
            nowait=nowait, skip_locked=skip_locked, of=of
        )

    def iterator(self, chunk_size: int | None = None) -> AsyncIterator[ModelT]:
        """Stream every row, *chunk_size* at a time."""
        return self.get_queryset().iterator(chunk_size)

    async def latest(self, *fields: str) -> ModelT:
        """The last row by *fields*; see :meth:`QuerySet.latest`."""
        return await self.get_queryset().latest(*fields)

    async def earliest(self, *fields: str) -> ModelT:
        """The first row by *fields*; see :meth:`QuerySet.earliest`."""
        return await self.get_queryset().earliest(*fields)

    def only(self, *fields: str) -> QuerySet[ModelT]:
        """Return a QuerySet that loads only *fields* (and the primary key)."""
        return self.get_queryset().only(*fields)

    def defer(self, *fields: str | None) -> QuerySet[ModelT]:
        """Return a QuerySet that does not load *fields*."""
        return self.get_queryset().defer(*fields)

    def select_related(self, *fields: str) -> QuerySet[ModelT]:
        """Return a QuerySet that JOINs the named many-to-one relationships."""
        return self.get_queryset().select_related(*fields)

    def prefetch_related(self, *fields: str | Prefetch) -> QuerySet[ModelT]:
        """Return a QuerySet that loads the named relationships with SELECT ... IN
        (``Prefetch`` objects too)."""
        return self.get_queryset().prefetch_related(*fields)

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
        """Return the first row (by primary key unless the queryset is ordered)."""
        return await self.get_queryset().first()

    async def last(self) -> ModelT | None:
        """Return the last row (by primary key unless the queryset is ordered)."""
        return await self.get_queryset().last()

    async def bulk_get_or_create(
        self,
        lookups: Iterable[Mapping[str, Any]],
        defaults: Mapping[str, Any]
        | Callable[[dict[str, Any]], Mapping[str, Any]]
        | None = None,
    ) -> list[tuple[ModelT, bool]]:
        """get_or_create for many keys at once (see QuerySet.bulk_get_or_create)."""
        return await self.get_queryset().bulk_get_or_create(lookups, defaults)

    async def paginate(self, after: str | None = None, size: int = 50) -> Page[ModelT]:
        """One page of keyset pagination by primary key (see QuerySet.paginate)."""
        return await self.get_queryset().paginate(after=after, size=size)

    async def update_or_create(
        self,
        defaults: Mapping[str, Any] | None = None,
        create_defaults: Mapping[str, Any] | None = None,
        **lookup: Any,
    ) -> tuple[ModelT, bool]:
        """Return ``(object, created)``; see :meth:`QuerySet.update_or_create`."""
        return await self.get_queryset().update_or_create(
            defaults, create_defaults, **lookup
        )

    async def bulk_create(
        self,
        objs: Iterable[ModelT],
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Sequence[str] | None = None,
        unique_fields: Sequence[str] | None = None,
    ) -> list[ModelT]:
        """Insert many objects; see :meth:`QuerySet.bulk_create`."""
        return await self.get_queryset().bulk_create(
            objs,
            batch_size=batch_size,
            ignore_conflicts=ignore_conflicts,
            update_conflicts=update_conflicts,
            update_fields=update_fields,
            unique_fields=unique_fields,
        )

    async def bulk_update(
        self,
        objs: Iterable[ModelT],
        fields: Sequence[str],
        batch_size: int | None = None,
    ) -> int:
        """Update many objects' *fields*; see :meth:`QuerySet.bulk_update`."""
        return await self.get_queryset().bulk_update(objs, fields, batch_size)

    def raw(
        self,
        raw_query: str,
        params: Sequence[Any] | Mapping[str, Any] = (),
        translations: Mapping[str, str] | None = None,
    ) -> RawQuerySet[ModelT]:
        """Objects of raw SQL, Django's ``%s`` placeholders (see :mod:`._raw`):
        ``await User.objects.raw("SELECT * FROM users WHERE age > %s", [30])``."""
        return self.get_queryset().raw(raw_query, params, translations)

    async def dates(
        self, field_name: str, kind: str, order: str = "ASC"
    ) -> list[dt.date]:
        """The distinct dates of the rows; see :meth:`QuerySet.dates`."""
        return await self.get_queryset().dates(field_name, kind, order)

    async def datetimes(
        self,
        field_name: str,
        kind: str,
        order: str = "ASC",
        tzinfo: dt.tzinfo | None = None,
    ) -> list[dt.datetime]:
        """The distinct datetimes; see :meth:`QuerySet.datetimes`."""
        return await self.get_queryset().datetimes(field_name, kind, order, tzinfo)

    async def in_bulk(
        self, id_list: Iterable[Any] | None = None, *, field_name: str = "pk"
    ) -> dict[Any, ModelT]:
        """Return ``{value: obj}``; see :meth:`QuerySet.in_bulk`."""
        return await self.get_queryset().in_bulk(id_list, field_name=field_name)

    def values(self, *fields: str) -> ValuesQuerySet[dict[str, Any]]:
        """Every row as a dict, lazily; see :meth:`QuerySet.values`."""
        return self.get_queryset().values(*fields)

    @overload
    def values_list(
        self,
        *fields: str,
        flat: Literal[False] = False,
        named: Literal[False] = False,
    ) -> ValuesQuerySet[tuple[Any, ...]]: ...
    @overload
    def values_list(
        self, *fields: str, flat: Literal[True], named: Literal[False] = False
    ) -> ValuesQuerySet[Any]: ...
    @overload
    def values_list(
        self, *fields: str, flat: Literal[False] = False, named: Literal[True]
    ) -> ValuesQuerySet[Any]: ...
    def values_list(
        self, *fields: str, flat: bool = False, named: bool = False
    ) -> ValuesQuerySet[tuple[Any, ...]] | ValuesQuerySet[Any]:
        """Every row as a tuple, lazily; see :meth:`QuerySet.values_list`."""
        queryset: Any = self.get_queryset()  # both overloads at once
        result: ValuesQuerySet[Any] = queryset.values_list(
            *fields, flat=flat, named=named
        )
        return result

    async def aggregate(self, *args: Aggregate, **kwargs: Aggregate) -> dict[str, Any]:
        """Aggregate over every row; see :meth:`QuerySet.aggregate`."""
        return await self.get_queryset().aggregate(*args, **kwargs)

    async def update(self, **values: Any) -> int:
        """Update every row of the table, as Django's ``Model.objects.update()``.

        There is no ``Model.objects.delete()`` (Django has none either): deleting a
        whole table takes the explicit ``Model.objects.all().delete()``.
        """
        return await self.get_queryset().update(**values)


def _proxy(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def proxy(self: Manager[Any], *args: Any, **kwargs: Any) -> Any:
        return getattr(self.get_queryset(), name)(*args, **kwargs)

    return proxy


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

    if TYPE_CHECKING:
        # No ClassVar: models may assign a custom manager or QuerySet.as_manager().
        objects: ManagerDescriptor = _ObjectsDescriptor()
    else:
        # Not annotated at run time: pydantic (SQLModel) would take an
        # annotation of a base class for a field of the model.
        objects = _ObjectsDescriptor()
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

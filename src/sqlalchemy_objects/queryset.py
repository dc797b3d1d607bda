"""QuerySet[T]: a lazy, chainable query on one model, and its terminal coroutines.

Where a call runs (SPEC §2): an explicit ``using(session | db)``, else the
ambient ``db.session()``, else the Database bound to the model (autocommit),
else :class:`ConfigurationError`.
"""

from __future__ import annotations

import inspect as _inspect
import logging
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, Self, TypeVar, overload

import sqlalchemy.orm
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.util import await_only

from . import _dialects, _fast_insert, exceptions, lookups
from ._typing import ModelT
from .database import Database, bound_database
from .expressions import Aggregate, Q, negate
from .session import current_session, lock_for, shielded

if TYPE_CHECKING:
    from .manager import QuerySetManager

logger = logging.getLogger("sqlalchemy_objects")

_R = TypeVar("_R")

#: Like Django: fetch at most this many rows to report "more than 20" cheaply.
MAX_GET_RESULTS: Final = 21
#: Rows fetched per round trip when a QuerySet is iterated with ``async for``.
CHUNK_SIZE: Final = 100
#: Values per statement in in_bulk(): far below every backend's bind-parameter
#: limit (SQLite 32,766, asyncpg 32,767).
IN_BULK_BATCH: Final = 1000

_Lock = Literal["share", "update"] | None

_SNAPSHOT_NOTE: Final = (
    "sqlalchemy-objects: get_or_create lost a race for {model} matching {lookup}, "
    "but the retried get() could not see the winning row because this transaction "
    "runs at {level} isolation and its snapshot predates that row. Retry the whole "
    "transaction (or run get_or_create outside it, in autocommit mode)."
)


def _describe(lookup: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in lookup.items()) or "(no lookup)"


class QuerySet(Generic[ModelT]):
    """A lazy query on *model*.

    Builders return a new QuerySet; nothing touches the database until the
    QuerySet is awaited or a terminal coroutine is awaited.
    """

    __slots__ = (
        "_defer",
        "_limit",
        "_manager",
        "_offset",
        "_only",
        "_options",
        "_order",
        "_target",
        "_where",
        "model",
    )

    def __init__(
        self,
        model: type[ModelT],
        *,
        where: tuple[ColumnElement[bool], ...] = (),
        target: AsyncSession | Database | None = None,
    ) -> None:
        self.model = model
        self._where = where
        self._target = target
        self._order: tuple[str, ...] = ()
        self._limit: int | None = None
        self._offset = 0
        # (relationship path, joined?) from select_related / prefetch_related
        self._options: tuple[tuple[str, bool], ...] = ()
        # only() / defer(): the columns to load is (only or all) minus defer
        self._only: frozenset[str] | None = None
        self._defer: frozenset[str] = frozenset()
        # True only for the QuerySet a model's as_manager() attribute hands out
        self._manager = False

    @classmethod
    def as_manager(cls) -> QuerySetManager[Self]:
        """Return a model attribute that hands out this QuerySet class, typed.

        ``objects = ArticleQuerySet.as_manager()`` makes ``Article.objects`` an
        ``ArticleQuerySet`` of ``Article``, so the custom methods chain with the
        built-in ones and type checkers see both
        (``Article.objects.published().filter(...).published()``). As on a
        Manager, ``Article.objects.delete()`` is refused: say ``.all().delete()``.
        """
        from .manager import QuerySetManager

        return QuerySetManager(cls)

    def __repr__(self) -> str:
        return f"<QuerySet of {self.model.__name__}, {len(self._where)} condition(s)>"

    def __bool__(self) -> bool:
        raise TypeError(
            "A QuerySet has no truth value without a query: use `await qs.exists()`."
        )

    def _clone(self, **changes: Any) -> Self:
        clone = type(self).__new__(type(self))
        clone.model = self.model
        clone._manager = False
        for name in (
            "where",
            "target",
            "order",
            "limit",
            "offset",
            "options",
            "only",
            "defer",
        ):
            setattr(clone, f"_{name}", changes.get(name, getattr(self, f"_{name}")))
        return clone

    @property
    def _sliced(self) -> bool:
        return self._limit is not None or self._offset != 0

    def _refuse_if_sliced(self, what: str) -> None:
        if self._sliced:
            raise TypeError(f"Cannot {what} a query once a slice has been taken.")

    # -- builders ---------------------------------------------------------------

    def using(self, target: AsyncSession | Database) -> Self:
        """Run on *target*: an ``AsyncSession`` (flush only) or a ``Database``."""
        if not isinstance(target, AsyncSession | Database):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(
                "using() takes an AsyncSession or a Database, "
                f"not {type(target).__name__}"
            )
        return self._clone(target=target)

    def all(self) -> Self:
        """Return a copy of this QuerySet (Django's ``all()``)."""
        return self._clone()

    def _condition(
        self, args: tuple[Q, ...], lookup: Mapping[str, Any]
    ) -> ColumnElement[bool] | None:
        return Q(*args, **lookup).resolve(self.model)

    def filter(self, *args: Q, **lookup: Any) -> Self:
        """Return a QuerySet narrowed to rows matching every ``Q`` and lookup."""
        if not args and not lookup:
            return self
        self._refuse_if_sliced("filter")
        where = self._condition(args, lookup)
        return self if where is None else self._clone(where=(*self._where, where))

    def exclude(self, *args: Q, **lookup: Any) -> Self:
        """Return a QuerySet without the rows that match all of *args* and *lookup*.

        As in Django, a row for which the condition is unknown (a NULL compared)
        is kept: ``exclude(nickname="x")`` keeps users without a nickname.
        """
        self._refuse_if_sliced("filter")
        where = self._condition(args, lookup)
        if where is None:
            return self
        return self._clone(where=(*self._where, negate(where)))

    def order_by(self, *fields: str) -> Self:
        """Return a QuerySet ordered by *fields* (``"-name"`` for descending).

        ``order_by()`` with no field clears the ordering. Only columns of this
        model can be named (``pk`` included).
        """
        self._refuse_if_sliced("reorder")
        for field in fields:
            if not isinstance(field, str):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise TypeError(f"order_by() takes field names, not {field!r}")
            lookups.column_of(self.model, field.removeprefix("-"), "order_by()")
        return self._clone(order=fields)

    def reverse(self) -> Self:
        """Return a QuerySet in the opposite order (by primary key if unordered)."""
        self._refuse_if_sliced("reverse")
        return self._clone(order=tuple(_flip(f) for f in self._ordering()))

    def select_related(self, *fields: str) -> Self:
        """Load the named many-to-one relationships in the same query (a JOIN).

        ``"author__team"`` follows a chain. A one-to-many name raises FieldError:
        use :meth:`prefetch_related` for those, as in Django.
        """
        for field in fields:
            _loader(self.model, field, joined=True)  # FieldError now, not at await
        related = tuple((f, True) for f in fields)
        return self._clone(options=(*self._options, *related))

    def prefetch_related(self, *fields: str) -> Self:
        """Load the named relationships (any direction) with one extra SELECT ... IN
        per relationship, so reading them needs no IO."""
        for field in fields:
            _loader(self.model, field, joined=False)
        related = tuple((f, False) for f in fields)
        return self._clone(options=(*self._options, *related))

    def only(self, *fields: str) -> Self:
        """Load only the named columns (and the primary key) when rows are fetched.

        A later ``only()`` replaces the set; fields named by :meth:`defer`
        stay deferred, as in Django. Reading an attribute that was not loaded
        needs IO, which async code cannot do on attribute access: use
        ``await session.refresh(obj, ["field"])``, or ``await
        obj.awaitable_attrs.field`` with SQLAlchemy's ``AsyncAttrs`` mixin.
        """
        names = self._column_names(fields, "only()")
        return self._clone(only=frozenset(names))

    def defer(self, *fields: str | None) -> Self:
        """Do not load the named columns when rows are fetched; ``defer(None)``
        clears every deferral. See :meth:`only` for reading them later."""
        if fields == (None,):
            return self._clone(defer=frozenset())
        if any(f is None for f in fields):
            raise TypeError("defer(None) clears deferrals and takes no other field.")
        names = self._column_names([f for f in fields if f is not None], "defer()")
        return self._clone(defer=self._defer | frozenset(names))

    def _column_names(self, fields: Iterable[str], what: str) -> list[str]:
        names: list[str] = []
        for field in fields:
            if not isinstance(field, str):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise TypeError(f"{what} takes field names, not {field!r}")
            names.append(lookups.column_of(self.model, field, what).key)
        return names

    def _loaded_columns(self) -> list[Any] | None:
        """The column attributes only()/defer() leave loaded, or None for all."""
        if self._only is None and not self._defer:
            return None
        mapper = lookups.mapper_of(self.model)
        pk = {mapper.get_property_by_column(c).key for c in mapper.primary_key}
        names = list(mapper.column_attrs.keys())
        wanted = self._only if self._only is not None else set(names)
        return [
            getattr(self.model, name)
            for name in names
            if name in pk or (name in wanted and name not in self._defer)
        ]

    def __getitem__(self, key: slice) -> Self:
        """``qs[a:b]``: LIMIT / OFFSET, lazily; slices of slices compose."""
        if not isinstance(key, slice):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(
                f"QuerySet indices must be slices, not {type(key).__name__}: an "
                "async QuerySet cannot fetch a row on indexing. Use "
                f"`await qs[{key}:{key} + 1]` or `await qs.first()`."
            )
        start, stop = key.start or 0, key.stop
        if key.step is not None:
            raise TypeError("QuerySet slices do not support a step.")
        if start < 0 or (stop is not None and stop < 0):
            raise ValueError("Negative indexing is not supported.")
        offset = self._offset + start
        limit = None if stop is None else max(stop - start, 0)
        if self._limit is not None:
            room = max(self._limit - start, 0)
            limit = room if limit is None else min(limit, room)
        return self._clone(offset=offset, limit=limit)

    def _ordering(self) -> tuple[str, ...]:
        return self._order or ("pk",)

    @property
    def ordered(self) -> bool:
        """Whether this QuerySet has an explicit ``order_by``."""
        return bool(self._order)

    @property
    def statement(self) -> Select[ModelT]:
        """The SQLAlchemy ``Select`` this QuerySet stands for (the escape hatch)."""
        stmt: Select[ModelT] = self._select(select(self.model))
        if self._options:
            joined = {path for path, is_joined in self._options if is_joined}
            stmt = stmt.options(
                *(
                    _loader(self.model, path, joined=is_joined, joined_paths=joined)
                    for path, is_joined in dict.fromkeys(self._options)
                )
            )
        columns = self._loaded_columns()
        if columns is not None:
            stmt = stmt.options(sqlalchemy.orm.load_only(*columns))
        return stmt

    def _select(self, stmt: Any) -> Any:
        """Apply this QuerySet's WHERE, ORDER BY, LIMIT and OFFSET to *stmt*."""
        if self._where:
            stmt = stmt.where(and_(*self._where))
        if self._order:
            stmt = stmt.order_by(*_order_clauses(self.model, self._order))
        if self._limit is not None:
            stmt = stmt.limit(self._limit)
        if self._offset:
            stmt = stmt.offset(self._offset)
        return stmt

    # -- where calls run ----------------------------------------------------------

    def _resolve(self) -> AsyncSession | Database:
        if self._target is not None:
            return self._target
        session = current_session()
        if session is not None:
            return session
        db = bound_database(self.model)
        if db is None:
            raise exceptions.ConfigurationError(
                f"No session or database for {self.model.__name__}: call db.bind(Base) "
                'once at start-up, or run the call inside "async with db.session():", '
                "or pass one explicitly with .using(session_or_db)."
            )
        return db

    async def _read(self, work: Callable[[AsyncSession], Awaitable[_R]]) -> _R:
        target = self._resolve()
        if isinstance(target, Database):
            return await target.run_read(work)
        async with lock_for(target).hold():
            return await work(target)

    async def _write(self, work: Callable[[AsyncSession], Awaitable[_R]]) -> _R:
        target = self._resolve()
        if isinstance(target, Database):
            return await target.run_write(work)
        async with lock_for(target).hold():
            return await work(target)

    # -- terminal coroutines ----------------------------------------------------

    def __await__(self) -> Generator[Any, None, list[ModelT]]:
        return self._fetch_all().__await__()

    async def _fetch_all(self) -> list[ModelT]:
        stmt = self.statement

        async def work(session: AsyncSession) -> list[ModelT]:
            return list((await session.scalars(stmt)).all())

        return await self._read(work)

    def __aiter__(self) -> AsyncIterator[ModelT]:
        """``async for obj in qs``: stream the rows.

        In autocommit mode the rows come from one read transaction in chunks of
        :data:`CHUNK_SIZE`; inside a session they are fetched at once (the
        session's connection must stay free for the loop body's own queries).
        """
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ModelT]:
        target = self._resolve()
        if not isinstance(target, Database):
            for obj in await self._fetch_all():
                yield obj
            return
        stmt = self.statement.execution_options(yield_per=CHUNK_SIZE)
        session = target.read_sessionmaker()
        try:
            result = await session.stream_scalars(stmt)
            try:
                async for obj in result:
                    yield obj
            finally:
                # An unbuffered MySQL result must be drained before the session
                # can roll back and return its connection.
                await shielded(result.close())
        finally:
            await shielded(session.close())

    async def count(self) -> int:
        """Return the number of matching rows."""
        stmt = select(func.count()).select_from(self.statement.subquery())

        async def work(session: AsyncSession) -> int:
            return int((await session.scalar(stmt)) or 0)

        return await self._read(work)

    async def exists(self) -> bool:
        """Return whether any row matches."""
        stmt = select(self.statement.exists())
        return bool(await self._read(lambda session: session.scalar(stmt)))

    async def first(self) -> ModelT | None:
        """Return the first row in this QuerySet's order (by primary key if it has
        none), or None."""
        qs = self if self._order else self._clone(order=("pk",))
        rows = await qs[:1]._fetch_all()
        return rows[0] if rows else None

    async def last(self) -> ModelT | None:
        """Return the last row in this QuerySet's order (by primary key if it has
        none), or None."""
        rows = await self.reverse()[:1]._fetch_all()
        return rows[0] if rows else None

    async def values(self, *fields: str) -> list[dict[str, Any]]:
        """Return the rows as dicts of *fields* (every column if none is named)."""
        names = fields or tuple(lookups.mapper_of(self.model).column_attrs.keys())
        rows = await self._column_rows(names, "values()")
        return [dict(zip(names, row, strict=True)) for row in rows]

    @overload
    async def values_list(
        self, *fields: str, flat: Literal[False] = False
    ) -> list[tuple[Any, ...]]: ...
    @overload
    async def values_list(self, *fields: str, flat: Literal[True]) -> list[Any]: ...
    async def values_list(
        self, *fields: str, flat: bool = False
    ) -> list[tuple[Any, ...]] | list[Any]:
        """Return the rows as tuples of *fields*; ``flat=True`` with one field
        returns the bare values."""
        if flat and len(fields) != 1:
            raise TypeError(
                "'flat' is not valid when values_list is called with more than one "
                f"field (got {len(fields)})."
            )
        names = fields or tuple(lookups.mapper_of(self.model).column_attrs.keys())
        rows = await self._column_rows(names, "values_list()")
        if flat:
            return [row[0] for row in rows]
        return [tuple(row) for row in rows]

    async def _column_rows(
        self, names: Sequence[str], what: str
    ) -> Sequence[Sequence[Any]]:
        columns = [lookups.column_of(self.model, name, what) for name in names]
        stmt: Select[Any] = self._select(select(*columns).select_from(self.model))

        async def work(session: AsyncSession) -> Sequence[Sequence[Any]]:
            rows: Sequence[Sequence[Any]] = (await session.execute(stmt)).all()
            return rows

        return await self._read(work)

    async def in_bulk(
        self, id_list: Iterable[Any] | None = None, *, field_name: str = "pk"
    ) -> dict[Any, ModelT]:
        """Return ``{value: obj}`` for the rows whose *field_name* is in *id_list*
        (every row if *id_list* is None). *field_name* must be unique.

        Long lists are split into statements of :data:`IN_BULK_BATCH` values, so
        tens of thousands of ids never reach a bind-parameter limit.
        """
        self._refuse_if_sliced("use in_bulk() on")
        column = lookups.column_of(self.model, field_name, "in_bulk()")
        if not (column.primary_key or column.unique) and not _unique_alone(
            self.model, column
        ):
            raise ValueError(
                f"in_bulk()'s field_name must be a unique field but "
                f"{self.model.__name__}.{column.key} isn't."
            )
        key = column.key
        if id_list is None:
            return {getattr(obj, key): obj for obj in await self._fetch_all()}
        if isinstance(id_list, str | bytes):
            raise TypeError(f"in_bulk() takes a list of values, not {id_list!r}")
        ids = list(dict.fromkeys(id_list))
        found: dict[Any, ModelT] = {}
        for start in range(0, len(ids), IN_BULK_BATCH):
            batch = ids[start : start + IN_BULK_BATCH]
            for obj in await self.filter(**{f"{key}__in": batch})._fetch_all():
                found[getattr(obj, key)] = obj
        return found

    async def aggregate(self, *args: Aggregate, **kwargs: Aggregate) -> dict[str, Any]:
        """Return ``{alias: value}`` for aggregates over the matching rows:
        ``aggregate(Avg("age"), oldest=Max("age"))``."""
        named: dict[str, Aggregate] = {}
        for agg in (*args, *kwargs.values()):
            if not isinstance(agg, Aggregate):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise TypeError(
                    f"aggregate() takes Count/Sum/Avg/Min/Max objects, not {agg!r}"
                )
        for agg in args:
            named[agg.default_alias] = agg
        named.update(kwargs)
        if not named:
            raise TypeError("aggregate() needs at least one aggregate.")
        attrs = [agg.column(self.model) for agg in named.values()]
        if self._sliced:  # aggregate over the slice: SELECT ... FROM (subquery)
            inner = self._select(select(self.model)).subquery()
            operands: list[Any] = [
                None if a is None else inner.c[a.property.columns[0].name]
                for a in attrs
            ]
            stmt: Select[Any] = select(
                *(
                    agg.apply(op)
                    for agg, op in zip(named.values(), operands, strict=True)
                )
            ).select_from(inner)
        else:
            stmt = select(
                *(agg.apply(a) for agg, a in zip(named.values(), attrs, strict=True))
            ).select_from(self.model)
            if self._where:
                stmt = stmt.where(and_(*self._where))

        async def work(session: AsyncSession) -> Sequence[Any]:
            row: Sequence[Any] = (await session.execute(stmt)).one()
            return row

        row = await self._read(work)
        return {
            alias: agg.convert(value, self.model)
            for (alias, agg), value in zip(named.items(), row, strict=True)
        }

    async def update(self, **values: Any) -> int:
        """Set *values* on every matching row in one UPDATE; return the number of
        rows matched. Objects of the session are brought up to date."""
        self._refuse_if_sliced("update")
        if not values:
            raise TypeError(f"{self.model.__name__}.objects.update() needs values.")
        for name in values:
            lookups.column_of(self.model, name, "update()")
        stmt = update(self.model).values(**values)
        if self._where:
            stmt = stmt.where(and_(*self._where))

        async def work(session: AsyncSession) -> int:
            result = await session.execute(stmt)
            return int(result.rowcount)  # type: ignore[attr-defined]

        return await self._write(work)

    async def delete(self) -> tuple[int, dict[str, int]]:
        """Delete every matching row in one DELETE; return ``(count, {model: count})``
        as Django does. The database's ON DELETE rules apply; SQLAlchemy's
        ORM-level cascades do not run."""
        if self._manager:
            name = self.model.__name__
            raise TypeError(
                f"{name}.objects.delete() would empty the whole table, so, as in "
                f"Django, it takes an explicit {name}.objects.all().delete()."
            )
        self._refuse_if_sliced("delete")
        stmt = delete(self.model)
        if self._where:
            stmt = stmt.where(and_(*self._where))

        async def work(session: AsyncSession) -> int:
            result = await session.execute(stmt)
            return int(result.rowcount)  # type: ignore[attr-defined]

        count = await self._write(work)
        return count, ({self.model.__name__: count} if count else {})

    async def get(self, **lookup: Any) -> ModelT:
        """Return the one row matching *lookup* (and this QuerySet's filters).

        Raises:
            Model.DoesNotExist: no row matches.
            Model.MultipleObjectsReturned: more than one row matches.
            FieldError: a name in *lookup* is not a field or lookup of the model.
        """
        qs = self.filter(**lookup)
        return qs._one(await qs._read(qs._fetch_for_get), lookup)

    async def get_or_none(self, **lookup: Any) -> ModelT | None:
        """Return the one row matching *lookup*, or None if there is none."""
        qs = self.filter(**lookup)
        rows = await qs._read(qs._fetch_for_get)
        return None if not rows else qs._one(rows, lookup)

    async def create(self, **values: Any) -> ModelT:
        """Insert a row from *values*; return it with its key and server defaults.

        Inside a session it only flushes (the session's block commits); otherwise
        it runs in its own short transaction.
        """
        lookups.check_field_names(self.model, values, "create()")
        target = self._resolve()
        if isinstance(target, Database):
            return await target.run_write(lambda session: self._insert(session, values))
        async with lock_for(target).hold():
            return await self._insert(target, values)

    async def get_or_create(
        self, defaults: Mapping[str, Any] | None = None, **lookup: Any
    ) -> tuple[ModelT, bool]:
        """Return ``(object, created)``: the row matching *lookup*, created if missing.

        The row is created from the exact lookups merged with *defaults*
        (*defaults* wins; a callable value is called, and awaited if it returns an
        awaitable, only when creating). If a concurrent caller inserts the same row
        first, the ``IntegrityError`` from our insert triggers exactly one retried
        get; when that finds the row we return ``(row, False)``, otherwise the
        original ``IntegrityError`` is re-raised. Inside a session the insert runs
        in a SAVEPOINT, so a lost race never harms the caller's transaction.

        Raises:
            FieldError: an unknown field in *lookup* or *defaults* (before any SQL).
            Model.MultipleObjectsReturned: the lookup matches several rows.
            sqlalchemy.exc.IntegrityError: the insert failed for another reason
                than a lost race (another unique key, a foreign key, NOT NULL...).
        """
        whole_rows = self._loads_whole_rows()
        plain = whole_rows and not self._where  # the manager's own QuerySet
        target = self._resolve()
        if isinstance(target, Database):
            # A lookup shape already proven valid and eligible for the
            # one-statement path has a prepared SELECT: no WHERE to build, no
            # FieldError possible.
            prepared = (
                _fast_insert.prepared_select(self.model, lookup) if plain else None
            )
            qs = self if prepared is not None else self.filter(**lookup)  # FieldError
            create_from = self._creation_values(lookup, defaults)
            return await qs._get_or_create_autocommit(
                target, create_from, lookup, prepared, one_statement=whole_rows
            )
        async with lock_for(target).hold():
            # Exact matches on columns: a SELECT prepared once per lookup shape
            # finds a hit without building a WHERE clause.
            orm = (
                _fast_insert.orm_select(self.model, lookup, MAX_GET_RESULTS)
                if plain
                else None
            )
            qs = self.filter(**lookup) if orm is None else self  # FieldError
            create_from = self._creation_values(lookup, defaults)
            if orm is None:
                return await qs._get_or_create_in(target, create_from, lookup)
            rows = list((await target.scalars(*orm)).all())
            if rows:
                return self._one(rows, lookup), False
            return await self.filter(**lookup)._get_or_create_in(
                target, create_from, lookup, known_missing=True
            )

    def _creation_values(
        self, lookup: Mapping[str, Any], defaults: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """get_or_create's values for a new row: the exact lookups merged with
        *defaults* (checked: FieldError names the bad keys)."""
        checked = self._check_defaults(defaults, "get_or_create", "defaults")
        return {**lookups.creation_values(self.model, lookup), **checked}

    def _loads_whole_rows(self) -> bool:
        """Whether this QuerySet reads whole rows and nothing more, as the
        prepared and one-statement paths do: no order, slice, column choice
        or loader option (filters aside)."""
        return not (
            self._order
            or self._limit is not None
            or self._offset
            or self._options
            or self._only is not None
            or self._defer
        )

    async def update_or_create(
        self,
        defaults: Mapping[str, Any] | None = None,
        create_defaults: Mapping[str, Any] | None = None,
        **lookup: Any,
    ) -> tuple[ModelT, bool]:
        """Update the row matching *lookup* with *defaults*, or create it; return
        ``(object, created)`` (Django 5's signature).

        The row is read with ``SELECT ... FOR UPDATE`` (where the backend has it) so
        nobody changes it between the read and the write. Only fields whose value
        changes are written. When creating, the values are the exact lookups merged
        with *create_defaults*, or with *defaults* if *create_defaults* is None.
        Callable values are called (and awaited) when used. Races on creation are
        handled as in :meth:`get_or_create`; in autocommit mode the read, the
        create and the update share one transaction.
        """
        qs = self.filter(**lookup)
        updates = self._check_defaults(defaults, "update_or_create", "defaults")
        creates = (
            updates
            if create_defaults is None
            else self._check_defaults(
                create_defaults, "update_or_create", "create_defaults"
            )
        )
        create_from = {**lookups.creation_values(self.model, lookup), **creates}

        async def work(session: AsyncSession) -> tuple[ModelT, bool]:
            obj, created = await qs._get_or_create_in(
                session, create_from, lookup, for_update=True
            )
            if created:
                return obj, True
            for key, value in (await self._resolve_values(updates)).items():
                setattr(obj, key, value)
            await session.flush()  # SQLAlchemy writes only the changed columns
            return obj, False

        return await self._write(work)

    async def bulk_create(
        self,
        objs: Iterable[ModelT],
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Sequence[str] | None = None,
        unique_fields: Sequence[str] | None = None,
    ) -> list[ModelT]:
        """Insert *objs* with one multi-row INSERT per batch; return them.

        Primary keys are set on the objects when the backend can return them
        (RETURNING: PostgreSQL, SQLite, MariaDB), except with *ignore_conflicts*,
        where skipped rows return nothing. *ignore_conflicts* skips rows that hit a
        unique constraint; *update_conflicts* updates *update_fields* of the
        existing row instead (PostgreSQL/SQLite ``ON CONFLICT (unique_fields)``,
        MySQL/MariaDB ``ON DUPLICATE KEY UPDATE``, which fires on any unique key
        and ignores *unique_fields*). All batches run in one transaction.
        """
        rows, objs = self._bulk_rows(objs)
        _check_bulk_options(
            self.model,
            batch_size,
            ignore_conflicts,
            update_conflicts,
            update_fields,
            unique_fields,
        )
        if not rows:
            return objs
        size = batch_size or len(rows)
        if update_conflicts:
            _refuse_duplicate_keys(self.model, rows, unique_fields or (), size)
        mapper = lookups.mapper_of(self.model)
        pk_keys = [mapper.get_property_by_column(c).key for c in mapper.primary_key]

        async def work(session: AsyncSession) -> None:
            backend = _backend(session)
            dialect = session.get_bind().dialect
            returning = (
                not ignore_conflicts
                and dialect.insert_executemany_returning_sort_by_parameter_order
            )
            for start in range(0, len(rows), size):
                batch = rows[start : start + size]
                stmt = _bulk_insert(
                    self.model,
                    backend,
                    ignore_conflicts,
                    update_conflicts,
                    update_fields or (),
                    unique_fields or (),
                )
                if returning:
                    stmt = stmt.returning(
                        *(getattr(self.model, k) for k in pk_keys),
                        sort_by_parameter_order=True,
                    )
                result = await session.execute(
                    stmt, batch, execution_options={"insertmanyvalues_page_size": size}
                )
                if returning:
                    for obj, pk in zip(objs[start:], result.all(), strict=False):
                        for key, value in zip(pk_keys, pk, strict=True):
                            setattr(obj, key, value)

        await self._write(work)
        return objs

    def _bulk_rows(
        self, objs: Iterable[ModelT]
    ) -> tuple[list[dict[str, Any]], list[ModelT]]:
        """Return each object's set column values, checking they are all models."""
        objs = list(objs)
        mapper = lookups.mapper_of(self.model)
        keys = list(mapper.column_attrs.keys())
        rows: list[dict[str, Any]] = []
        for obj in objs:
            if not isinstance(obj, self.model):
                raise TypeError(
                    f"{self.model.__name__}.objects.bulk_create() takes "
                    f"{self.model.__name__} instances, not {type(obj).__name__}"
                )
            state = inspect(obj)
            if state.persistent or state.detached:
                raise ValueError(
                    f"bulk_create() got a {self.model.__name__} that is already "
                    "saved; it inserts new objects only."
                )
            rows.append({k: state.dict[k] for k in keys if k in state.dict})
        return rows, objs

    def _check_defaults(
        self, values: Mapping[str, Any] | None, method: str, argument: str
    ) -> dict[str, Any]:
        if values is not None and not isinstance(values, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(
                f"{self.model.__name__}.objects.{method}({argument}=...) takes a "
                f"mapping of field names to values, not {type(values).__name__}; "
                f"to look up a field named {argument!r}, use {argument}__exact=..."
            )
        checked = dict(values or {})
        lookups.check_field_names(self.model, checked, f"{method}({argument}=...)")
        return checked

    # -- internals ----------------------------------------------------------------

    async def _fetch_for_get(
        self, session: AsyncSession, *, lock: _Lock = None
    ) -> list[ModelT]:
        stmt = self.statement.limit(MAX_GET_RESULTS)
        if lock is not None:
            stmt = stmt.with_for_update(read=lock == "share")
        result = await session.scalars(stmt)
        return list(result.all())

    def _one(self, rows: list[ModelT], lookup: Mapping[str, Any]) -> ModelT:
        if len(rows) == 1:
            return rows[0]
        name = self.model.__name__
        if not rows:
            raise self.model.DoesNotExist(  # type: ignore[attr-defined]
                f"{name} matching {_describe(lookup)} does not exist.",
                model=self.model,
                lookup=lookup,
            )
        many = "more than 20" if len(rows) >= MAX_GET_RESULTS else str(len(rows))
        raise self.model.MultipleObjectsReturned(  # type: ignore[attr-defined]
            f"get() returned {many} {name} rows matching {_describe(lookup)}; "
            "it expects exactly one. Is the lookup covered by a unique constraint?",
            model=self.model,
            lookup=lookup,
        )

    async def _first_or_none(
        self, session: AsyncSession, lookup: Mapping[str, Any], *, lock: _Lock = None
    ) -> ModelT | None:
        rows = await self._fetch_for_get(session, lock=lock)
        return None if not rows else self._one(rows, lookup)

    async def _insert(self, session: AsyncSession, values: Mapping[str, Any]) -> ModelT:
        obj = self.model(**values)
        session.add(obj)
        await session.flush()
        # Server defaults the INSERT could not return (no RETURNING, or a column
        # SQLAlchemy does not fetch eagerly) are loaded now, while a connection is
        # at hand, so reading them later never needs IO (no MissingGreenlet).
        state = inspect(obj)
        missing = [
            key
            for key in state.mapper.column_attrs.keys()  # noqa: SIM118
            if key in state.unloaded
        ]
        if missing:
            await session.refresh(obj, attribute_names=missing)
        return obj

    @staticmethod
    async def _resolve_values(values: Mapping[str, Any]) -> dict[str, Any]:
        resolved: dict[str, Any] = {}
        for key, value in values.items():
            if callable(value):
                value = value()
                if _inspect.isawaitable(value):
                    value = await value
            resolved[key] = value
        return resolved

    async def _get_or_create_in(
        self,
        session: AsyncSession,
        create_from: Mapping[str, Any],
        lookup: Mapping[str, Any],
        *,
        for_update: bool = False,
        known_missing: bool = False,
    ) -> tuple[ModelT, bool]:
        """*known_missing*: the caller has just read and found no row."""
        if not known_missing:
            obj = await self._first_or_none(
                session, lookup, lock="update" if for_update else None
            )
            if obj is not None:
                return obj, False
        values = await self._resolve_values(create_from)
        # The caller's pending objects are flushed here, outside the try: their
        # errors are theirs, not a race of ours.
        await session.flush()
        try:
            async with session.begin_nested():  # a lost race costs only the savepoint
                obj = await self._insert(session, values)
        except IntegrityError as exc:
            if not _dialects.is_unique_violation(exc, _backend(session)):
                raise
            _log_lost_race(self.model)
            backend = _backend(session)
            lock: _Lock = "update" if for_update else None
            if lock is None and _dialects.locking_read_sees_latest(backend):
                lock = "share"
            found = await self._first_or_none(session, lookup, lock=lock)  # one retry
            if found is None:
                await self._note_snapshot(session, exc, lookup)
                raise
            return found, False
        except DBAPIError as exc:
            # InnoDB rolls back the whole transaction on a deadlock, taking our
            # savepoint with it; the failed ROLLBACK TO SAVEPOINT must not hide
            # the deadlock, which is what the caller has to act on.
            cause = exc.__context__
            if _dialects.savepoint_was_lost(exc, _backend(session)) and isinstance(
                cause, DBAPIError
            ):
                raise cause from None
            raise
        return obj, True

    async def _get_or_create_autocommit(
        self,
        db: Database,
        create_from: Mapping[str, Any],
        lookup: Mapping[str, Any],
        prepared: _fast_insert.Prepared | None = None,
        *,
        one_statement: bool = True,
    ) -> tuple[ModelT, bool]:
        """*self* is filtered by *lookup*, unless *prepared* (the lookup's
        prepared SELECT) stands in for that filter. *one_statement*: the
        QuerySet loads whole rows and nothing more, as that path does."""
        target = (
            _fast_insert.conflict_target(self.model, lookup)
            if one_statement and db.one_statement_get_or_create
            else None
        )
        outcome = None
        if target is not None:
            key = target
            spec = prepared or _fast_insert.where_select(self.model, self._where)
            outcome = await db.run_autocommit(
                lambda executor, progress: self._get_or_insert_autocommit(
                    db, executor, progress, create_from, spec, key
                )
            )
        if isinstance(outcome, tuple):
            return outcome
        qs = self if prepared is None else self.filter(**lookup)
        if outcome is None:  # not eligible: read in a read transaction
            obj = await db.run_read(lambda session: qs._first_or_none(session, lookup))
            if obj is not None:
                return obj, False
            values = await self._resolve_values(create_from)
        else:  # eligible, but the ORM path must create: values already resolved
            values = outcome
        try:
            # The call owns this transaction, so it needs no savepoint.
            obj = await db.run_write(lambda session: qs._insert(session, values))
        except IntegrityError as exc:
            return await qs._after_lost_race(db, lookup, exc)
        return obj, True

    def _get_or_insert_autocommit(
        self,
        db: Database,
        executor: Any,
        progress: _fast_insert.Progress,
        create_from: Mapping[str, Any],
        spec: _fast_insert.Prepared,
        target: tuple[str, ...],
    ) -> tuple[ModelT, bool] | dict[str, Any] | None:
        """get_or_create on one connection without a transaction (PostgreSQL):
        SELECT; on a miss ``INSERT ... ON CONFLICT (key) DO NOTHING RETURNING``;
        on a conflict one more SELECT, each statement committed by itself.

        Runs inside SQLAlchemy's greenlet (see ``Database.run_autocommit``):
        *executor* is a sync ``Connection`` or ``Session``, and callable
        defaults are awaited with ``await_only``.

        Returns None when the ORM path must do everything (several rows
        matched), or the resolved creation values when it must create the row
        (the object or the sessions have something a flush would run, or the
        conflicting row is gone again).
        """
        single, obj = _fast_insert.select_one(executor, self.model, spec)
        if not single:
            return None
        if obj is not None:
            return obj, False
        values = dict(create_from)
        if any(callable(value) for value in values.values()):
            values = await_only(self._resolve_values(create_from))
        candidate = self.model(**values)
        row = (
            _fast_insert.insert_values(candidate)
            if _fast_insert.holds_columns_only(candidate)
            else None
        )
        if row is None or db.autocommit_flush_listeners():
            return values
        progress.writing = True
        error: IntegrityError | None = None
        try:
            created = _fast_insert.insert_or_nothing(executor, candidate, row, target)
        except IntegrityError as exc:
            if not _dialects.is_unique_violation(exc, "postgresql"):
                raise
            created, error = False, exc
            executor.rollback()  # a savepoint under the pytest plugin
        progress.writing = False
        if created:
            executor.commit()  # no-op without a transaction
            return candidate, True
        _log_lost_race(self.model)
        # A new statement: it sees every row committed before it started.
        _, found = _fast_insert.select_one(executor, self.model, spec)
        if found is not None:
            return found, False
        if error is not None:
            raise error
        return values

    async def _after_lost_race(
        self, db: Database, lookup: Mapping[str, Any], error: IntegrityError
    ) -> tuple[ModelT, bool]:
        """The one retried get after a lost race: ``(row, False)``, else the
        original *error* re-raised."""
        if not _dialects.is_unique_violation(error, db.backend):
            raise error
        _log_lost_race(self.model)
        # A fresh transaction sees the winner's row at any isolation level.
        found = await db.run_read(lambda session: self._first_or_none(session, lookup))
        if found is None:
            raise error
        return found, False

    async def _note_snapshot(
        self, session: AsyncSession, exc: IntegrityError, lookup: Mapping[str, Any]
    ) -> None:
        conn = await session.connection()
        level = await conn.get_isolation_level()
        if _dialects.has_snapshot_reads(_backend(session), level):
            exc.add_note(
                _SNAPSHOT_NOTE.format(
                    model=self.model.__name__, lookup=_describe(lookup), level=level
                )
            )


def _log_lost_race(model: type[Any]) -> None:
    logger.debug("get_or_create lost a race for %s; retrying get()", model.__name__)


def _backend(session: AsyncSession) -> str:
    name: str = session.get_bind().dialect.name
    return "mysql" if name == "mariadb" else name


def _flip(field: str) -> str:
    return field[1:] if field.startswith("-") else f"-{field}"


def _order_clauses(model: type[Any], fields: Iterable[str]) -> list[ColumnElement[Any]]:
    clauses: list[ColumnElement[Any]] = []
    for field in fields:
        column = lookups.column_of(model, field.removeprefix("-"), "order_by()")
        clauses.append(column.desc() if field.startswith("-") else column.asc())
    return clauses


def _unique_alone(model: type[Any], column: Any) -> bool:
    """Tell whether a unique constraint or index covers exactly *column*."""
    table = lookups.mapper_of(model).local_table
    name = column.property.columns[0].name
    for constraint in getattr(table, "constraints", ()):
        cols = getattr(constraint, "columns", None)
        if (
            type(constraint).__name__ in {"UniqueConstraint", "PrimaryKeyConstraint"}
            and cols is not None
            and [c.name for c in cols] == [name]
        ):
            return True
    return any(
        index.unique and [c.name for c in index.columns] == [name]
        for index in getattr(table, "indexes", ())
    )


def _loader(
    model: type[Any],
    path: str,
    *,
    joined: bool,
    joined_paths: frozenset[str] | set[str] = frozenset(),
) -> Any:
    """Return the loader option for a ``select_related`` / ``prefetch_related`` path.

    A prefetch path that runs through a select_related one (``author`` and
    ``author__articles``) keeps the JOIN for the shared part.
    """
    what = "select_related()" if joined else "prefetch_related()"
    if not isinstance(path, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(f"{what} takes relationship names, not {path!r}")
    current = model
    option: Any | None = None
    parts = path.split(lookups.LOOKUP_SEP)
    for depth, part in enumerate(parts):
        mapper = lookups.mapper_of(current)
        prop = mapper.relationships.get(part)
        if prop is None or (joined and prop.uselist):
            valid = sorted(
                key
                for key, rel in mapper.relationships.items()
                if not (joined and rel.uselist)
            )
            hint = (
                f" {current.__name__}.{part} is one-to-many or many-to-many: use "
                "prefetch_related() for it."
                if prop is not None
                else ""
            )
            raise exceptions.FieldError(
                f"Invalid field name {part!r} in {what} on {model.__name__} "
                f"(path {path!r}). Choices are: {', '.join(valid) or '(none)'}.{hint}",
                model=model,
                name=part,
                valid=valid,
            )
        attr = getattr(current, part)
        prefix = lookups.LOOKUP_SEP.join(parts[: depth + 1])
        strategy = "joinedload" if joined or prefix in joined_paths else "selectinload"
        option = (
            getattr(sqlalchemy.orm, strategy)(attr)
            if option is None
            else getattr(option, strategy)(attr)
        )
        current = prop.mapper.class_
    assert option is not None
    return option


def _check_bulk_options(
    model: type[Any],
    batch_size: int | None,
    ignore_conflicts: bool,
    update_conflicts: bool,
    update_fields: Sequence[str] | None,
    unique_fields: Sequence[str] | None,
) -> None:
    name = model.__name__
    if batch_size is not None and (
        not isinstance(batch_size, int)  # pyright: ignore[reportUnnecessaryIsInstance]
        or isinstance(batch_size, bool)
        or batch_size < 1
    ):
        raise ValueError(
            f"bulk_create(batch_size=...) must be a positive int, not {batch_size!r}"
        )
    if ignore_conflicts and update_conflicts:
        raise ValueError(
            "ignore_conflicts and update_conflicts are mutually exclusive."
        )
    if not update_conflicts:
        if update_fields or unique_fields:
            raise ValueError(
                "update_fields and unique_fields only apply with update_conflicts=True."
            )
        return
    if not update_fields:
        raise ValueError(
            f"{name}.objects.bulk_create(update_conflicts=True) needs update_fields: "
            "the fields to update when a row insertion fails on a conflict."
        )
    if not unique_fields:
        raise ValueError(
            f"{name}.objects.bulk_create(update_conflicts=True) needs unique_fields: "
            "the unique fields whose conflict triggers the update."
        )
    for field in (*update_fields, *unique_fields):
        lookups.column_of(model, field, "bulk_create()")
    pk_names = {
        lookups.mapper_of(model).get_property_by_column(c).key
        for c in lookups.mapper_of(model).primary_key
    }
    if pk_names & set(update_fields):
        raise ValueError(
            f"bulk_create() cannot update primary key fields of {name}: "
            f"{', '.join(sorted(pk_names & set(update_fields)))}."
        )


def _refuse_duplicate_keys(
    model: type[Any],
    rows: list[dict[str, Any]],
    unique_fields: Sequence[str],
    size: int,
) -> None:
    """One statement cannot update the same row twice (PostgreSQL refuses it):
    name the key instead of sending the batch."""
    keys = [lookups.column_of(model, f, "bulk_create()").key for f in unique_fields]
    for start in range(0, len(rows), size):
        seen: set[tuple[Any, ...]] = set()
        for row in rows[start : start + size]:
            key = tuple(row.get(k) for k in keys)
            if None in key:
                continue
            if key in seen:
                shown = ", ".join(f"{k}={v!r}" for k, v in zip(keys, key, strict=True))
                raise ValueError(
                    f"bulk_create(update_conflicts=True) got two {model.__name__} rows "
                    f"with {shown} in one batch; a row cannot be updated twice by one "
                    "statement. Remove the duplicate."
                )
            seen.add(key)


def _bulk_insert(
    model: type[Any],
    backend: str,
    ignore_conflicts: bool,
    update_conflicts: bool,
    update_fields: Sequence[str],
    unique_fields: Sequence[str],
) -> Any:
    """Return the dialect's INSERT for bulk_create, with its conflict clause."""
    stmt: Any
    if backend == "mysql":
        stmt = mysql.insert(model)
        if ignore_conflicts:
            return stmt.prefix_with("IGNORE")
        if update_conflicts:
            return stmt.on_duplicate_key_update(
                {f: stmt.inserted[_column_name(model, f)] for f in update_fields}
            )
        return stmt
    stmt = (postgresql if backend == "postgresql" else sqlite).insert(model)
    if ignore_conflicts:
        return stmt.on_conflict_do_nothing()
    if update_conflicts:
        return stmt.on_conflict_do_update(
            index_elements=[_column_name(model, f) for f in unique_fields],
            set_={
                _column_name(model, f): stmt.excluded[_column_name(model, f)]
                for f in update_fields
            },
        )
    return stmt


def _column_name(model: type[Any], field: str) -> str:
    name: str = (
        lookups.column_of(model, field, "bulk_create()").property.columns[0].name
    )
    return name

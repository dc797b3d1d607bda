"""QuerySet[T]: a lazy, chainable query on one model, and its terminal coroutines.

This module is the public surface only. What a QuerySet means in SQL is
:mod:`._query`; where a call runs, :mod:`._routing`; get_or_create's algorithm,
:mod:`._get_or_create`; bulk operations, :mod:`._bulk`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import (
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import aclosing
from typing import Any, Final, Generic, Literal, NoReturn, Self, TypeVar, overload

from sqlalchemy import ColumnElement, Select
from sqlalchemy.ext.asyncio import AsyncSession

from . import (
    _bulk,
    _compound,
    _dates,
    _get_or_create,
    _many,
    _pages,
    _rows,
    _values,
    lookups,
)
from ._descriptor import ManagerDescriptor, no_instance_access
from ._dialects import backend_of
from ._pages import Page as Page  # re-exported by the package
from ._prefetch import Prefetch
from ._query import Query
from ._raw import RawQuerySet as RawQuerySet  # re-exported by the manager
from ._routing import Target, read, resolve, write
from ._subqueries import correlated
from ._typing import ModelT
from ._values import ValuesQuerySet as ValuesQuerySet  # re-exported by the package
from .database import Database
from .exceptions import TransactionManagementError
from .expressions import Aggregate, Combinable, Conditional, OrderBy, Q

_QuerySetT = TypeVar("_QuerySetT", bound="QuerySet[Any]")

#: Rows fetched per round trip when a QuerySet is iterated with ``async for``.
CHUNK_SIZE: Final = 100


class QuerySet(Generic[ModelT]):
    """A lazy query on *model*.

    Builders return a new QuerySet; nothing touches the database until the
    QuerySet is awaited or a terminal coroutine is awaited.
    """

    __slots__ = ("_manager", "_query", "_target", "model")

    def __init__(
        self,
        model: type[ModelT],
        *,
        where: tuple[ColumnElement[bool], ...] = (),
        target: AsyncSession | Database | None = None,
    ) -> None:
        self.model = model
        self._query = Query(model, where)
        self._target = target
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
        return QuerySetManager(cls)

    def __repr__(self) -> str:
        return (
            f"<QuerySet of {self.model.__name__}, "
            f"{len(self._query.where)} condition(s)>"
        )

    def __bool__(self) -> bool:
        raise TypeError(
            "A QuerySet has no truth value without a query: use `await qs.exists()`."
        )

    def _clone(self, query: Query | None = None, target: Target | None = None) -> Self:
        clone = type(self).__new__(type(self))
        clone.model = self.model
        clone._manager = False
        clone._query = self._query if query is None else query
        clone._target = self._target if target is None else target
        return clone

    def _with(self, query: Query) -> Self:
        """This QuerySet if *query* is its own (nothing changed), else a clone."""
        return self if query is self._query else self._clone(query)

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

    def filter(self, *args: Q | Conditional, **lookup: Any) -> Self:
        """Return a QuerySet narrowed to rows matching every ``Q`` and lookup."""
        return self._with(self._query.filter(args, lookup))

    def exclude(self, *args: Q | Conditional, **lookup: Any) -> Self:
        """Return a QuerySet without the rows that match all of *args* and *lookup*.

        As in Django, a row for which the condition is unknown (a NULL compared)
        is kept: ``exclude(nickname="x")`` keeps users without a nickname.
        """
        return self._with(self._query.exclude(args, lookup))

    def order_by(self, *fields: str | Combinable | OrderBy) -> Self:
        """Return a QuerySet ordered by *fields* (``"-name"`` for descending).

        ``order_by()`` with no field clears the ordering. Only columns of this
        model can be named (``pk`` included), or ``F("name").desc(nulls_last=True)``.
        """
        return self._clone(self._query.order_by(fields))

    def reverse(self) -> Self:
        """Return a QuerySet in the opposite order (by primary key if unordered)."""
        return self._clone(self._query.reverse())

    def annotate(self, *args: Aggregate, **kwargs: Aggregate | Combinable) -> Self:
        """Return a QuerySet whose objects carry the aggregates as attributes:
        ``Author.objects.annotate(n=Count("books")).filter(n__gt=1)``.

        Over a relationship each value is a correlated subquery over the
        related rows (``Count("books", distinct=True)``,
        ``Sum("books__pages", filter=Q(books__pages__gt=100))``), so several
        annotations never inflate each other as Django's JOINs can. The names
        can be filtered on (``n__gte=2``), ordered by and asked of
        ``values()``. Positional aggregates are named as Django names them
        (``books__count``).
        """
        named = _values.named_annotations(args, kwargs)
        return self._clone(self._query.annotate(named))

    def alias(self, **kwargs: Aggregate | Combinable) -> Self:
        """As :meth:`annotate`, to filter and order on without selecting it."""
        return self._clone(self._query.annotate(kwargs, alias=True))

    def none(self) -> Self:
        """Return a QuerySet that matches nothing (no statement is sent)."""
        return self._clone(self._query.nothing())

    def distinct(self, *fields: str) -> Self:
        """Return a QuerySet without duplicate rows (``SELECT DISTINCT``).

        ``distinct("author_id")`` is PostgreSQL's ``DISTINCT ON``: the first
        row (in the QuerySet's order, which must start with those fields) of
        each group; elsewhere running it raises :class:`NotSupportedError`, as
        in Django, rather than silently answering plain DISTINCT's rows.
        """
        self._query.refuse_if_combined("distinct()")
        for name in fields:
            lookups.field_column(self.model, name, "distinct()")  # FieldError now
        return self._clone(
            self._query.replace(distinct=True, distinct_fields=tuple(fields))
        )

    def union(self, *others: QuerySet[ModelT], all: bool = False) -> Self:
        """The rows of this QuerySet and of *others* (``UNION``; ``all=True``
        keeps duplicates), as Django's; see :mod:`._compound`."""
        return self._with(_compound.combine(self._query, "union", others, all))

    def intersection(self, *others: QuerySet[ModelT]) -> Self:
        """The rows in this QuerySet and in every one of *others* (``INTERSECT``)."""
        return self._with(_compound.combine(self._query, "intersection", others))

    def difference(self, *others: QuerySet[ModelT]) -> Self:
        """The rows of this QuerySet that none of *others* has (``EXCEPT``)."""
        return self._with(_compound.combine(self._query, "difference", others))

    def select_for_update(
        self,
        *,
        nowait: bool = False,
        skip_locked: bool = False,
        of: Sequence[str] = (),
    ) -> Self:
        """Lock the rows this QuerySet reads until the session's transaction
        ends (``SELECT ... FOR UPDATE``), as Django's ``select_for_update()``.

        Only inside a session (``async with db.session():`` or ``using(session)``):
        outside one the lock would end with the read, and the call raises
        :class:`TransactionManagementError`. ``skip_locked=True`` skips rows
        another transaction holds (a worker claiming jobs); ``nowait=True``
        raises at once instead of waiting. ``of=("self", "author")`` names
        what to lock (PostgreSQL). On SQLite it changes nothing: a session there
        holds the database's write lock from its first statement.
        """
        return self._clone(self._query.locked(nowait, skip_locked, of))

    def select_related(self, *fields: str) -> Self:
        """Load the named many-to-one relationships in the same query (a JOIN).

        ``"author__team"`` follows a chain. A one-to-many name raises FieldError:
        use :meth:`prefetch_related` for those, as in Django.
        """
        return self._clone(self._query.related(fields, joined=True))

    def prefetch_related(self, *fields: str | Prefetch) -> Self:
        """Load the named relationships (any direction) with one extra SELECT ... IN
        per relationship, so reading them needs no IO; ``Prefetch`` objects too."""
        return self._clone(self._query.prefetched(fields))

    def only(self, *fields: str) -> Self:
        """Load only the named columns (and the primary key) when rows are fetched.

        A later ``only()`` replaces the set; fields named by :meth:`defer`
        stay deferred, as in Django. Reading an attribute that was not loaded
        needs IO, which async code cannot do on attribute access: use
        ``await session.refresh(obj, ["field"])``, or ``await
        obj.awaitable_attrs.field`` with SQLAlchemy's ``AsyncAttrs`` mixin.
        """
        return self._clone(self._query.with_only(fields))

    def defer(self, *fields: str | None) -> Self:
        """Do not load the named columns when rows are fetched; ``defer(None)``
        clears every deferral. See :meth:`only` for reading them later."""
        return self._clone(self._query.with_defer(fields))

    def __getitem__(self, key: slice) -> Self:
        """``qs[a:b]``: LIMIT / OFFSET, lazily; slices of slices compose."""
        if not isinstance(key, slice):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise _rows.not_a_slice(key)
        return self._clone(self._query.sliced_by(key))

    @property
    def ordered(self) -> bool:
        """Whether this QuerySet has an explicit ``order_by``."""
        return bool(self._query.order)

    @property
    def statement(self) -> Select[ModelT]:
        """The SQLAlchemy ``Select`` this QuerySet stands for (the escape hatch)."""
        return self._query.statement()

    def as_subquery(self) -> Select[Any]:
        """``SELECT pk`` of the matching rows: what ``field__in=qs`` compares
        with, inside the one statement (Django's nested QuerySet)."""
        return self._query.columns_statement(["pk"], "a subquery")

    def _resolve(self) -> Target:
        return _rows.supported(self._query, resolve(self.model, self._target))

    # -- terminal coroutines ----------------------------------------------------

    def __await__(self) -> Generator[Any, None, list[ModelT]]:
        return self._fetch_all().__await__()

    def _target_for_locks(self) -> Target:
        target = self._resolve()
        if self._query.for_update is not None and isinstance(target, Database):
            raise TransactionManagementError(
                f"{self.model.__name__}.objects.select_for_update() cannot be used "
                "outside of a transaction: run it inside `async with db.session():` "
                "(or with .using(session)), where the lock lasts until the block "
                "commits."
            )
        return target

    async def _fetch_all(self) -> list[ModelT]:
        if self._query.empty:
            return []
        stmt = self.statement
        return await _rows.fetch_all(self._target_for_locks(), stmt, self._query)

    def __aiter__(self) -> AsyncIterator[ModelT]:
        """``async for obj in qs``: stream the rows.

        In autocommit mode the rows come from one read transaction in chunks of
        :data:`CHUNK_SIZE`; inside a session they are fetched at once (the
        session's connection must stay free for the loop body's own queries).
        """
        return self.iterator()

    async def iterator(self, chunk_size: int | None = None) -> AsyncIterator[ModelT]:
        """``async for obj in qs.iterator(chunk_size=500)``: stream the rows,
        *chunk_size* at a time (:data:`CHUNK_SIZE` by default), as Django's
        ``aiterator()``. In autocommit mode they come from one read
        transaction; inside a session they are fetched at once (the session's
        connection must stay free for the loop body's own queries)."""
        _rows.refuse_unless_positive(
            chunk_size, f"Chunk size must be strictly positive, not {chunk_size!r}."
        )
        if self._query.empty:
            return
        target = self._target_for_locks()
        if not isinstance(target, Database) or self._query.loads_more_than_rows:
            for obj in await self._fetch_all():
                yield obj
            return
        stmt = self.statement.execution_options(yield_per=chunk_size or CHUNK_SIZE)
        # Closed here, not by the garbage collector, when the loop breaks.
        async with aclosing(_rows.stream(target, stmt)) as rows:
            async for obj in rows:
                yield obj

    async def contains(self, obj: ModelT) -> bool:
        """Whether *obj* is one of the rows (by primary key), as Django's."""
        return await self.filter(pk=_rows.saved_key(self.model, obj)).exists()

    async def explain(self) -> str:
        """The database's plan for this QuerySet's SELECT (``EXPLAIN``)."""
        return await _rows.explain(self._resolve(), self.statement)

    async def count(self) -> int:
        """Return the number of matching rows."""
        if self._query.empty:
            return 0
        stmt = self._query.count_statement()
        value = await read(self._resolve(), lambda session: session.scalar(stmt))
        return int(value or 0)

    async def exists(self) -> bool:
        """Return whether any row matches."""
        if self._query.empty:
            return False
        stmt = self._query.exists_statement()
        return bool(await read(self._resolve(), lambda session: session.scalar(stmt)))

    async def latest(self, *fields: str) -> ModelT:
        """The last row by *fields* (``"-name"`` flips one), as Django's
        ``latest()``; DoesNotExist when there is none."""
        if not fields:
            raise ValueError(
                "latest() needs field names (Django's Meta.get_latest_by has no "
                "equivalent here)."
            )
        return await self._edge(fields, "latest")

    async def earliest(self, *fields: str) -> ModelT:
        """The first row by *fields*, as Django's ``earliest()``; DoesNotExist
        when there is none."""
        if not fields:
            raise ValueError("earliest() needs field names.")
        return await self._edge(fields, "earliest")

    async def _edge(self, fields: tuple[str, ...], which: str) -> ModelT:
        self._query.refuse_if_sliced(f"call {which}() on")
        qs = self.order_by(*fields)
        if which == "latest":
            qs = qs.reverse()
        rows = await qs[:1]._fetch_all()
        found: ModelT = _rows.one(self.model, rows, {})  # DoesNotExist if none
        return found

    async def first(self) -> ModelT | None:
        """Return the first row in this QuerySet's order (by primary key if it has
        none), or None."""
        qs = (
            self
            if self._query.order
            else self._clone(self._query.replace(order=("pk",)))
        )
        rows = await qs[:1]._fetch_all()
        return rows[0] if rows else None

    async def paginate(self, after: str | None = None, size: int = 50) -> Page[ModelT]:
        """One page of keyset (cursor) pagination: the first *size* rows after
        the cursor *after* (from the first row when None), in this QuerySet's
        ordering with the primary key as tie-breaker; ``page.next`` is the
        cursor of the next page (None on the last). See :mod:`._pages`.
        """
        self._query.refuse_if_sliced("paginate")
        target = self._resolve()
        backend = target.facts if isinstance(target, Database) else backend_of(target)
        plan = _pages.plan(self.model, self._query.order, backend, after, size)
        query = self._query.replace(
            order=plan.order, where=(*self._query.where, *plan.where)
        )
        rows = await self._clone(query, target)[: size + 1]._fetch_all()
        return plan.page(rows)

    async def last(self) -> ModelT | None:
        """Return the last row in this QuerySet's order (by primary key if it has
        none), or None."""
        rows = await self.reverse()[:1]._fetch_all()
        return rows[0] if rows else None

    def values(self, *fields: str) -> ValuesQuerySet[dict[str, Any]]:
        """The rows as dicts of *fields* (every column and annotation if none
        is named): a lazy, chainable QuerySet (see :mod:`._values`)."""
        return ValuesQuerySet(self.model, self._query, self._target, fields, "dict")

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
        """The rows as tuples of *fields*; ``flat=True`` (one field) the bare
        values, ``named=True`` named tuples. Lazy, as :meth:`values`."""
        kind = _values.kind_of(fields, flat=flat, named=named)
        return ValuesQuerySet(self.model, self._query, self._target, fields, kind)

    def correlated_statement(self, outer: type[Any], what: str) -> Select[Any]:
        """This QuerySet inside *outer*'s query: ``Exists(qs)``, or
        ``Subquery(qs)`` of its primary key."""
        return correlated(
            self._query, None if what == "Exists()" else ["pk"], outer, what
        )

    async def bulk_update(
        self,
        objs: Iterable[ModelT],
        fields: Sequence[str],
        batch_size: int | None = None,
    ) -> int:
        """Write *fields* of each of *objs* (saved objects) in one UPDATE per
        batch (``CASE`` by primary key, as Django); the number of rows matched."""
        return await _bulk.bulk_update(
            self._query, self._target, objs, fields, batch_size
        )

    def raw(
        self,
        raw_query: str,
        params: Sequence[Any] | Mapping[str, Any] = (),
        translations: Mapping[str, str] | None = None,
    ) -> RawQuerySet[ModelT]:
        """Objects of raw SQL with Django's ``%s`` placeholders (see :mod:`._raw`)."""
        return RawQuerySet(raw_query, self.model, params, translations, self._target)

    async def dates(
        self, field_name: str, kind: str, order: str = "ASC"
    ) -> list[dt.date]:
        """The distinct dates (``kind``: year, month, week or day) of the rows."""
        return await _dates.dates(self._query, self._target, field_name, kind, order)

    async def datetimes(
        self,
        field_name: str,
        kind: str,
        order: str = "ASC",
        tzinfo: dt.tzinfo | None = None,
    ) -> list[dt.datetime]:
        """As :meth:`dates`, to the hour, minute or second too (see
        :mod:`._dates` for aware columns and *tzinfo*)."""
        return await _dates.datetimes(
            self._query, self._target, field_name, kind, order, tzinfo
        )

    async def in_bulk(
        self, id_list: Iterable[Any] | None = None, *, field_name: str = "pk"
    ) -> dict[Any, ModelT]:
        """Return ``{value: obj}`` for the rows whose *field_name* is in *id_list*
        (every row if *id_list* is None). *field_name* must be unique.

        Long lists are split into statements of ``IN_BULK_BATCH`` (1,000)
        values, so tens of thousands of ids never reach a bind-parameter limit.
        """
        return await _bulk.in_bulk(self._query, self._target, id_list, field_name)

    async def aggregate(self, *args: Aggregate, **kwargs: Aggregate) -> dict[str, Any]:
        """Return ``{alias: value}`` for aggregates over the matching rows:
        ``aggregate(Avg("age"), oldest=Max("age"))``."""
        return await _rows.aggregate(self._query, self._resolve(), args, kwargs)

    async def update(self, **values: Any) -> int:
        """Set *values* on every matching row in one UPDATE; return the number of
        rows matched. Objects of the session are brought up to date."""
        statements = self._query.update_statements(values)
        if self._query.empty:
            return 0

        async def work(session: AsyncSession) -> int:
            counts = [await _rowcount(session, stmt) for stmt in statements]
            return counts[0]

        return await write(self._resolve(), work)

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
        stmt = self._query.delete_statement()
        if self._query.empty:
            return 0, {}
        count = await write(self._resolve(), lambda session: _rowcount(session, stmt))
        return count, ({self.model.__name__: count} if count else {})

    async def get(self, **lookup: Any) -> ModelT:
        """Return the one row matching *lookup* (and this QuerySet's filters).

        Raises:
            Model.DoesNotExist: no row matches.
            Model.MultipleObjectsReturned: more than one row matches.
            FieldError: a name in *lookup* is not a field or lookup of the model.
        """
        result: ModelT = _rows.one(self.model, await self._rows_for_get(lookup), lookup)
        return result

    async def _rows_for_get(self, lookup: Mapping[str, Any]) -> list[Any]:
        query = self._query.filter((), lookup)
        if query.empty:
            return []
        target = self._target_for_locks()
        return await read(target, lambda session: _rows.fetch_for_get(session, query))

    async def get_or_none(self, **lookup: Any) -> ModelT | None:
        """Return the one row matching *lookup*, or None if there is none."""
        rows = await self._rows_for_get(lookup)
        result: ModelT | None = _rows.one(self.model, rows, lookup) if rows else None
        return result

    async def create(self, **values: Any) -> ModelT:
        """Insert a row from *values*; return it with its key and server defaults.

        Inside a session it only flushes (the session's block commits); otherwise
        it runs in its own short transaction.
        """
        lookups.check_field_names(self.model, values, "create()")
        obj: ModelT = await write(
            self._resolve(), lambda session: _rows.insert(session, self.model, values)
        )
        return obj

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
        return await _get_or_create.get_or_create(
            self._query, self._resolve(), defaults, lookup
        )

    async def bulk_get_or_create(
        self,
        lookups: Iterable[Mapping[str, Any]],
        defaults: Mapping[str, Any]
        | Callable[[dict[str, Any]], Mapping[str, Any]]
        | None = None,
    ) -> list[tuple[ModelT, bool]]:
        """get_or_create for many keys at once: ``[(obj, created), ...]`` in
        the order of *lookups*, dicts naming the fields of one unique key.
        *defaults*: a mapping for every new row, or a callable taking the
        lookup dict. A repeated key gives the same object, ``created=True`` at
        most once; race-proof like get_or_create (see :mod:`._many`).
        """
        return await _many.bulk_get_or_create(
            self._query, self._resolve(), lookups, defaults
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
        return await _get_or_create.update_or_create(
            self._query, self._resolve(), lookup, defaults, create_defaults
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
        """Insert *objs* with one multi-row INSERT per batch, all in one
        transaction; return them, with primary keys where the backend returns
        them (not with *ignore_conflicts*, which skips rows hitting a unique
        constraint). *update_conflicts* updates *update_fields* of the existing
        row (``ON CONFLICT (unique_fields)``; MariaDB ``ON DUPLICATE KEY
        UPDATE``, on any unique key)."""
        return await _bulk.bulk_create(
            self.model,
            self._target,
            objs,
            batch_size,
            ignore_conflicts,
            update_conflicts,
            update_fields,
            unique_fields,
        )


async def _rowcount(session: AsyncSession, stmt: Any) -> int:
    result = await session.execute(stmt)
    return int(result.rowcount)  # type: ignore[attr-defined]


class QuerySetManager(ManagerDescriptor, Generic[_QuerySetT]):
    """The model attribute :meth:`QuerySet.as_manager` returns.

    Read from a model class it is a fresh ``_QuerySetT`` of that model (cached
    per class; querysets are immutable), so type checkers see the custom
    QuerySet's methods next to the built-in ones.
    """

    def __init__(self, queryset_class: type[_QuerySetT]) -> None:
        self.queryset_class = queryset_class
        self._querysets: dict[type[Any], _QuerySetT] = {}

    def __repr__(self) -> str:
        return f"<QuerySetManager of {self.queryset_class.__name__}>"

    @overload  # type: ignore[override]  # a QuerySet, not a Manager
    def __get__(self, instance: None, owner: type[Any]) -> _QuerySetT: ...
    @overload
    def __get__(self, instance: object, owner: type[Any]) -> NoReturn: ...
    def __get__(  # pyright: ignore[reportIncompatibleMethodOverride]
        self, instance: object | None, owner: type[Any]
    ) -> _QuerySetT:
        if instance is not None:
            raise no_instance_access(owner)
        queryset = self._querysets.get(owner)
        if queryset is None:
            queryset = self.queryset_class(model=owner)
            queryset._manager = True  # pyright: ignore[reportPrivateUsage]
            self._querysets[owner] = queryset
        return queryset

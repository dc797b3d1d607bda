"""QuerySet[T]: a lazy, chainable query on one model, and its terminal coroutines.

Where a call runs (SPEC §2): an explicit ``using(session | db)``, else the
ambient ``db.session()``, else the Database bound to the model (autocommit),
else :class:`ConfigurationError`.
"""

from __future__ import annotations

import inspect as _inspect
import logging
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, Final, Generic, Self, TypeVar

from sqlalchemy import ColumnElement, Select, and_, func, inspect, not_, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from . import _dialects, exceptions, lookups
from ._typing import ModelT
from .database import Database, bound_database
from .session import current_session, lock_for

if TYPE_CHECKING:
    from sqlalchemy.orm import Mapper

logger = logging.getLogger("sqlalchemy_objects")

_R = TypeVar("_R")

#: Like Django: fetch at most this many rows to report "more than 20" cheaply.
MAX_GET_RESULTS: Final = 21

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

    __slots__ = ("_target", "_where", "model")

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

    def __repr__(self) -> str:
        return f"<QuerySet of {self.model.__name__}, {len(self._where)} condition(s)>"

    def __bool__(self) -> bool:
        raise TypeError(
            "A QuerySet has no truth value without a query: use `await qs.exists()`."
        )

    def _clone(self, **changes: Any) -> Self:
        clone = type(self).__new__(type(self))
        clone.model = self.model
        clone._where = changes.get("where", self._where)
        clone._target = changes.get("target", self._target)
        return clone

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

    def filter(self, **lookup: Any) -> Self:
        """Return a QuerySet narrowed to rows matching every lookup in *lookup*."""
        where = lookups.build_where(self.model, lookup)
        return self if where is None else self._clone(where=(*self._where, where))

    def exclude(self, **lookup: Any) -> Self:
        """Return a QuerySet without the rows that match all of *lookup*."""
        where = lookups.build_where(self.model, lookup)
        return self if where is None else self._clone(where=(*self._where, not_(where)))

    @property
    def statement(self) -> Select[ModelT]:
        """The SQLAlchemy ``Select`` this QuerySet stands for (the escape hatch)."""
        stmt = select(self.model)
        if self._where:
            stmt = stmt.where(and_(*self._where))
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

    # -- terminal coroutines ----------------------------------------------------

    def __await__(self) -> Generator[Any, None, list[ModelT]]:
        return self._fetch_all().__await__()

    async def _fetch_all(self) -> list[ModelT]:
        stmt = self.statement

        async def work(session: AsyncSession) -> list[ModelT]:
            return list((await session.scalars(stmt)).all())

        return await self._read(work)

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
        """Return the first matching row by primary key, or None."""
        mapper: Mapper[ModelT] = inspect(self.model)
        stmt = self.statement.order_by(*mapper.primary_key).limit(1)

        async def work(session: AsyncSession) -> ModelT | None:
            return (await session.scalars(stmt)).first()

        return await self._read(work)

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
        qs = self.filter(**lookup)  # FieldError before any SQL
        if defaults is not None and not isinstance(defaults, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(
                f"{self.model.__name__}.objects.get_or_create(defaults=...) takes a "
                f"mapping of field names to values, not {type(defaults).__name__}; "
                "to look up a field named 'defaults', use defaults__exact=..."
            )
        defaults = dict(defaults or {})
        lookups.check_field_names(self.model, defaults, "get_or_create(defaults=...)")
        # Lookup names were checked by filter(), defaults just above.
        create_from = {**lookups.creation_values(self.model, lookup), **defaults}
        target = self._resolve()
        if isinstance(target, Database):
            return await qs._get_or_create_autocommit(target, create_from, lookup)
        async with lock_for(target).hold():
            return await qs._get_or_create_in(target, create_from, lookup)

    # -- internals ----------------------------------------------------------------

    async def _fetch_for_get(
        self, session: AsyncSession, *, locking: bool = False
    ) -> list[ModelT]:
        stmt = self.statement.limit(MAX_GET_RESULTS)
        if locking:
            stmt = stmt.with_for_update(read=True)
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
        self, session: AsyncSession, lookup: Mapping[str, Any], *, locking: bool = False
    ) -> ModelT | None:
        rows = await self._fetch_for_get(session, locking=locking)
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
    ) -> tuple[ModelT, bool]:
        obj = await self._first_or_none(session, lookup)
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
            logger.debug(
                "get_or_create lost a race for %s; retrying get()", self.model.__name__
            )
            backend = _backend(session)
            found = await self._first_or_none(  # exactly one retry
                session, lookup, locking=_dialects.locking_read_sees_latest(backend)
            )
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
        self, db: Database, create_from: Mapping[str, Any], lookup: Mapping[str, Any]
    ) -> tuple[ModelT, bool]:
        obj = await db.run_read(lambda session: self._first_or_none(session, lookup))
        if obj is not None:
            return obj, False
        values = await self._resolve_values(create_from)
        try:
            # The call owns this transaction, so it needs no savepoint.
            obj = await db.run_write(lambda session: self._insert(session, values))
        except IntegrityError as exc:
            if not _dialects.is_unique_violation(exc, db.backend):
                raise
            logger.debug(
                "get_or_create lost a race for %s; retrying get()", self.model.__name__
            )
            # A fresh transaction sees the winner's row at any isolation level.
            found = await db.run_read(
                lambda session: self._first_or_none(session, lookup)
            )
            if found is None:
                raise
            return found, False
        return obj, True

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


def _backend(session: AsyncSession) -> str:
    name: str = session.get_bind().dialect.name
    return "mysql" if name == "mariadb" else name

"""Rows in and out through a session: get()'s row check, one INSERT, values.

The small steps that ``get``, ``create``, ``get_or_create`` and
``update_or_create`` share. Each takes the session it runs in; where the
session comes from is :mod:`._routing`'s business.
"""

from __future__ import annotations

import inspect as _inspect
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, inspect, null, text
from sqlalchemy.ext.asyncio import AsyncSession

from . import _cursor, lookups
from ._dialects import backend_of
from ._prefetch import prefetch
from ._prep import prep_values
from ._query import MAX_GET_RESULTS, Lock, Query
from ._routing import Target, read
from ._shapes import Prepared, detached
from .database import Database
from .exceptions import NotSupportedError
from .expressions import Aggregate
from .session import shielded


def describe(lookup: Mapping[str, Any]) -> str:
    """``username='ann', age=3`` (for messages)."""
    return ", ".join(f"{k}={v!r}" for k, v in lookup.items()) or "(no lookup)"


def one(model: type[Any], rows: list[Any], lookup: Mapping[str, Any]) -> Any:
    """The only row of *rows*; else *model*'s DoesNotExist or
    MultipleObjectsReturned, naming the model and the lookup."""
    if len(rows) == 1:
        return rows[0]
    name = model.__name__
    if not rows:
        raise model.DoesNotExist(
            f"{name} matching {describe(lookup)} does not exist.",
            model=model,
            lookup=lookup,
        )
    many = "more than 20" if len(rows) >= MAX_GET_RESULTS else str(len(rows))
    raise model.MultipleObjectsReturned(
        f"get() returned {many} {name} rows matching {describe(lookup)}; "
        "it expects exactly one. Is the lookup covered by a unique constraint?",
        model=model,
        lookup=lookup,
    )


#: Session events that an early end of an empty transaction would fire.
_TRANSACTION_EVENTS = (
    "after_begin",
    "before_commit",
    "after_commit",
    "after_transaction_create",
    "after_transaction_end",
)


async def scalars_before_begin(
    session: AsyncSession,
    stmt: Select[Any],
    params: Mapping[str, Any],
    spec: Prepared | None = None,
) -> list[Any]:
    """The objects of the plain SELECT *stmt* (no lock, no side effect) in
    *session*; sent without BEGIN where it is the first statement of the
    session's transaction and the backend allows it (``Backend.defer_begin``:
    on PostgreSQL at READ COMMITTED a transaction that only reads then costs
    no BEGIN and no COMMIT). One switch into SQLAlchemy's greenlet.

    Where that read opened the session's transaction, nothing else began it
    on the server, and ending it changes nothing the caller can see (objects
    are not expired on commit, no transaction listener), the empty
    transaction is ended at once: the connection goes back to the pool now,
    not when the caller commits (a web request holds none while it builds
    its response), and the session's next statement takes one again.

    *spec*: the same SELECT of columns, prepared for the bare cursor
    (``_on_conflict.prepared_select``); where the read goes without BEGIN in
    a session with nothing to flush, the row goes through it and the object
    is made as the one-statement path makes it and added to the session
    (the one it already holds under that identity, if any), as the ORM's
    load would leave it."""

    def run(sync_session: Any) -> list[Any]:
        fresh = not sync_session.in_transaction()
        conn = sync_session.connection()
        backend = backend_of(conn)
        done = None
        if backend.defers_begin:
            done = backend.defer_begin(conn.connection.dbapi_connection, conn.dialect)
        try:
            found = None
            if done is not None and fresh and spec is not None:
                found = _through_cursor(sync_session, conn, spec)
            if found is None:
                found = list(sync_session.scalars(stmt, params).all())
        finally:
            unbegun = done is not None and done()
        if (
            unbegun
            and fresh
            and not sync_session.expire_on_commit
            and not _is_listened(sync_session)
        ):
            sync_session.commit()  # sends nothing: no BEGIN was sent
        return found

    return await session.run_sync(run)


#: Session events that adding a loaded row's object would fire (or that the
#: ORM's load fires and adding it would not).
_ATTACH_EVENTS = (
    "detached_to_persistent",
    "loaded_as_persistent",
    "transient_to_pending",
)


def _through_cursor(sync_session: Any, conn: Any, spec: Prepared) -> list[Any] | None:
    """The objects of *spec*'s row through the bare cursor, in *sync_session*;
    None (the ORM's load instead) where the session has something to flush
    first, listens to objects joining it, or more than one row matched."""
    if sync_session.new or sync_session.deleted or sync_session.dirty:
        return None  # the ORM's autoflush must run before the SELECT
    dispatch = sync_session.dispatch
    if any(getattr(dispatch, name) for name in _ATTACH_EVENTS):
        return None
    assert spec.shape is not None
    rows = _cursor.rows(conn, spec.shape, spec.stmt, spec.params)
    if len(rows) > 1:
        return None  # get()'s message counts them: the ORM's query does
    found: list[Any] = []
    mapper = lookups.mapper_of(spec.shape[0])
    for row in rows:
        obj = detached(mapper, row)
        state: Any = inspect(obj)
        held = sync_session.identity_map.get(state.key)
        if held is not None:
            found.append(held)  # as the ORM's load: the session's own object
        else:
            sync_session.add(obj)
            found.append(obj)
    return found


def _is_listened(sync_session: Any) -> bool:
    dispatch = sync_session.dispatch
    return any(getattr(dispatch, name) for name in _TRANSACTION_EVENTS)


async def fetch_for_get(
    session: AsyncSession, query: Query, lock: Lock = None
) -> list[Any]:
    """The rows ``get()`` looks at (at most MAX_GET_RESULTS)."""
    return await objects(session, query.get_statement(lock), query)


async def objects(session: AsyncSession, stmt: Select[Any], query: Query) -> list[Any]:
    """The objects *stmt* (made from *query*) selects, each with its
    ``annotate()`` values set as attributes."""
    if not query.annotations:
        found: list[Any] = list((await session.scalars(stmt)).all())
    else:
        found = []
        for row in (await session.execute(stmt)).all():
            obj = row[0]
            for (name, agg, _, read_from), value in zip(
                query.annotations, row[1:], strict=True
            ):
                setattr(obj, name, agg.convert_annotation(value, read_from))
            found.append(obj)
    if query.prefetches:
        await prefetch(session, found, query.prefetches)
    return found


async def first_or_none(
    session: AsyncSession, query: Query, lookup: Mapping[str, Any], lock: Lock = None
) -> Any:
    """The one row of *query* (filtered by *lookup*), or None; several raise."""
    rows = await fetch_for_get(session, query, lock)
    return None if not rows else one(query.model, rows, lookup)


async def fetch_all(
    target: Target, stmt: Select[Any], query: Query | None = None
) -> list[Any]:
    """Every object *stmt* selects, read on *target* (with *query*'s
    annotations, if it has any)."""

    async def work(session: AsyncSession) -> list[Any]:
        if query is not None:
            return await objects(session, stmt, query)
        return list((await session.scalars(stmt)).all())

    return await read(target, work)


async def insert(
    session: AsyncSession, model: type[Any], values: Mapping[str, Any]
) -> Any:
    """Add a new *model* made from *values*, flush, and return it with its key and
    every column loaded."""
    obj = model(**prep_values(model, dict(values)))
    _keep_explicit_nulls(obj, values)
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


def _keep_explicit_nulls(obj: Any, values: Mapping[str, Any]) -> None:
    """Make a column given as None store NULL, as Django does, where the ORM
    would leave it out of the INSERT and let its default fill it."""
    columns = inspect(obj).mapper.column_attrs
    for key, value in values.items():
        if value is not None or key not in columns:
            continue
        column = columns[key].columns[0]
        if column.default is not None or column.server_default is not None:
            setattr(obj, key, null())  # loaded back by the refresh below


def supported(query: Query, target: Target) -> Target:
    """*target*, once it is known to run *query* as meant: ``distinct(*fields)``
    needs DISTINCT ON (NotSupportedError elsewhere, as in Django)."""
    if query.distinct_fields:
        backend = target.facts if isinstance(target, Database) else backend_of(target)
        if not backend.distinct_on:
            raise NotSupportedError(
                "DISTINCT ON fields is not supported by this database backend "
                f"({backend.name}): {query.model.__name__}.objects.distinct("
                f"{', '.join(map(repr, query.distinct_fields))})."
            )
    return target


def refuse_unless_positive(value: Any, message: str) -> None:
    """ValueError(*message*) unless *value* is None or an int >= 1 (not a bool)."""
    if value is not None and (
        not isinstance(value, int) or isinstance(value, bool) or value < 1
    ):
        raise ValueError(message)


def annotated_rows(
    query: Query, names: Sequence[str], rows: Sequence[Sequence[Any]]
) -> Sequence[Sequence[Any]]:
    """*rows* of ``values()`` / ``values_list()`` over *names*, each
    annotation's value as Django gives it (``Count`` an int, ...)."""
    annotated = {
        i: (agg, read_from)
        for i, name in enumerate(names)
        for annotation, agg, _, read_from in query.annotations
        if annotation == name
    }
    if not annotated:
        return rows
    return [
        tuple(
            annotated[i][0].convert_annotation(v, annotated[i][1])
            if i in annotated
            else v
            for i, v in enumerate(row)
        )
        for row in rows
    ]


async def resolve_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """*values* with each callable called (and awaited if it returns an awaitable)."""
    resolved: dict[str, Any] = {}
    for key, value in values.items():
        if callable(value):
            value = value()
            if _inspect.isawaitable(value):
                value = await value
        resolved[key] = value
    return resolved


def not_a_slice(key: object) -> TypeError:
    """The error of ``qs[key]`` for a key that is not a slice, with the spelling
    that does what was meant."""
    hint = "`await qs.first()`, or a slice: `await qs[a:b]` (a list)"
    if isinstance(key, int) and not isinstance(key, bool) and key >= 0:
        hint = f"`(await qs[{key}:{key + 1}])[0]` (a list of at most one row)"
        hint += " or `await qs.first()`" if key == 0 else ""
    return TypeError(
        f"QuerySet indices must be slices, not {type(key).__name__}: an "
        f"async QuerySet cannot fetch a row on indexing. Use {hint}."
    )


async def stream(target: Database, stmt: Any) -> AsyncGenerator[Any]:
    """The objects *stmt* selects, streamed from one read transaction of
    *target* (a replica's, maybe), in chunks of its ``yield_per``."""
    session = target.query_read_sessionmaker()()
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


async def aggregate(
    query: Query,
    target: Target,
    args: tuple[Aggregate, ...],
    kwargs: Mapping[str, Aggregate],
) -> dict[str, Any]:
    """``aggregate(*args, **kwargs)``: ``{alias: value}``, positional
    aggregates named as Django names them (``age__avg``)."""
    for agg in (*args, *kwargs.values()):
        if not isinstance(agg, Aggregate):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(
                f"aggregate() takes Count/Sum/Avg/Min/Max objects, not {agg!r}"
            )
    named: dict[str, Aggregate] = {agg.default_alias: agg for agg in args}
    named.update(kwargs)
    if not named:
        return {}  # as Django: nothing asked, nothing sent
    stmt, converters = query.aggregate_statement(named)

    async def work(session: AsyncSession) -> Sequence[Any]:
        row: Sequence[Any] = (await session.execute(stmt)).one()
        return row

    row = await read(target, work)
    return {
        alias: convert(value)
        for alias, convert, value in zip(named, converters, row, strict=True)
    }


def saved_key(model: type[Any], obj: Any) -> Any:
    """*obj*'s primary key, for ``contains(obj)``: Django's errors for
    another model's object and for one not saved yet."""
    if not isinstance(obj, model):
        raise TypeError(f"'obj' must be a {model.__name__} instance, not {obj!r}.")
    identity = inspect(obj).identity
    if identity is None:
        raise ValueError("QuerySet.contains() cannot be used on unsaved objects.")
    return identity[0] if len(identity) == 1 else identity


async def explain(target: Target, stmt: Select[Any]) -> str:
    """The database's plan for *stmt*: its rows as lines of text."""

    async def work(session: AsyncSession) -> str:
        backend = backend_of(session)
        compiled = stmt.compile(
            dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
        )
        result = await session.execute(text(f"{backend.explain_prefix} {compiled}"))
        return "\n".join(" ".join(str(v) for v in row) for row in result.all())

    return await read(target, work)

"""get_or_create and update_or_create: the race-proof algorithm, once.

Every strategy below runs the same four steps (SPEC §3)::

    get(lookup)                      found -> (row, False)
    values = lookup + defaults       defaults win; callables are called now
    insert(values)                   inserted -> (row, True)
    IntegrityError:                  a unique/primary-key violation? else re-raise
        get(lookup) once more        found -> (row, False); else re-raise the original

The last step is :func:`_lost_race` and :func:`_winner`, shared by all three.
Which strategy runs depends on where the call runs (:mod:`._routing`):

- :func:`in_session`: inside the caller's session. The INSERT runs in a
  SAVEPOINT, so a lost race costs only the savepoint and never the caller's
  earlier writes.
- :func:`autocommit`: outside a session, through the ORM. Each step is a short
  transaction of its own under the Database's execution policy; the retried
  get is a new transaction, so it sees the winner at any isolation level.
- :func:`one_statement`: outside a session on PostgreSQL, where
  :mod:`._on_conflict` says it cannot differ from the ORM: on one connection
  without a transaction, ``SELECT`` then ``INSERT ... ON CONFLICT (key) DO
  NOTHING RETURNING``, and one more ``SELECT`` if the insert did nothing. It
  hands over to :func:`autocommit` whenever a flush would do something it
  cannot.

docs/architecture.md lists the statements each path sends.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.util import await_only

from . import _on_conflict, _rows, lookups
from ._dialects import Backend, backend_of
from ._execution import Progress, mark_rerunnable
from ._prep import prep_values
from ._query import MAX_GET_RESULTS, Lock, Query
from ._routing import Target, write
from ._shapes import Prepared, orm_select, where_select
from .database import Database
from .expressions import resolve_operand
from .session import lock_for

logger = logging.getLogger("sqlalchemy_objects")

_SNAPSHOT_NOTE: Final = (
    "sqlalchemy-objects: get_or_create lost a race for {model} matching {lookup}, "
    "but the retried get() could not see the winning row because this transaction "
    "runs at {level} isolation and its snapshot predates that row. Retry the whole "
    "transaction: `await db.run_in_transaction(work)` reruns it for you (or run "
    "get_or_create outside it, in autocommit mode)."
)


# -- the values of a new row --------------------------------------------------


def check_defaults(
    model: type[Any], values: Mapping[str, Any] | None, method: str, argument: str
) -> dict[str, Any]:
    """*values* (``defaults=``, ``create_defaults=``) as a dict of field names,
    checked: FieldError names the bad keys, before any SQL."""
    if values is not None and not isinstance(values, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(
            f"{model.__name__}.objects.{method}({argument}=...) takes a "
            f"mapping of field names to values, not {type(values).__name__}; "
            f"to look up a field named {argument!r}, use {argument}__exact=..."
        )
    checked = dict(values or {})
    lookups.check_field_names(model, checked, f"{method}({argument}=...)")
    return checked


def creation_values(
    model: type[Any], lookup: Mapping[str, Any], defaults: Mapping[str, Any] | None
) -> dict[str, Any]:
    """get_or_create's values for a new row: the exact lookups merged with
    *defaults* (*defaults* wins)."""
    checked = check_defaults(model, defaults, "get_or_create", "defaults")
    return {**lookups.creation_values(model, lookup), **checked}


# -- the step every strategy shares -------------------------------------------


def _lost_race(
    error: IntegrityError | None, backend: Backend, model: type[Any]
) -> None:
    """Re-raise *error* unless it may be a lost race (a unique or primary-key
    violation; None: an ``ON CONFLICT DO NOTHING`` that inserted nothing); a
    foreign key, NOT NULL or CHECK failure is the caller's."""
    if error is not None and not backend.is_unique_violation(error):
        raise error
    logger.debug("get_or_create lost a race for %s; retrying get()", model.__name__)


def _winner(found: Any, error: IntegrityError) -> tuple[Any, bool]:
    """The one retried get found *found*: ``(found, False)``. Found nothing: the
    violation was a real conflict (another unique key), and *error* is raised."""
    if found is None:
        raise error
    return found, False


# -- entry points ---------------------------------------------------------------


async def get_or_create(
    base: Query,
    target: Target,
    defaults: Mapping[str, Any] | None,
    lookup: Mapping[str, Any],
) -> tuple[Any, bool]:
    """get_or_create on *target* for the QuerySet whose state is *base*: pick
    the strategy, with the SELECT prepared once per lookup shape where the
    QuerySet is the manager's own (no filter of its own, whole rows)."""
    model = base.model
    whole_rows = base.loads_whole_rows()
    plain = whole_rows and not base.where
    if isinstance(target, Database):
        # A lookup shape already proven valid and eligible for the
        # one-statement path has a prepared SELECT: no WHERE to build, no
        # FieldError possible.
        prepared = _on_conflict.prepared_select(model, lookup) if plain else None
        found_by = base if prepared is not None else base.filter((), lookup)
        create_from = creation_values(model, lookup, defaults)
        resolved = None
        key = (
            _on_conflict.conflict_target(model, lookup)
            if whole_rows and target.one_statement_get_or_create
            else None
        )
        if key is not None:
            spec = prepared or where_select(model, found_by.where)
            outcome = await target.run_autocommit(
                lambda executor, progress: one_statement(
                    target, executor, progress, model, create_from, spec, key
                )
            )
            if isinstance(outcome, tuple):
                return outcome
            resolved = outcome
        if prepared is not None:
            found_by = base.filter((), lookup)
        return await autocommit(target, found_by, lookup, create_from, resolved)
    async with lock_for(target).hold():
        # Exact matches on columns: a SELECT prepared once per lookup shape
        # finds a hit without building a WHERE clause.
        orm = orm_select(model, lookup, MAX_GET_RESULTS) if plain else None
        found_by = base.filter((), lookup) if orm is None else base  # FieldError
        create_from = creation_values(model, lookup, defaults)
        if orm is None:
            return await in_session(target, found_by, lookup, create_from)
        cursor_spec = (
            _on_conflict.prepared_select(model, lookup)
            if _on_conflict.conflict_target(model, lookup) is not None
            else None
        )
        rows = await _rows.scalars_before_begin(target, *orm, spec=cursor_spec)
        if rows:
            return _rows.one(model, rows, lookup), False
        return await in_session(
            target, base.filter((), lookup), lookup, create_from, known_missing=True
        )


async def update_or_create(
    base: Query,
    target: Target,
    lookup: Mapping[str, Any],
    defaults: Mapping[str, Any] | None,
    create_defaults: Mapping[str, Any] | None,
) -> tuple[Any, bool]:
    """Update the row *lookup* finds in *base* with *defaults*, or create it
    from the lookup's exact values and *create_defaults* (*defaults* if
    None): in one transaction (the caller's session, or one of its own), the
    row read with ``SELECT ... FOR UPDATE``."""
    model = base.model
    found_by = base.filter((), lookup)
    updates = check_defaults(model, defaults, "update_or_create", "defaults")
    creates = (
        updates
        if create_defaults is None
        else check_defaults(
            model, create_defaults, "update_or_create", "create_defaults"
        )
    )
    create_from = {**lookups.creation_values(model, lookup), **creates}

    async def work(session: AsyncSession) -> tuple[Any, bool]:
        obj, created = await in_session(
            session, found_by, lookup, create_from, for_update=True
        )
        if created:
            return obj, True
        computed: list[str] = []
        model: type[Any] = found_by.model
        values = prep_values(model, await _rows.resolve_values(updates))
        for key, value in values.items():
            resolved = resolve_operand(model, value)
            if resolved is not value:  # F("n") + 1: SQL in the UPDATE itself
                computed.append(key)
            setattr(obj, key, resolved)
        await session.flush()  # SQLAlchemy writes only the changed columns
        if computed:  # the UPDATE computed them: read them back, while in the lock
            await session.refresh(obj, attribute_names=computed)
        return obj, False

    return await write(target, work)


# -- the strategies ---------------------------------------------------------------


async def in_session(
    session: AsyncSession,
    found_by: Query,
    lookup: Mapping[str, Any],
    create_from: Mapping[str, Any],
    *,
    for_update: bool = False,
    known_missing: bool = False,
) -> tuple[Any, bool]:
    """In the caller's *session*: SELECT; SAVEPOINT, INSERT, RELEASE; after a
    lost race ROLLBACK TO SAVEPOINT and one more SELECT. *for_update* locks the
    row read (update_or_create); *known_missing*: the caller has just read and
    found no row."""
    model = found_by.model
    lock: Lock = "update" if for_update else None
    if not known_missing:
        obj = await _rows.first_or_none(session, found_by, lookup, lock)
        if obj is not None:
            return obj, False
    values = await _rows.resolve_values(create_from)
    # The caller's pending objects are flushed here, outside the try: their
    # errors are theirs, not a race of ours.
    await session.flush()
    backend = backend_of(session)
    try:
        async with session.begin_nested():  # a lost race costs only the savepoint
            obj = await _rows.insert(session, model, values)
    except IntegrityError as exc:
        _lost_race(exc, backend, model)
        if lock is None and backend.locking_read_sees_latest:
            lock = "share"
        found = await _rows.first_or_none(session, found_by, lookup, lock)  # one retry
        if found is None:
            await _note_snapshot(session, backend, exc, model, lookup)
        return _winner(found, exc)
    except DBAPIError as exc:
        # InnoDB rolls back the whole transaction on a deadlock, taking our
        # savepoint with it; the failed ROLLBACK TO SAVEPOINT must not hide
        # the deadlock, which is what the caller has to act on.
        cause = exc.__context__
        if backend.savepoint_was_lost(exc):
            # The whole transaction is gone (a deadlock, a Galera brute-force
            # abort): run_in_transaction reruns it.
            mark_rerunnable(exc)
            if isinstance(cause, DBAPIError):
                mark_rerunnable(cause)
                raise cause from None
        raise
    return obj, True


async def autocommit(
    db: Database,
    found_by: Query,
    lookup: Mapping[str, Any],
    create_from: Mapping[str, Any],
    resolved: dict[str, Any] | None = None,
) -> tuple[Any, bool]:
    """Outside a session, through the ORM: a read transaction; on a miss a
    write transaction (BEGIN, INSERT, COMMIT: the call owns it, so it needs no
    savepoint); after a lost race one more read transaction. *resolved*: the
    one-statement strategy already read, found nothing, and resolved the
    values."""
    model = found_by.model
    if resolved is None:
        obj = await db.run_read(
            lambda session: _rows.first_or_none(session, found_by, lookup)
        )
        if obj is not None:
            return obj, False
        values = await _rows.resolve_values(create_from)
    else:
        values = resolved
    try:
        obj = await db.run_write(lambda session: _rows.insert(session, model, values))
    except IntegrityError as exc:
        _lost_race(exc, db.facts, model)
        # A fresh transaction sees the winner's row at any isolation level.
        found = await db.run_read(
            lambda session: _rows.first_or_none(session, found_by, lookup)
        )
        return _winner(found, exc)
    return obj, True


def one_statement(
    db: Database,
    executor: Any,
    progress: Progress,
    model: type[Any],
    create_from: Mapping[str, Any],
    spec: Prepared,
    target: tuple[str, ...],
) -> tuple[Any, bool] | dict[str, Any] | None:
    """On one connection without a transaction, each statement committed by
    itself: SELECT; on a miss ``INSERT ... ON CONFLICT (target) DO NOTHING
    RETURNING``; if that inserted nothing, one more SELECT (a new statement
    sees every row committed before it started). Where the backend has no
    autocommit INSERT that returns its row (MySQL without ``RETURNING``), or
    takes it only through the bare cursor and this INSERT cannot go that way
    (SQLite: ``Backend.autocommit_writes_by_cursor``), the miss goes back to
    :func:`autocommit` with the resolved values, which inserts in a
    transaction.

    Runs inside SQLAlchemy's greenlet (``Executor.autocommit``): *executor* is
    a sync ``Connection`` or ``Session``, and callable defaults are awaited
    with ``await_only``. Returns None when :func:`autocommit` must do
    everything (several rows matched), or the resolved values when it must
    create the row (a flush would run something the INSERT skips, or the
    conflicting row is gone again).
    """
    shape = spec.shape
    if (
        shape is not None
        and db.facts.one_trip_get_or_insert
        and _on_conflict.expects_miss(shape)
    ):
        done = _one_trip(db, executor, progress, model, create_from, spec, target)
        if done is not None:
            return done
    single, obj = _on_conflict.select_one(executor, model, spec)
    if not single:
        return None
    if shape is not None:
        _on_conflict.note_outcome(shape, missed=obj is None)
    if obj is not None:
        return obj, False
    values = dict(create_from)
    if any(callable(value) for value in values.values()):
        values = await_only(_rows.resolve_values(create_from))
    values = prep_values(model, values)
    if not _on_conflict.can_insert(executor):
        return values  # autocommit() creates the row, in a transaction
    built = _insertable(db, model, values)
    if built is None:
        return values
    candidate, row = built
    progress.writing = True
    error: IntegrityError | None = None
    try:
        created = _on_conflict.insert_or_nothing(executor, candidate, row, target)
        if created is None:  # (SQLite, nothing sent) in a transaction instead
            progress.writing = False
            return values
    except IntegrityError as exc:
        # The named target did not conflict, another unique key did: still a
        # possible race on that key, so the one retried get below decides.
        _lost_race(exc, db.facts, model)
        created, error = False, exc
        executor.rollback()  # a savepoint under the pytest plugin
    except DBAPIError as exc:
        if not db.facts.must_rerun(exc):
            raise
        # A deadlock, or Galera's certification failure: the statement wrote
        # nothing. autocommit() inserts in a transaction, which it reruns.
        logger.info(
            "the server aborted the statement; rerunning it in a transaction: %s",
            exc.orig,
        )
        progress.writing = False
        executor.rollback()
        return values
    progress.writing = False
    if created:
        executor.commit()  # no-op without a transaction
        return candidate, True
    if error is None:  # the INSERT did nothing: the key exists
        _lost_race(None, db.facts, model)
    _, found = _on_conflict.select_one(executor, model, spec)
    if found is not None:
        return found, False
    if error is not None:
        raise error
    return values


def _insertable(
    db: Database, model: type[Any], values: dict[str, Any]
) -> tuple[Any, dict[str, Any]] | None:
    """The new object built from *values* with the model's constructor and
    the columns a Core INSERT of it writes, or None where a flush would do
    something that INSERT skips (a relationship set, flush listeners)."""
    candidate = model(**values)
    row = (
        _on_conflict.insert_values(candidate)
        if _on_conflict.holds_columns_only(candidate)
        else None
    )
    if row is None or _on_conflict.sessions_have_flush_listeners(
        db.autocommit_sessionmaker
    ):
        return None
    return candidate, row


def _one_trip(
    db: Database,
    executor: Any,
    progress: Progress,
    model: type[Any],
    create_from: Mapping[str, Any],
    spec: Prepared,
    target: tuple[str, ...],
) -> tuple[Any, bool] | dict[str, Any] | None:
    """A lookup shape that mostly misses: read or insert in **one** statement
    (``_on_conflict.get_or_insert``), so a miss costs one round trip. The
    object is built before it is known to be needed, so only where building
    it runs nothing of the user's and no value is a callable (Django calls
    those only when creating). Returns as :func:`one_statement` does, or None
    to take the two-statement path instead."""
    if any(callable(value) for value in create_from.values()):
        return None
    if not _on_conflict.plain_constructor(model):
        return None
    values = prep_values(model, dict(create_from))
    built = _insertable(db, model, values)
    if built is None:
        return None
    candidate, row = built
    progress.writing = True
    try:
        outcome, obj = _on_conflict.get_or_insert(
            executor, spec, candidate, row, target
        )
    except IntegrityError as exc:
        # Another unique key than the lookup's conflicted: as on the
        # two-statement path, the one retried get decides.
        progress.writing = False
        _lost_race(exc, db.facts, model)
        executor.rollback()  # a savepoint under the pytest plugin
        _, found = _on_conflict.select_one(executor, model, spec)
        if found is not None:
            return found, False
        raise
    progress.writing = False
    if outcome == "unsupported":
        return None
    assert spec.shape is not None
    _on_conflict.note_outcome(spec.shape, missed=outcome != "found")
    if outcome == "created":
        executor.commit()  # no-op without a transaction
        return obj, True
    if outcome == "found":
        return obj, False
    if outcome == "multiple":
        return None  # autocommit() reports it
    # Both parts empty: a concurrent insert committed after this statement's
    # snapshot. A new statement sees it.
    _lost_race(None, db.facts, model)
    _, found = _on_conflict.select_one(executor, model, spec)
    return (found, False) if found is not None else values


async def _note_snapshot(
    session: AsyncSession,
    backend: Backend,
    exc: IntegrityError,
    model: type[Any],
    lookup: Mapping[str, Any],
) -> None:
    """Say in *exc* why the retried get saw nothing when the transaction's
    snapshot hides the winner (REPEATABLE READ, SERIALIZABLE)."""
    conn = await session.connection()
    level = await conn.get_isolation_level()
    if backend.has_snapshot_reads(level):
        mark_rerunnable(exc)  # run_in_transaction reruns the whole transaction
        exc.add_note(
            _SNAPSHOT_NOTE.format(
                model=model.__name__, lookup=_rows.describe(lookup), level=level
            )
        )

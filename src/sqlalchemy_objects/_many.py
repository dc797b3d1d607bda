"""``bulk_get_or_create(lookups, defaults=None)``: get_or_create for many keys.

For workers that ingest hundreds of keys at a time. *lookups* are dicts on
the fields of one unique key (a unique constraint, a unique index that is not
partial, or the primary key). Per batch of keys, in one transaction of its
own (autocommit) or a SAVEPOINT (inside a session):

1. one SELECT of the rows whose key is in the batch;
2. for the keys not found, one INSERT of all their rows that skips a row
   whose key already exists -- PostgreSQL and SQLite ``ON CONFLICT (key) DO
   NOTHING RETURNING key``, MariaDB ``INSERT IGNORE ... RETURNING key`` (whose
   warnings are then checked: IGNORE would also turn a bad value into a
   warning, and any warning but "duplicate entry" rolls the batch back and
   raises) -- so the rows it returns are the ones this call created;
3. one more SELECT of the keys it did not create: a concurrent caller
   inserted them first (``created=False``).

A key still missing after that (a conflict on another unique key, or a
snapshot at REPEATABLE READ / SERIALIZABLE that hides the winner), and any
IntegrityError of the INSERT, falls back to get_or_create for that key alone,
which re-raises the error if the retried get finds nothing. The result is one
``(obj, created)`` per input item, in input order; a key repeated in the input
gives the same object, ``created=True`` at most once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from sqlalchemy import text, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from . import _bulk, _get_or_create, _rows, lookups
from ._dialects import backend_of
from ._prep import prep_values
from ._query import Query
from ._routing import Target, write
from .database import Database
from .exceptions import FieldError

Defaults = Mapping[str, Any] | Callable[[dict[str, Any]], Mapping[str, Any]] | None

#: Keys per batch at most; fewer when a row has many columns (each value is a
#: bound parameter, and SQLite allows 32,766 per statement).
BATCH_KEYS: Final = 1000
MAX_PARAMETERS: Final = 30_000

#: MariaDB's "Duplicate entry" warning: the only one INSERT IGNORE may give.
_DUPLICATE_ENTRY: Final = 1062


def key_fields(model: type[Any], lookup: Mapping[str, Any]) -> list[str]:
    """The attribute names of *lookup*, checked to be exactly one unique key
    of *model*."""
    names = list(lookup)
    if not names:
        raise ValueError(
            f"{model.__name__}.objects.bulk_get_or_create() got an empty lookup: "
            "each lookup names the fields of one unique key."
        )
    columns = [lookups.column_of(model, name, "bulk_get_or_create()") for name in names]
    wanted = {c.property.columns[0].name for c in columns}
    table = lookups.mapper_of(model).local_table
    for constraint in getattr(table, "constraints", ()):
        if type(constraint).__name__ not in {
            "UniqueConstraint",
            "PrimaryKeyConstraint",
        }:
            continue
        if {c.name for c in constraint.columns} == wanted:
            return [c.key for c in columns]
    for index in getattr(table, "indexes", ()):
        unique = index.unique and not lookups.is_partial(index)
        if unique and {c.name for c in index.columns} == wanted:
            return [c.key for c in columns]
    for column in table.columns:
        if column.unique and {column.name} == wanted:
            return [c.key for c in columns]
    raise FieldError(
        f"{model.__name__}.objects.bulk_get_or_create() needs lookups on exactly "
        f"the fields of one unique key; {sorted(names)!r} is not one (a unique "
        "constraint, a unique index that is not partial, or the primary key).",
        model=model,
        name=",".join(names),
    )


class _Matcher:
    """Which of the *wanted* keys a key read back from the server is: the
    same key, else the one key equal to it as MySQL's default collations
    compare (case and trailing spaces aside). Two wanted keys equal that way
    match neither: each then falls back to get_or_create alone."""

    __slots__ = ("_exact", "_loose")

    def __init__(self, wanted: Iterable[tuple[Any, ...]]) -> None:
        self._exact = set(wanted)
        # Folded keys are only needed once a key comes back spelled otherwise.
        self._loose: dict[tuple[Any, ...], tuple[Any, ...] | None] | None = None

    def __call__(self, key: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if key in self._exact:
            return key
        loose = self._loose
        if loose is None:
            loose = self._loose = {}
            for wanted in self._exact:
                folded = _bulk.loosely(wanted)
                loose[folded] = None if folded in loose else wanted
        return loose.get(_bulk.loosely(key))


async def bulk_get_or_create(
    base: Query,
    target: Target,
    items: Iterable[Mapping[str, Any]],
    defaults: Defaults,
) -> list[tuple[Any, bool]]:
    model = base.model
    lookups_list: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(
                f"{model.__name__}.objects.bulk_get_or_create() takes an iterable of "
                f"lookup dicts, not one holding {type(item).__name__}"
            )
        lookups_list.append(dict(item))
    if not lookups_list:
        return []
    fields = key_fields(model, lookups_list[0])
    if defaults is not None and not callable(defaults):
        defaults = _get_or_create.check_defaults(
            model, defaults, "bulk_get_or_create", "defaults"
        )
    keyed: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    for item in lookups_list:
        if set(item) != set(fields):
            raise ValueError(
                f"{model.__name__}.objects.bulk_get_or_create(): every lookup must "
                f"name the same fields {sorted(fields)!r}, not {sorted(item)!r}."
            )
        prepared = prep_values(model, dict(item))
        keyed.append((tuple(prepared[f] for f in fields), prepared))
    unique: dict[tuple[Any, ...], dict[str, Any]] = {}
    for key, prepared in keyed:
        unique.setdefault(key, prepared)
    width = max(1, len(lookups.mapper_of(model).column_attrs))
    size = max(1, min(BATCH_KEYS, MAX_PARAMETERS // width))
    found: dict[tuple[Any, ...], Any] = {}
    created: set[tuple[Any, ...]] = set()
    keys = list(unique)
    for start in range(0, len(keys), size):
        batch = {k: unique[k] for k in keys[start : start + size]}
        objs, made, missing = await _batch(base, target, fields, batch, defaults)
        found.update(objs)
        created |= made
        for key in missing:  # one at a time, with get_or_create's own rules
            obj, was_created = await _get_or_create.get_or_create(
                base, target, _defaults_for(defaults, batch[key]), batch[key]
            )
            found[key] = obj
            if was_created:
                created.add(key)
    results: list[tuple[Any, bool]] = []
    for key, _ in keyed:
        results.append((found[key], key in created))
        created.discard(key)  # created=True once per key
    return results


def _defaults_for(defaults: Defaults, lookup: dict[str, Any]) -> dict[str, Any] | None:
    if defaults is None:
        return None
    if callable(defaults):
        values = defaults(dict(lookup))
        if not isinstance(values, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(
                "bulk_get_or_create(defaults=...): a callable must return a mapping "
                f"of field names to values, not {type(values).__name__}"
            )
        return dict(values)
    return dict(defaults)


async def _batch(
    base: Query,
    target: Target,
    fields: Sequence[str],
    batch: dict[tuple[Any, ...], dict[str, Any]],
    defaults: Defaults,
) -> tuple[dict[tuple[Any, ...], Any], set[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """One batch: (objects by key, keys this call created, keys to fall back on)."""
    model = base.model
    columns = [getattr(model, f) for f in fields]
    in_database = isinstance(target, Database)
    session_backend = (
        target.facts if isinstance(target, Database) else backend_of(target)
    )

    async def select_keys(
        session: AsyncSession, wanted: Iterable[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], Any]:
        wanted = list(wanted)
        if not wanted:
            return {}
        condition = (
            session_backend.one_of(columns[0], [k[0] for k in wanted])
            if len(columns) == 1
            else tuple_(*columns).in_(wanted)
        )
        stmt = base.statement().where(condition)
        rows = (await session.scalars(stmt)).all()
        match = _Matcher(wanted)
        objs: dict[tuple[Any, ...], Any] = {}
        for obj in rows:
            key = match(tuple(getattr(obj, f) for f in fields))
            if key is not None:
                objs[key] = obj
        return objs

    async def work(
        session: AsyncSession,
    ) -> tuple[dict[tuple[Any, ...], Any], set[tuple[Any, ...]], list[tuple[Any, ...]]]:
        objs = await select_keys(session, batch)
        absent = [k for k in batch if k not in objs]
        if not absent:
            return objs, set(), []
        rows = await _new_rows(model, [batch[k] for k in absent], defaults)
        if not session.get_bind().dialect.insert_returning:
            # (MySQL before 8.0.x has no RETURNING): each key alone, below.
            return objs, set(), absent
        inserted: dict[tuple[Any, ...], Any] = {}
        try:
            if in_database:
                inserted = await _insert(session, model, fields, rows)
            else:
                async with session.begin_nested():
                    inserted = await _insert(session, model, fields, rows)
        except IntegrityError:
            # Another unique key, a foreign key...: each key alone, below.
            if in_database:
                raise
            return objs, set(), absent
        match = _Matcher(absent)
        made: set[tuple[Any, ...]] = set()
        for key, obj in inserted.items():
            mine = match(key)
            if mine is not None:
                made.add(mine)
                if obj is not None:
                    objs[mine] = obj
        # The keys a concurrent caller inserted first (and, where the INSERT
        # returned no objects, the ones this call inserted).
        rest = [k for k in absent if k not in objs]
        objs.update(await select_keys(session, rest))
        missing = [k for k in absent if k not in objs]
        return objs, made, missing

    if isinstance(target, Database):
        try:
            return await write(target, work)
        except IntegrityError:
            objs = await target.run_read(lambda s: select_keys(s, batch))
            return objs, set(), [k for k in batch if k not in objs]
    return await write(target, work)


async def _new_rows(
    model: type[Any], lookups_: list[dict[str, Any]], defaults: Defaults
) -> list[dict[str, Any]]:
    """The column values of the rows to create for *lookups_*, prepared per
    field. Values that are not columns (a relationship, a property with a
    setter) go through the model's constructor, as in create()."""
    column_keys = set(lookups.mapper_of(model).column_attrs.keys())
    rows: list[dict[str, Any]] = []
    built: list[Any] = []
    for lookup in lookups_:  # (already prepared)
        extra = _defaults_for(defaults, lookup)
        if extra:
            if any(callable(v) for v in extra.values()):
                extra = await _rows.resolve_values(extra)
            values = {**lookup, **prep_values(model, extra)}
        else:
            values = dict(lookup)
        if column_keys.issuperset(values):
            rows.append(values)
        else:
            built.append(model(**values))
    if built:
        rows += _bulk.bulk_rows(model, built, "bulk_get_or_create()")[0]
    return rows


async def _insert(
    session: AsyncSession,
    model: type[Any],
    fields: Sequence[str],
    rows: list[dict[str, Any]],
) -> dict[tuple[Any, ...], Any]:
    """INSERT *rows* skipping existing keys; return the keys it inserted, each
    with its new object where the INSERT returned whole rows (else None)."""
    backend = backend_of(session)
    columns = [getattr(model, f) for f in fields]
    key_names = [c.property.columns[0].name for c in columns]
    made: dict[tuple[Any, ...], Any] = {}
    # One multi-row INSERT per set of columns (rows given different fields by
    # their defaults cannot share a VALUES list).
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    many = session.get_bind().dialect.insert_executemany_returning
    for names, group in groups.items():
        # RETURNING the whole rows makes the new objects: no SELECT of them.
        new: Sequence[Any] = ()
        arrays = _arrays(backend, model, names, key_names, group)
        if arrays is not None:
            stmt, params = arrays
            new = (await session.scalars(stmt, params)).all()
        elif many:
            # executemany: compiled once and cached, sent as multi-row
            # INSERTs by SQLAlchemy's insertmanyvalues.
            stmt = backend.insert_skipping_existing(model, key_names)
            new = (
                await session.scalars(
                    stmt.returning(model), group, execution_options=_bulk.RENDER_NULLS
                )
            ).all()
        else:  # MySQL: one multi-row INSERT ... RETURNING the keys
            stmt = backend.insert_skipping_existing(model, key_names)
            result = await session.execute(
                stmt.values(group).returning(*columns),
                execution_options=_bulk.RENDER_NULLS,
            )
            made.update((tuple(r), None) for r in result.all())
        for obj in new:
            made[tuple(getattr(obj, f) for f in fields)] = obj
        if backend.ignore_may_hide_errors:
            warnings = (await session.execute(text("SHOW WARNINGS"))).all()
            bad = [w for w in warnings if int(w[1]) != _DUPLICATE_ENTRY]
            if bad:
                raise ValueError(
                    f"{model.__name__}.objects.bulk_get_or_create(): the server "
                    f"would have stored a value it changed: {bad[0][2]} (MySQL "
                    "warning {0}); nothing of this batch was kept.".format(bad[0][1])
                )
    return made


def _arrays(
    backend: Any,
    model: type[Any],
    names: Sequence[str],
    key_names: Sequence[str],
    group: list[dict[str, Any]],
) -> tuple[Any, dict[str, list[Any]]] | None:
    """The backend's INSERT from one array per column and its parameters, or
    None where it has none for these columns."""
    stmt = backend.insert_from_arrays(model, names, key_names)
    if stmt is None:
        return None
    params = {f"array{i}": [row[name] for row in group] for i, name in enumerate(names)}
    return stmt, params

"""Bulk operations: ``bulk_create`` (with its upserts), ``bulk_update`` and
``in_bulk``.

Many rows per statement, in batches below every backend's bind-parameter
limit; the conflict clauses are the backend's own (``Backend.bulk_insert``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from sqlalchemy import case, inspect, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from . import lookups
from ._dialects import backend_of
from ._prep import prep_values
from ._query import Query
from ._routing import Target, resolve, write
from ._rows import fetch_all, refuse_unless_positive
from .exceptions import NotSupportedError
from .expressions import Combinable

#: Execution options of a bulk INSERT: a field given as None stores NULL, as
#: in Django; the ORM would otherwise leave it out and let its default fill it.
RENDER_NULLS: Final = {"render_nulls": True}

#: Values per statement in in_bulk(): far below every backend's bind-parameter
#: limit (SQLite 32,766, asyncpg 32,767).
IN_BULK_BATCH: Final = 1000


# -- in_bulk ------------------------------------------------------------------


async def in_bulk(
    query: Query,
    explicit: Target | None,
    id_list: Iterable[Any] | None,
    field_name: str,
) -> dict[Any, Any]:
    """``{value: obj}`` for the rows of *query* whose unique *field_name* is in
    *id_list* (every row if None), :data:`IN_BULK_BATCH` values a statement, run
    where a call with the *explicit* target (``using()``) runs."""
    model = query.model
    query.refuse_if_sliced("use in_bulk() on")
    column = lookups.column_of(model, field_name, "in_bulk()")
    if not (column.primary_key or column.unique) and not _unique_alone(model, column):
        raise ValueError(
            f"in_bulk()'s field_name must be a unique field but "
            f"{model.__name__}.{column.key} isn't."
        )
    key = column.key
    if id_list is None:
        every = await fetch_all(resolve(model, explicit), query.statement())
        return {getattr(obj, key): obj for obj in every}
    if isinstance(id_list, str | bytes):
        raise TypeError(f"in_bulk() takes a list of values, not {id_list!r}")
    ids = list(dict.fromkeys(id_list))
    found: dict[Any, Any] = {}
    for start in range(0, len(ids), IN_BULK_BATCH):
        batch = ids[start : start + IN_BULK_BATCH]
        stmt = query.filter((), {f"{key}__in": batch}).statement()
        for obj in await fetch_all(resolve(model, explicit), stmt):
            found[getattr(obj, key)] = obj
    return found


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
        index.unique
        and [c.name for c in index.columns] == [name]
        and not lookups.is_partial(index)
        for index in getattr(table, "indexes", ())
    )


# -- bulk_create ----------------------------------------------------------------


async def bulk_create(
    model: type[Any],
    explicit: Target | None,
    objs: Iterable[Any],
    batch_size: int | None,
    ignore_conflicts: bool,
    update_conflicts: bool,
    update_fields: Sequence[str] | None,
    unique_fields: Sequence[str] | None,
) -> list[Any]:
    """Insert *objs* with one multi-row INSERT per batch, all batches in one
    transaction; set their primary keys where the backend returns them."""
    rows, objs = bulk_rows(model, objs)
    _check_options(
        model,
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
        _refuse_duplicate_keys(model, rows, unique_fields or (), size)
    mapper = lookups.mapper_of(model)
    pk_keys = [mapper.get_property_by_column(c).key for c in mapper.primary_key]
    update = [(f, _column_name(model, f)) for f in update_fields or ()]
    conflict_columns = [_column_name(model, f) for f in unique_fields or ()]

    unique_keys = [
        lookups.column_of(model, f, "bulk_create()").key for f in unique_fields or ()
    ]

    async def work(session: AsyncSession) -> None:
        backend = backend_of(session)
        dialect = session.get_bind().dialect
        # By position only for plain inserts: an upsert's RETURNING gives the
        # existing rows' old keys out of order, and SQLAlchemy sorts the rows
        # by primary key (test_bulk_create_update_conflicts_sets_each_own_key).
        by_position = (
            not ignore_conflicts
            and not update_conflicts
            and dialect.insert_executemany_returning_sort_by_parameter_order
        )
        by_key = update_conflicts and dialect.insert_executemany_returning
        for start in range(0, len(rows), size):
            batch = rows[start : start + size]
            stmt = backend.bulk_insert(
                model,
                ignore_conflicts=ignore_conflicts,
                update=update if update_conflicts else (),
                conflict_columns=conflict_columns,
            )
            if by_position:
                stmt = stmt.returning(
                    *(getattr(model, k) for k in pk_keys),
                    sort_by_parameter_order=True,
                )
            elif by_key:
                stmt = stmt.returning(
                    *(getattr(model, k) for k in (*pk_keys, *unique_keys))
                )
            result = await session.execute(
                stmt,
                batch,
                execution_options={"insertmanyvalues_page_size": size, **RENDER_NULLS},
            )
            if by_position:
                for obj, pk in zip(objs[start:], result.all(), strict=False):
                    for key, value in zip(pk_keys, pk, strict=True):
                        setattr(obj, key, value)
            elif update_conflicts:
                if by_key:
                    found = [tuple(r) for r in result.all()]
                else:  # MySQL/MariaDB: no RETURNING; read the rows back
                    found = await _rows_by_key(
                        session, model, pk_keys, unique_keys, batch
                    )
                _set_keys_by_unique_fields(
                    objs[start : start + size], batch, found, pk_keys, unique_keys
                )

    await write(resolve(model, explicit), work)
    return objs


async def _rows_by_key(
    session: AsyncSession,
    model: type[Any],
    pk_keys: Sequence[str],
    unique_keys: Sequence[str],
    batch: Sequence[Mapping[str, Any]],
) -> list[tuple[Any, ...]]:
    """``(*pk, *unique)`` of the rows whose unique fields are those of *batch*,
    read in the upsert's transaction."""
    wanted = {
        tuple(row.get(k) for k in unique_keys)
        for row in batch
        if all(row.get(k) is not None for k in unique_keys)
    }
    if not wanted:
        return []
    columns = [getattr(model, k) for k in (*pk_keys, *unique_keys)]
    match = tuple_(*(getattr(model, k) for k in unique_keys)).in_(list(wanted))
    result = await session.execute(select(*columns).where(match))
    return [tuple(r) for r in result.all()]


def _set_keys_by_unique_fields(
    objs: Sequence[Any],
    batch: Sequence[Mapping[str, Any]],
    found: Sequence[tuple[Any, ...]],
    pk_keys: Sequence[str],
    unique_keys: Sequence[str],
) -> None:
    """Give each object of an upsert the primary key of the row that has its
    unique fields, inserted or updated. The server compares keys by its
    collation, so a row may come back spelled otherwise ("Ann" for "ann");
    such an object is matched case- and trailing-space-insensitively when
    that is unambiguous, and otherwise keeps no primary key rather than
    another row's."""
    width = len(pk_keys)
    exact = {row[width:]: row[:width] for row in found}
    loose: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for row in found:
        loose.setdefault(loosely(row[width:]), []).append(row[:width])
    for obj, values in zip(objs, batch, strict=True):
        key = tuple(values.get(k) for k in unique_keys)
        pk = exact.get(key)
        if pk is None:
            candidates = loose.get(loosely(key), [])
            pk = candidates[0] if len(candidates) == 1 else None
        if pk is not None:
            for name, value in zip(pk_keys, pk, strict=True):
                setattr(obj, name, value)


def loosely(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(v.rstrip(" ").casefold() if isinstance(v, str) else v for v in key)


def bulk_rows(
    model: type[Any], objs: Iterable[Any], what: str = "bulk_create()"
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Return each object's set column values, checking they are all models."""
    objs = list(objs)
    mapper = lookups.mapper_of(model)
    keys = list(mapper.column_attrs.keys())
    # A primary key left None is the database's to generate, not a NULL.
    pk_keys = {mapper.get_property_by_column(c).key for c in mapper.primary_key}
    rows: list[dict[str, Any]] = []
    for obj in objs:
        state = _state_of(model, obj, what)
        if state.persistent or state.detached:
            raise ValueError(
                f"{what} got a {model.__name__} that is already "
                "saved; it inserts new objects only."
            )
        row = {
            k: state.dict[k]
            for k in keys
            if k in state.dict and not (k in pk_keys and state.dict[k] is None)
        }
        row.update(_foreign_keys(mapper, state, what))
        rows.append(row)
    return rows, objs


def _state_of(model: type[Any], obj: Any, what: str) -> Any:
    """*obj*'s instance state; TypeError unless it is a *model* instance."""
    if not isinstance(obj, model):
        raise TypeError(
            f"{model.__name__}.objects.{what} takes "
            f"{model.__name__} instances, not {type(obj).__name__}"
        )
    return inspect(obj)


def _foreign_keys(
    mapper: Any, state: Any, what: str, only: Iterable[str] | None = None
) -> dict[str, Any]:
    """The foreign key columns of the many-to-one relationships set on an
    object (``Article(author=ann)``), from the related objects' keys; an
    unsaved related object is refused, as Django does, rather than a NULL
    written in its place."""
    values: dict[str, Any] = {}
    for rel in mapper.relationships:
        if rel.direction.name != "MANYTOONE" or rel.key not in state.dict:
            continue
        if only is not None and rel.key not in only:
            continue
        related = state.dict[rel.key]
        if related is None:
            for local, _ in rel.local_remote_pairs:
                values[mapper.get_property_by_column(local).key] = None
            continue
        related_state = inspect(related)
        for local, remote in rel.local_remote_pairs:
            key = related_state.mapper.get_property_by_column(remote).key
            value = related_state.dict.get(key)
            if value is None:
                raise ValueError(
                    f"{what} prohibited to prevent data loss due to unsaved "
                    f"related object '{rel.key}' ({mapper.class_.__name__}."
                    f"{rel.key} is a {type(related).__name__} with no {key})."
                )
            values[mapper.get_property_by_column(local).key] = value
    return values


def _check_options(
    model: type[Any],
    batch_size: int | None,
    ignore_conflicts: bool,
    update_conflicts: bool,
    update_fields: Sequence[str] | None,
    unique_fields: Sequence[str] | None,
) -> None:
    name = model.__name__
    refuse_unless_positive(
        batch_size,
        f"bulk_create(batch_size=...) must be a positive int, not {batch_size!r}",
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
    relationships = lookups.mapper_of(model).relationships
    for what, fields in (
        ("update_fields", update_fields),
        ("unique_fields", unique_fields),
    ):
        related = [f for f in fields if f in relationships]
        if related:
            # Django's ValueError and wording, with the model and fields named.
            raise ValueError(
                f"bulk_create() can only be used with concrete fields in {what} "
                f"({name}: {', '.join(related)} is a relationship; name its "
                "foreign key column instead)."
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


def _column_name(model: type[Any], field: str) -> str:
    name: str = (
        lookups.column_of(model, field, "bulk_create()").property.columns[0].name
    )
    return name


# -- bulk_update --------------------------------------------------------------

#: Objects per UPDATE in bulk_update() unless batch_size says fewer: each adds
#: a WHEN per field, far below every backend's bind-parameter limit.
UPDATE_BATCH: Final = 500


async def bulk_update(
    query: Query,
    explicit: Target | None,
    objs: Iterable[Any],
    fields: Sequence[str],
    batch_size: int | None,
) -> int:
    """Django's ``bulk_update()``: per batch one ``UPDATE ... SET field =
    CASE pk WHEN ... THEN ... END WHERE pk IN (...)`` (one per table of a
    joined-inheritance model), all batches in one transaction; the number of
    rows matched. An object given twice is updated from its first copy. As in
    Django, the QuerySet's own filters apply too."""
    model = query.model
    objs = list(objs)
    refuse_unless_positive(batch_size, "Batch size must be a positive integer.")
    keys, relationships = _update_keys(model, fields)
    mapper = lookups.mapper_of(model)
    if len(mapper.primary_key) != 1:
        raise NotSupportedError(
            f"bulk_update() on {model.__name__} needs a single-column primary key."
        )
    pk_key = mapper.get_property_by_column(mapper.primary_key[0]).key
    rows: dict[Any, dict[str, Any]] = {}
    first: dict[Any, Any] = {}  # pk: the object its values came from
    for obj in objs:
        state = _state_of(model, obj, "bulk_update()")
        pk = state.dict.get(pk_key)
        if pk is None:
            raise ValueError("All bulk_update() objects must have a primary key set.")
        related = _foreign_keys(mapper, state, "bulk_update()", relationships)
        row: dict[str, Any] = {}
        for key in keys:
            if key in related:
                row[key] = related[key]
            elif key in state.dict:
                row[key] = state.dict[key]
            else:
                raise ValueError(
                    f"bulk_update(): {model.__name__}.{key} of the object with "
                    f"{pk_key}={pk!r} is not loaded (deferred or expired); load "
                    "or set it first."
                )
        if pk not in rows:
            rows[pk] = prep_values(model, row)
            first[pk] = obj
    if not rows:
        return 0
    size = min(batch_size or UPDATE_BATCH, UPDATE_BATCH)
    pks = list(rows)
    batches: list[list[Any]] = []
    for start in range(0, len(pks), size):
        batch = pks[start : start + size]
        values = {
            # keyed by the primary key of the column's own table (a joined
            # subclass's parent table has its own)
            key: case(
                *(
                    (_table_pk(mapper, key) == pk, _then(model, key, rows[pk][key]))
                    for pk in batch
                )
            )
            for key in keys
        }
        chosen = query.filter((), {f"{pk_key}__in": batch})
        batches.append(chosen.update_statements(values))

    async def work(session: AsyncSession) -> int:
        matched = 0
        for statements in batches:
            counts = [
                int((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]
                for stmt in statements
            ]
            matched += counts[0]
        return matched

    matched = await write(resolve(model, explicit), work)
    for pk, obj in first.items():  # stored: no change left for a session to flush
        for key, value in rows[pk].items():
            if not isinstance(value, Combinable):
                set_committed_value(obj, key, value)
    return matched


def _update_keys(model: type[Any], fields: Sequence[str]) -> tuple[list[str], set[str]]:
    """The column attributes *fields* set (a many-to-one relationship's name:
    its foreign key), and the relationship names among them."""
    if isinstance(fields, str) or not fields:
        raise ValueError("Field names must be given to bulk_update().")
    mapper = lookups.mapper_of(model)
    keys: list[str] = []
    relationships: set[str] = set()
    for name in fields:
        prop = mapper.relationships.get(name)
        if prop is not None:
            if prop.direction.name != "MANYTOONE":
                raise ValueError(
                    f"bulk_update() can only be used with concrete fields: "
                    f"{model.__name__}.{name} is a to-many relationship."
                )
            relationships.add(name)
            keys.extend(
                mapper.get_property_by_column(local).key
                for local, _ in prop.local_remote_pairs
            )
            continue
        column = lookups.column_of(model, name, "bulk_update()")
        if any(c.primary_key for c in column.property.columns):
            raise ValueError("bulk_update() cannot be used with primary key fields.")
        keys.append(column.key)
    return list(dict.fromkeys(keys)), relationships


def _table_pk(mapper: Any, key: str) -> Any:
    table = mapper.column_attrs[key].columns[0].table
    (column,) = table.primary_key.columns
    return column


def _then(model: type[Any], key: str, value: Any) -> Any:
    """One object's new value of *key*: bound with the column's type, or an
    ``F()`` expression of its row."""
    if isinstance(value, Combinable):
        return value.resolve_expression(model)
    return literal(
        value, type_=lookups.mapper_of(model).column_attrs[key].columns[0].type
    )

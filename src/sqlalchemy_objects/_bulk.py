"""Bulk operations: ``bulk_create`` (with its upserts) and ``in_bulk``.

Many rows per statement, in batches below every backend's bind-parameter
limit; the conflict clauses are the backend's own (``Backend.bulk_insert``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from . import lookups
from ._dialects import backend_of
from ._query import Query
from ._routing import Target, resolve, write
from ._rows import fetch_all

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
        index.unique and [c.name for c in index.columns] == [name]
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
    rows, objs = _bulk_rows(model, objs)
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

    async def work(session: AsyncSession) -> None:
        backend = backend_of(session)
        dialect = session.get_bind().dialect
        returning = (
            not ignore_conflicts
            and dialect.insert_executemany_returning_sort_by_parameter_order
        )
        for start in range(0, len(rows), size):
            batch = rows[start : start + size]
            stmt = backend.bulk_insert(
                model,
                ignore_conflicts=ignore_conflicts,
                update=update if update_conflicts else (),
                conflict_columns=conflict_columns,
            )
            if returning:
                stmt = stmt.returning(
                    *(getattr(model, k) for k in pk_keys),
                    sort_by_parameter_order=True,
                )
            result = await session.execute(
                stmt, batch, execution_options={"insertmanyvalues_page_size": size}
            )
            if returning:
                for obj, pk in zip(objs[start:], result.all(), strict=False):
                    for key, value in zip(pk_keys, pk, strict=True):
                        setattr(obj, key, value)

    await write(resolve(model, explicit), work)
    return objs


def _bulk_rows(
    model: type[Any], objs: Iterable[Any]
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Return each object's set column values, checking they are all models."""
    objs = list(objs)
    mapper = lookups.mapper_of(model)
    keys = list(mapper.column_attrs.keys())
    rows: list[dict[str, Any]] = []
    for obj in objs:
        if not isinstance(obj, model):
            raise TypeError(
                f"{model.__name__}.objects.bulk_create() takes "
                f"{model.__name__} instances, not {type(obj).__name__}"
            )
        state = inspect(obj)
        if state.persistent or state.detached:
            raise ValueError(
                f"bulk_create() got a {model.__name__} that is already "
                "saved; it inserts new objects only."
            )
        rows.append({k: state.dict[k] for k in keys if k in state.dict})
    return rows, objs


def _check_options(
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


def _column_name(model: type[Any], field: str) -> str:
    name: str = (
        lookups.column_of(model, field, "bulk_create()").property.columns[0].name
    )
    return name

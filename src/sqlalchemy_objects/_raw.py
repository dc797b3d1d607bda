"""``Model.objects.raw(sql, params)``: Django's raw SQL that gives model objects.

The SQL is Django's: parameters are ``%s`` (a sequence) or ``%(name)s`` (a
mapping) and ``%%`` is a percent sign, on every backend; colons are literal
(``'10:30'``, ``x::int``). Result columns are matched to the model's columns by
column name (*translations* maps other names onto fields); the primary key must
be among them. Values go through each column's type as an ORM load's would
(SQLite's dates and booleans come back as ``date`` and ``bool``), a column the
query did not select is left unloaded (as after ``only()``), and a column that
is not the model's becomes a plain attribute, as Django's annotations do.
Objects come back detached, as from any other query.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Self

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from . import lookups
from ._combined_values import Rows
from ._routing import Target, read, resolve
from ._typing import ModelT
from .exceptions import FieldError

#: Django's placeholders: ``%%``, ``%s`` and ``%(name)s``.
_PLACEHOLDER: Final = re.compile(r"%(%|s|\((\w+)\)s)")


def statement(
    sql: str, params: Sequence[Any] | Mapping[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """*sql* with Django's placeholders as SQLAlchemy binds, and their values."""
    if not isinstance(sql, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(f"raw() takes the SQL as a string, not {sql!r}")
    named = isinstance(params, Mapping)
    if not named and isinstance(params, str | bytes):
        raise TypeError("raw() params must be a list, tuple or dict, not a string.")
    positional = [] if named else list(params)
    bound: dict[str, Any] = dict(params) if named else {}
    used = 0

    def bind(match: re.Match[str]) -> str:
        nonlocal used
        if match.group(1) == "%":
            return "%"
        name = match.group(2)
        if name is not None:
            if not named or name not in bound:
                raise KeyError(f"raw(): no value for %({name})s in params")
            return f":{name}"
        if named:
            raise TypeError("raw(): %s needs params as a list or tuple, not a dict.")
        if used >= len(positional):
            raise IndexError(
                f"raw(): more %s placeholders than the {len(positional)} params"
            )
        bound[f"_p{used}"] = positional[used]
        used += 1
        return f":_p{used - 1}"

    converted = _PLACEHOLDER.sub(bind, sql.replace(":", "\\:"))
    if not named and used != len(positional):
        raise IndexError(f"raw(): {len(positional)} params for {used} %s placeholders")
    return text(converted), bound


def column_types(
    model: type[Any], translations: Mapping[str, str] | None
) -> dict[str, Any]:
    """The type of each result column name the model's columns may come
    under (their names and attribute keys, and *translations*' names)."""
    types: dict[str, Any] = {}
    for prop in lookups.mapper_of(model).column_attrs:
        column = prop.columns[0]
        types[prop.key] = types[column.name] = column.type
    for name, field in (translations or {}).items():
        if field in types:
            types[name] = types[field]
    return types


def instances(
    model: type[Any],
    keys: Sequence[str],
    rows: Sequence[Sequence[Any]],
    translations: Mapping[str, str] | None,
) -> list[Any]:
    """*rows* of the columns *keys* as detached *model* objects (see the module)."""
    mapper = lookups.mapper_of(model)
    by_name = {prop.columns[0].name: prop for prop in mapper.column_attrs}
    by_key = {prop.key: prop for prop in mapper.column_attrs}
    plan: list[tuple[str, bool]] = []  # (attribute, a column?)
    for key in keys:
        name = (translations or {}).get(key, key)
        prop = by_name.get(name) or by_key.get(name)
        plan.append((key, False) if prop is None else (prop.key, True))
    pk_keys = {mapper.get_property_by_column(c).key for c in mapper.primary_key}
    if not pk_keys <= {attribute for attribute, column in plan if column}:
        raise FieldError(
            f"Raw query must include the primary key of {model.__name__} "
            f"({', '.join(sorted(pk_keys))}); it selected {', '.join(keys)}.",
            model=model,
            name=", ".join(sorted(pk_keys)),
            valid=list(by_key),
        )
    found: list[Any] = []
    for row in rows:
        obj = mapper.class_manager.new_instance()
        extra: list[tuple[str, Any]] = []
        for (attribute, column), value in zip(plan, row, strict=True):
            if column:
                set_committed_value(obj, attribute, value)
            else:
                extra.append((attribute, value))
        make_transient_to_detached(obj)
        for attribute, value in extra:
            setattr(obj, attribute, value)
        found.append(obj)
    return found


class RawQuerySet(Rows[ModelT]):
    """The objects of one raw SQL query: ``await`` it for the list, or
    ``async for`` over it (see :mod:`._raw`)."""

    __slots__ = ("_target", "model", "params", "raw_query", "translations")

    def __init__(
        self,
        raw_query: str,
        model: type[ModelT],
        params: Sequence[Any] | Mapping[str, Any] = (),
        translations: Mapping[str, str] | None = None,
        target: Target | None = None,
    ) -> None:
        statement(raw_query, params)  # placeholder mistakes now, not at await
        self.raw_query = raw_query
        self.model = model
        self.params = params
        self.translations = translations
        self._target = target

    def __repr__(self) -> str:
        return f"<RawQuerySet: {self.raw_query}>"

    def using(self, target: Target) -> Self:
        """Run on *target* (a session or a Database), as ``QuerySet.using``."""
        return type(self)(
            self.raw_query, self.model, self.params, self.translations, target
        )

    async def _fetch(self) -> list[ModelT]:
        stmt, bound = statement(self.raw_query, self.params)
        # typed by name, so each value is read as an ORM load reads it
        typed = stmt.columns(**column_types(self.model, self.translations))

        async def work(session: AsyncSession) -> tuple[list[str], Sequence[Any]]:
            result = await session.execute(typed, bound)
            return list(result.keys()), result.all()

        keys, rows = await read(resolve(self.model, self._target), work)
        return instances(self.model, keys, rows, self.translations)

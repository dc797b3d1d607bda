"""Values prepared for their column before any SQL is sent (Django's
``get_prep_value``).

``id="1"`` means the number 1 and ``pub_date="2005-07-27 00:00:00"`` the
datetime, on every backend: without this, PostgreSQL refuses the comparison
(``operator does not exist: integer = character varying``) and SQLite compares
a number with a text and answers no rows at all, silently. A value that cannot
be read as the column's type raises ``ValueError`` naming the model and the
field, with Django's wording (``Field 'id' expected a number but got 'abc'.``).

Only text is converted, to the column's Python type (and a ``date`` for a
``DateTime`` column, a ``datetime`` for a ``Date`` one, ``0``/``1`` for a
``Boolean``); values of any other type go to SQLAlchemy as they are.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
import weakref
from typing import Any, Final

from sqlalchemy import inspect, types
from sqlalchemy.orm import Mapper

_TRUE: Final = frozenset({"t", "true", "1", "yes", "y", "on"})
_FALSE: Final = frozenset({"f", "false", "0", "no", "n", "off"})


def _where(model: type[Any], name: str) -> str:
    return f" ({model.__name__}.{name})"


def prep_value(model: type[Any], name: str, column_type: Any, value: Any) -> Any:
    """*value* as the Python type of a column of *column_type*; ValueError
    naming ``model.name`` if text cannot be read as that type."""
    if value is None:
        return None
    impl: Any = getattr(column_type, "impl_instance", column_type)
    if isinstance(impl, types.Boolean):
        return _boolean(model, name, value)
    if isinstance(value, bool):
        return value
    if isinstance(impl, types.Integer):
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise ValueError(
                    f"Field '{name}' expected a number but got {value!r}."
                    + _where(model, name)
                ) from None
        return value
    if isinstance(impl, types.Numeric):
        if isinstance(value, str):
            converted: Any
            try:
                as_decimal: bool = column_type_asdecimal(impl)
                if as_decimal and not isinstance(impl, types.Float):
                    converted = decimal.Decimal(value.strip())
                    if not converted.is_finite():
                        raise decimal.InvalidOperation
                else:
                    converted = float(value)
            except (decimal.InvalidOperation, ValueError):
                raise ValueError(
                    f"Field '{name}' expected a number but got {value!r}."
                    + _where(model, name)
                ) from None
            return converted
        return value
    if isinstance(impl, types.DateTime):
        return _datetime(model, name, value)
    if isinstance(impl, types.Date):
        return _date(model, name, value)
    if isinstance(impl, types.Time) and isinstance(value, str):
        return _parsed(
            model,
            name,
            dt.time.fromisoformat,
            value,
            "value has an invalid format. It must be in HH:MM[:ss[.uuuuuu]] format.",
        )
    if isinstance(impl, types.Uuid) and isinstance(value, str):
        return _parsed(model, name, uuid.UUID, value, "is not a valid UUID.")
    return value


def _parsed(model: type[Any], name: str, parse: Any, text: str, complaint: str) -> Any:
    """``parse(text)``, or ValueError saying ``'text' <complaint> (Model.name)``."""
    try:
        return parse(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} {complaint}" + _where(model, name)) from None


def column_type_asdecimal(impl: Any) -> bool:
    """Whether a Numeric type returns Decimal (Float does not, by default)."""
    return bool(getattr(impl, "asdecimal", True))


def _boolean(model: type[Any], name: str, value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    if isinstance(value, int | str):
        raise ValueError(
            f"{value!r} value must be either True or False." + _where(model, name)
        )
    return value


def _datetime(model: type[Any], name: str, value: Any) -> Any:
    if isinstance(value, str):
        return _parsed(
            model,
            name,
            dt.datetime.fromisoformat,
            value,
            "value has an invalid format. It must be in "
            "YYYY-MM-DD HH:MM[:ss[.uuuuuu]][TZ] format.",
        )
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day)
    return value


def _date(model: type[Any], name: str, value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            try:
                return dt.datetime.fromisoformat(text).date()
            except ValueError:
                raise ValueError(
                    f"{value!r} value has an invalid date format. It must be in "
                    "YYYY-MM-DD format." + _where(model, name)
                ) from None
    if isinstance(value, dt.datetime):
        return value.date()
    return value


#: Column types whose values prep_value() may change (text, and a date for a
#: DateTime column or the other way round); a value of any other column is
#: passed on as it is.
_CONVERTING: Final = (
    types.Boolean,
    types.Integer,
    types.Numeric,
    types.DateTime,
    types.Date,
    types.Time,
    types.Uuid,
)

#: Per model: attribute name -> column type, for the columns whose values
#: prep_value() may change. Mapped classes only gain columns at mapping time.
_converting: weakref.WeakKeyDictionary[type[Any], dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)


def _converting_columns(model: type[Any]) -> dict[str, Any]:
    found = _converting.get(model)
    if found is None:
        mapper: Mapper[Any] = inspect(model)
        found = {}
        for key, prop in mapper.column_attrs.items():
            column_type = prop.columns[0].type
            impl = getattr(column_type, "impl_instance", column_type)
            if isinstance(impl, _CONVERTING):
                found[key] = column_type
        _converting[model] = found
    return found


def prep_values(model: type[Any], values: dict[str, Any]) -> dict[str, Any]:
    """*values* (attribute name → value) with each column's value prepared;
    relationships and other attributes as they are."""
    columns = _converting_columns(model)
    prepared = dict(values)
    for key, value in values.items():
        if key in columns and isinstance(value, str | dt.date):
            prepared[key] = prep_value(model, key, columns[key], value)
    return prepared

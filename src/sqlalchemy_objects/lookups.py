"""Django-style ``field__op=value`` lookups turned into SQLAlchemy expressions.

Names are resolved against the model's mapper, never interpolated into SQL:
an unknown field or lookup raises :class:`FieldError` before any statement is
built. ``a__b=x`` follows relationships with ``has()`` / ``any()`` (an EXISTS
subquery), so one-to-many lookups never duplicate rows.
"""

from __future__ import annotations

import functools
import inspect as _inspect
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import sqlalchemy.orm
from sqlalchemy import (
    Boolean,
    ColumnElement,
    String,
    and_,
    any_,
    bindparam,
    cast,
    func,
    inspect,
    literal_column,
    null,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import ArgumentError, NoInspectionAvailable
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapper, RelationshipProperty

from ._prep import prep_value
from ._transforms import TRANSFORMS, applies
from .exceptions import ConfigurationError, FieldError

LOOKUP_SEP: Final = "__"

_Op = Callable[[Any, Any], ColumnElement[bool]]


def _escape_like(value: Any) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _exact(col: Any, value: Any) -> ColumnElement[bool]:
    return col.is_(null()) if value is None else col == value  # type: ignore[no-any-return]


#: Above this many values an ``__in`` list is sent as one PostgreSQL array (or,
#: past SQLite's limit, one JSON document) instead of a parameter per value.
LARGE_IN: Final = 1000
#: SQLite's default maximum number of bind parameters (since 3.32).
SQLITE_MAX_VARIABLES: Final = 32766


class LargeIn(ColumnElement[bool]):
    """``column IN (values)`` for lists too long for one bind parameter each.

    asyncpg refuses more than 32,767 parameters and SQLite 32,766; MySQL drivers
    interpolate on the client, so they keep the plain IN. Values still travel as
    bind parameters (an array, or a JSON text), never inside the SQL string.
    """

    type = Boolean()
    inherit_cache = False  # the value list is not part of any cache key

    def __init__(self, column: Any, values: list[Any]) -> None:
        self.column = column
        self.values = values


@compiles(LargeIn)
def _compile_large_in(element: LargeIn, compiler: Any, **kw: Any) -> str:
    text: str = compiler.process(element.column.in_(element.values), **kw)
    return text


@compiles(LargeIn, "postgresql")
def _compile_large_in_pg(element: LargeIn, compiler: Any, **kw: Any) -> str:
    array = bindparam(None, element.values, type_=ARRAY(element.column.type))
    text: str = compiler.process(element.column == any_(array), **kw)
    return text


@compiles(LargeIn, "sqlite")
def _compile_large_in_sqlite(element: LargeIn, compiler: Any, **kw: Any) -> str:
    values = element.values
    plain = all(isinstance(v, int | str) and not isinstance(v, bool) for v in values)
    if len(values) <= SQLITE_MAX_VARIABLES or not plain:
        return _compile_large_in(element, compiler, **kw)
    rows: Any = select(literal_column("value", type_=element.column.type)).select_from(
        func.json_each(bindparam(None, json.dumps(values)))
    )
    text: str = compiler.process(element.column.in_(rows), **kw)
    return text


class Regex(ColumnElement[bool]):
    """``column`` matches the regular expression ``pattern`` (Django's ``regex``
    and, with *insensitive*, ``iregex``), compiled for each backend:

    * PostgreSQL: ``~`` / ``~*`` (POSIX regular expressions);
    * MariaDB / MySQL: ``REGEXP`` (PCRE) with an inline ``(?-i)`` / ``(?i)``, so
      case matters or not whatever the column's collation says;
    * SQLite: ``REGEXP``, which SQLAlchemy's driver implements with Python's
      ``re`` module, with an inline ``(?i)`` for ``iregex``.

    The pattern always travels as a bind parameter.
    """

    type = Boolean()
    inherit_cache = True

    def __init__(self, column: Any, pattern: str, *, insensitive: bool) -> None:
        self.column = column
        self.pattern = pattern
        self.insensitive = insensitive


def _regexp_with_inline_flag(
    element: Regex, compiler: Any, case_sensitive_flag: str, **kw: Any
) -> str:
    flag = "(?i)" if element.insensitive else case_sensitive_flag
    pattern = bindparam(None, flag + element.pattern, type_=String())
    text: str = compiler.process(element.column.regexp_match(pattern), **kw)
    return text


@compiles(Regex)
def _compile_regex(element: Regex, compiler: Any, **kw: Any) -> str:
    return _regexp_with_inline_flag(element, compiler, "", **kw)


@compiles(Regex, "mysql")
def _compile_regex_mysql(element: Regex, compiler: Any, **kw: Any) -> str:
    # PCRE follows the column's collation unless told: (?-i) forces case.
    return _regexp_with_inline_flag(element, compiler, "(?-i)", **kw)


@compiles(Regex, "postgresql")
def _compile_regex_pg(element: Regex, compiler: Any, **kw: Any) -> str:
    flags = "i" if element.insensitive else None
    text: str = compiler.process(
        element.column.regexp_match(element.pattern, flags=flags), **kw
    )
    return text


def _in(col: Any, value: Any) -> ColumnElement[bool]:
    values = list(value)
    if len(values) > LARGE_IN:
        return LargeIn(col, values)
    return col.in_(values)  # type: ignore[no-any-return]


def _range(col: Any, value: Any) -> ColumnElement[bool]:
    low, high = list(value)
    return col.between(low, high)  # type: ignore[no-any-return]


def _isnull(col: Any, value: Any) -> ColumnElement[bool]:
    return col.is_(null()) if value else col.is_not(null())  # type: ignore[no-any-return]


OPERATORS: Final[dict[str, _Op]] = {
    "exact": _exact,
    "iexact": lambda c, v: c.ilike(_escape_like(v), escape="\\"),
    "contains": lambda c, v: c.like(f"%{_escape_like(v)}%", escape="\\"),
    "icontains": lambda c, v: c.ilike(f"%{_escape_like(v)}%", escape="\\"),
    "startswith": lambda c, v: c.like(f"{_escape_like(v)}%", escape="\\"),
    "istartswith": lambda c, v: c.ilike(f"{_escape_like(v)}%", escape="\\"),
    "endswith": lambda c, v: c.like(f"%{_escape_like(v)}", escape="\\"),
    "iendswith": lambda c, v: c.ilike(f"%{_escape_like(v)}", escape="\\"),
    "in": _in,
    "gt": lambda c, v: c > v,
    "gte": lambda c, v: c >= v,
    "lt": lambda c, v: c < v,
    "lte": lambda c, v: c <= v,
    "range": _range,
    "isnull": _isnull,
    "regex": lambda c, v: Regex(c, v, insensitive=False),
    "iregex": lambda c, v: Regex(c, v, insensitive=True),
}


#: Lookups that compare text (their value is a string, the column cast to one).
_TEXT_OPS: Final = frozenset(
    {
        "iexact",
        "contains",
        "icontains",
        "startswith",
        "istartswith",
        "endswith",
        "iendswith",
        "regex",
        "iregex",
    }
)


#: Lookups that take an F() expression as their value.
_EXPRESSION_OPS: Final = frozenset({"exact", "gt", "gte", "lt", "lte"})


def _prep_operand(
    model: type[Any], name: str, column_type: Any, op: str, value: Any
) -> Any:
    """*value* (each value of ``in`` and ``range``) prepared for the column."""
    if op in {"in", "range"}:
        return [prep_value(model, name, column_type, v) for v in value]
    if op == "isnull":
        return value
    return prep_value(model, name, column_type, value)


def _subquery_of(value: Any) -> Any:
    """The ``SELECT pk`` of a QuerySet given as an ``__in`` value, or None."""
    as_subquery = getattr(value, "as_subquery", None)
    return None if as_subquery is None else as_subquery()


def _single_foreign_key(model: type[Any], prop: Any) -> str | None:
    """The attribute of the one local foreign key column of a many-to-one
    relationship, or None for any other kind."""
    if prop.uselist or prop.direction.name != "MANYTOONE":
        return None
    pairs = list(prop.local_remote_pairs)
    if len(pairs) != 1:
        return None
    key: str = mapper_of(model).get_property_by_column(pairs[0][0]).key
    return key


def _related_keys(root: type[Any], full: str, prop: Any, op: str, value: Any) -> Any:
    """The remote key of each related object in *value* (``exact``: one, ``in``:
    many); values that are not objects of the related model are keys already."""
    target = prop.mapper.class_
    remote = prop.mapper.get_property_by_column(
        next(iter(prop.local_remote_pairs))[1]
    ).key

    def key_of(item: Any) -> Any:
        if isinstance(item, target):
            found = getattr(item, remote)
            if found is None:
                raise ValueError(
                    f"{root.__name__}.{full} got an unsaved {target.__name__}; "
                    "save it first."
                )
            return found
        return item

    if op == "in":
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise TypeError(
                f"{root.__name__}.{full} needs a list, tuple or set of values, "
                f"not {value!r}"
            )
        return [key_of(v) for v in _items(value)]
    return None if value is None else key_of(value)


def _items(value: Any) -> list[Any]:
    return list(value)


def _check_value(root: type[Any], path: str, op: str, value: Any) -> None:
    """Refuse a value that *op* cannot take, naming the model and the lookup."""
    where = f"{root.__name__}.{path}__{op}"
    if _inspect.isroutine(value) or isinstance(value, functools.partial):
        raise TypeError(
            f"{where} got a callable ({value!r}); pass the value itself "
            "(call it first)."
        )
    if op == "isnull":
        if not isinstance(value, bool):
            raise ValueError(
                f"The QuerySet value for an isnull lookup must be True or False "
                f"({where} got {value!r})."
            )
    elif op == "in":
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise TypeError(
                f"{where} needs a list, tuple or set of values, not {value!r}"
            )
    elif op == "range":
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise TypeError(f"{where} needs a (low, high) pair, not {value!r}")
        _require_pair(where, value)
    elif op in {"regex", "iregex"}:
        if not isinstance(value, str):
            raise TypeError(f"{where} needs a pattern string, not {value!r}")
    elif value is None and op != "exact":
        raise ValueError(
            f"Cannot use None as a query value for {where}; use {path}__isnull=True."
        )


def _require_pair(where: str, value: Any) -> None:
    if len(list(value)) != 2:
        raise ValueError(f"{where} needs exactly two values (low, high), not {value!r}")


def mapper_of(model: type[Any]) -> Mapper[Any]:
    """Return the mapper of *model*, or raise ConfigurationError if it has none."""
    try:
        mapper: Mapper[Any] = inspect(model)
    except NoInspectionAvailable:
        raise ConfigurationError(
            f"{model.__name__} is not a mapped class: give it a __tablename__ and "
            "columns, or use the manager of a concrete model."
        ) from None
    return mapper


def field_names(mapper: Mapper[Any]) -> list[str]:
    """Return the names a lookup or a create may use on *mapper*, sorted."""
    return sorted(mapper.attrs.keys())


def _no_field(
    model: type[Any], mapper: Mapper[Any], name: str, full: str, root: type[Any]
) -> FieldError:
    valid = field_names(mapper)
    where = "" if name == full else f" (in lookup {full!r} on {root.__name__})"
    return FieldError(
        f"Cannot resolve {name!r} into a field of {model.__name__}{where}. "
        f"Choices are: {', '.join(valid)}.",
        model=root,
        name=name,
        valid=valid,
    )


def _resolve(
    model: type[Any], parts: list[str], value: Any, full: str, root: type[Any]
) -> ColumnElement[bool]:
    mapper = mapper_of(model)
    name = parts[0]
    if name == "pk" and "pk" not in mapper.attrs:
        pk = mapper.primary_key
        if len(pk) != 1:
            raise FieldError(
                f"{model.__name__} has a composite primary key; name its columns "
                f"instead of 'pk' ({', '.join(str(c.key) for c in pk)}).",
                model=model,
                name="pk",
                valid=field_names(mapper),
            )
        name = mapper.get_property_by_column(pk[0]).key
    prop = mapper.attrs.get(name)
    if prop is None:
        raise _no_field(model, mapper, parts[0], full, root)
    attr = getattr(model, name)
    rest = parts[1:]
    if isinstance(prop, RelationshipProperty):
        target = prop.mapper.class_
        # A related model's field named like a lookup (``season__gt`` where
        # Season has a field ``gt``) is the field, as in Django.
        if rest and (rest[0] not in OPERATORS or rest[0] in prop.mapper.attrs):
            inner = _resolve(target, rest, value, full, root)
            found: ColumnElement[bool] = (
                attr.any(inner) if prop.uselist else attr.has(inner)
            )
            if rest[-1] == "isnull" and value is True:
                # Django joins outward: with no related row at all, the
                # related field counts as NULL too.
                missing: ColumnElement[bool] = ~(
                    attr.any() if prop.uselist else attr.has()
                )
                return or_(missing, found)
            return found
        op = rest[0] if rest else "exact"
        if op == "isnull":
            _check_value(root, name, op, value)
            present = attr.any() if prop.uselist else attr.has()
            return ~present if value else present  # type: ignore[no-any-return]
        local = _single_foreign_key(model, prop)
        subquery = _subquery_of(value) if op == "in" else None
        if local is not None and subquery is not None:
            # author__in=Author.objects.filter(...): one statement, no round trip
            return getattr(model, local).in_(subquery)  # type: ignore[no-any-return]
        if local is not None and op in {"exact", "in"}:
            # Django: a related object or its primary key, by the local column.
            return _resolve(
                model,
                [local, op],
                _related_keys(root, full, prop, op, value),
                full,
                root,
            )
        if op != "exact" or prop.uselist:
            raise FieldError(
                f"Unsupported lookup {op!r} on relationship {model.__name__}.{name} "
                f"(in lookup {full!r} on {root.__name__}); "
                f"use {name}__<field>=... or {name}=<{target.__name__} instance>.",
                model=root,
                name=f"{name}__{op}",
                valid=sorted(prop.mapper.attrs.keys()),
            )
        return attr == value  # type: ignore[no-any-return]
    column_type = prop.columns[0].type
    column: Any = attr
    if rest and rest[0] in TRANSFORMS:
        if not applies(rest[0], column_type):
            raise FieldError(
                f"Unsupported lookup {rest[0]!r} for {model.__name__}.{name} "
                f"({type(column_type).__name__}) in {full!r} on {root.__name__}.",
                model=root,
                name=full,
                valid=sorted(OPERATORS),
            )
        column = TRANSFORMS[rest[0]](attr)
        column_type = column.type
        rest = rest[1:]
    if len(rest) > 1 or (rest and rest[0] not in OPERATORS):
        bad = LOOKUP_SEP.join(rest)
        raise FieldError(
            f"Unsupported lookup {bad!r} for {model.__name__}.{name} in {full!r} "
            f"on {root.__name__}. "
            f"Valid lookups are: {', '.join(sorted(OPERATORS))}.",
            model=root,
            name=full,
            valid=sorted(OPERATORS),
        )
    op = rest[0] if rest else "exact"
    expression = getattr(value, "resolve_expression", None)
    if expression is not None and op in _EXPRESSION_OPS:
        # F("field"): a column of the queried model (Django's rule), which
        # an EXISTS through a relationship sees by correlation.
        return OPERATORS[op](column, expression(root))
    subquery = _subquery_of(value) if op == "in" else None
    if subquery is not None:
        return column.in_(subquery)  # type: ignore[no-any-return]
    _check_value(root, name, op, value)
    if op in _TEXT_OPS:
        if not isinstance(column_type, String):
            # Django casts the column for text lookups on other types.
            column = cast(column, String())
        if not isinstance(value, str):
            value = str(value)
    else:
        value = _prep_operand(model, name, column_type, op, value)
    try:
        return OPERATORS[op](column, value)
    except ArgumentError as exc:  # e.g. age__gte=True: SQLAlchemy refuses the operand
        raise TypeError(
            f"{root.__name__}.{name}__{op} cannot take {value!r}: {exc}"
        ) from exc


def build_where(
    model: type[Any],
    lookup: Mapping[str, Any] | list[tuple[str, Any]],
    *,
    same_row: bool = False,
) -> ColumnElement[bool] | None:
    """Return the AND of *lookup*'s conditions on *model*, or None if it is empty.

    With *same_row* (the lookups of one ``filter()`` call), lookups through
    the same multi-valued relationship must hold for one related row
    together, as Django's "Spanning multi-valued relationships" says: they
    share one EXISTS. Without it (``exclude()``, or separate calls), each
    lookup is its own EXISTS and may match a different row.
    """
    pairs: list[tuple[str, Any]] = (
        list(lookup.items()) if isinstance(lookup, Mapping) else lookup
    )
    items = [(key.split(LOOKUP_SEP), value, key) for key, value in pairs]
    if same_row:
        clauses = _on_one_row(model, items, model)
    else:
        clauses = [_resolve(model, p, v, full, model) for p, v, full in items]
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else and_(*clauses)


_Item = tuple[list[str], Any, str]


def _on_one_row(
    model: type[Any], items: list[_Item], root: type[Any]
) -> list[ColumnElement[bool]]:
    """The conditions of *items* on *model*, those through one multi-valued
    relationship grouped into one ``any()`` (recursively)."""
    mapper = mapper_of(model)
    groups: dict[str, list[_Item]] = {}
    order: list[str | _Item] = []
    for parts, value, full in items:
        prop = mapper.relationships.get(parts[0])
        rest = parts[1:]
        if (
            prop is not None
            and prop.uselist
            and rest
            and (rest[0] not in OPERATORS or rest[0] in prop.mapper.attrs)
        ):
            if parts[0] not in groups:
                groups[parts[0]] = []
                order.append(parts[0])
            groups[parts[0]].append((rest, value, full))
        else:
            order.append((parts, value, full))
    clauses: list[ColumnElement[bool]] = []
    for entry in order:
        if not isinstance(entry, str):
            clauses.append(_resolve(model, entry[0], entry[1], entry[2], root))
            continue
        members = groups[entry]
        if len(members) == 1:
            rest, value, full = members[0]
            clauses.append(_resolve(model, [entry, *rest], value, full, root))
            continue
        target = mapper.relationships[entry].mapper.class_
        inner = _on_one_row(target, members, root)
        clauses.append(getattr(model, entry).any(and_(*inner)))
    return clauses


def creation_values(model: type[Any], lookup: Mapping[str, Any]) -> dict[str, Any]:
    """Return the exact-match part of *lookup* as constructor values (Django's rule).

    ``field`` and ``field__exact`` become ``field``; ``pk`` becomes the primary-key
    attribute; anything else with ``__`` only filters.
    """
    mapper = mapper_of(model)
    values: dict[str, Any] = {}
    for key, value in lookup.items():
        parts = key.split(LOOKUP_SEP)
        if len(parts) == 2 and parts[1] == "exact":
            parts = parts[:1]
        if len(parts) != 1:
            continue
        name = parts[0]
        if name == "pk" and "pk" not in mapper.attrs and len(mapper.primary_key) == 1:
            name = mapper.get_property_by_column(mapper.primary_key[0]).key
        values[name] = value
    return values


def _settable(model: type[Any], name: str) -> bool:
    """Whether *name* is a property of *model* with a setter (Django accepts
    those in ``create()`` and ``defaults``, and so does the constructor)."""
    for klass in model.__mro__:
        if name in klass.__dict__:
            value = klass.__dict__[name]
            return isinstance(value, property) and value.fset is not None
    return False


def check_field_names(model: type[Any], names: Iterable[str], what: str) -> None:
    """Raise FieldError listing every name in *names* that *model* cannot take."""
    mapper = mapper_of(model)
    bad = sorted(
        {n for n in names if n not in mapper.attrs and not _settable(model, n)}
    )
    if bad:
        valid = field_names(mapper)
        raise FieldError(
            f"Invalid field name(s) for model {model.__name__} in {what}: "
            f"{', '.join(repr(b) for b in bad)}. Choices are: {', '.join(valid)}.",
            model=model,
            name=bad[0],
            valid=valid,
        )


def update_values(model: type[Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """*values* of ``update()`` by column: a many-to-one relationship
    (``update(author=ann)``, or ann's key) sets its foreign key column, as in
    Django; any other name must be a column."""
    mapper = mapper_of(model)
    columns: dict[str, Any] = {}
    for name, value in values.items():
        prop = mapper.relationships.get(name)
        local = _single_foreign_key(model, prop) if prop is not None else None
        if prop is not None and local is not None:
            columns[local] = _related_keys(model, name, prop, "exact", value)
            continue
        columns[column_of(model, name, "update()").key] = value
    return columns


def field_column(model: type[Any], name: str, what: str) -> Any:
    """The column *name* of *model*, or, for ``author__name``, the column of
    a row reached through many-to-one relationships (Django's ``values()`` and
    ``order_by()`` across relationships), as a correlated scalar subquery: it
    is NULL where a link is missing and never duplicates rows. A to-many step
    raises FieldError (it would need a row per related row)."""
    if not isinstance(name, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(
            f"{what} takes field names as strings, not {name!r}"
            + (f" (say {name.key!r})" if hasattr(name, "key") else "")
        )
    parts = name.split(LOOKUP_SEP)
    if len(parts) == 1:
        return column_of(model, _key_of_relationship(model, name), what)
    hops: list[tuple[Any, Any, Any]] = []  # (relationship, owner, target alias)
    owner: Any = model
    current = model
    for part in parts[:-1]:
        prop = mapper_of(current).relationships.get(part)
        if prop is None or prop.uselist:
            valid = sorted(
                key
                for key, rel in mapper_of(current).relationships.items()
                if not rel.uselist
            )
            kind = (
                "a to-many relationship" if prop is not None else "not a relationship"
            )
            raise FieldError(
                f"Cannot resolve {name!r} in {what} on {model.__name__}: {part!r} of "
                f"{current.__name__} is {kind}; only many-to-one steps are "
                f"supported here. Choices are: {', '.join(valid)}.",
                model=model,
                name=name,
                valid=valid,
            )
        target = sqlalchemy.orm.aliased(prop.mapper.class_)
        hops.append((prop, owner, target))
        owner = target
        current = prop.mapper.class_
    last = column_of(current, _key_of_relationship(current, parts[-1]), what)
    expression: Any = getattr(owner, last.key)
    for prop, hop_owner, target in reversed(hops):
        owner_mapper = mapper_of(prop.parent.class_)
        target_mapper = prop.mapper
        condition = and_(
            *(
                getattr(target, target_mapper.get_property_by_column(remote).key)
                == getattr(hop_owner, owner_mapper.get_property_by_column(local).key)
                for local, remote in prop.local_remote_pairs
            )
        )
        # Named, not automatic: the owner may sit two levels up (an F() inside
        # the EXISTS of a relationship lookup).
        expression = (
            select(expression).where(condition).correlate(hop_owner).scalar_subquery()
        )
    return expression


def _key_of_relationship(model: type[Any], name: str) -> str:
    """*name*, or for a many-to-one relationship of one foreign-key column
    (``values("author")``) that column's attribute, as Django gives
    ``author_id`` there."""
    mapper = mapper_of(model)
    prop = mapper.relationships.get(name)
    if prop is None or prop.uselist or len(prop.local_columns) != 1:
        return name
    (local,) = prop.local_columns
    if local.primary_key and prop.direction.name != "MANYTOONE":
        return name
    return str(mapper.get_property_by_column(local).key)


def is_partial(index: Any) -> bool:
    """Whether *index* covers only some rows (``postgresql_where=``,
    ``sqlite_where=``...): unique there is not unique in the table; it can be
    neither an ``ON CONFLICT`` target nor Django's unique field."""
    return any(
        key.endswith("_where") and value is not None
        for key, value in index.dialect_kwargs.items()
    )


def column_of(model: type[Any], name: str, what: str) -> Any:
    """Return the column attribute *name* of *model* (``pk`` allowed).

    Raises FieldError naming the model, the name and the valid column names when
    *name* is not a column (a relationship, a ``__`` path, a typo).
    """
    mapper = mapper_of(model)
    if name == "pk" and "pk" not in mapper.attrs and len(mapper.primary_key) == 1:
        name = mapper.get_property_by_column(mapper.primary_key[0]).key
    if name not in mapper.column_attrs:
        valid = sorted(mapper.column_attrs.keys())
        hint = (
            " Related fields are not supported here; query the related model."
            if LOOKUP_SEP in name or name in mapper.relationships
            else ""
        )
        raise FieldError(
            f"Cannot resolve {name!r} into a column of {model.__name__} in {what}. "
            f"Choices are: {', '.join(valid)}.{hint}",
            model=model,
            name=name,
            valid=valid,
        )
    return getattr(model, name)

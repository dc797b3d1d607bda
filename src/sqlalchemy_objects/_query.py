"""Query: a QuerySet's state, and the SQLAlchemy statements it compiles to.

Django keeps the lazy, chainable user API in ``QuerySet`` and "all of the SQL
construction" in ``sql.Query``; this module is our ``sql.Query``. A
:class:`Query` is immutable: every builder returns a new one. It checks names
when a builder is called (FieldError before any SQL) and builds statements:
the SELECT of rows (with WHERE, ORDER BY, LIMIT/OFFSET, loader options and
only()/defer()), and the COUNT, EXISTS, column, aggregate, UPDATE and DELETE
statements of the terminal methods. It never runs one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal

import sqlalchemy.orm
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    false,
    func,
    inspect,
    literal_column,
    select,
    tuple_,
    update,
)
from sqlalchemy.sql.util import ClauseAdapter

from . import _compound, _joins, exceptions, lookups
from ._dialects import distinct_on
from ._prep import prep_values
from .expressions import (
    Aggregate,
    Combinable,
    Conditional,
    OrderBy,
    Q,
    negate,
    resolve_operand,
)

#: Like Django: fetch at most this many rows to report "more than 20" cheaply.
MAX_GET_RESULTS: Final = 21

#: The row lock a read takes: ``FOR SHARE`` / ``FOR UPDATE``, or none.
Lock = Literal["share", "update"] | None


class Query:
    """The state of a QuerySet on *model*, compiled on demand."""

    __slots__ = (
        "aliases",
        "annotations",
        "combined",
        "defer",
        "distinct",
        "distinct_fields",
        "empty",
        "for_update",
        "limit",
        "model",
        "offset",
        "only",
        "options",
        "order",
        "prefetches",
        "through",
        "where",
    )

    def __init__(
        self, model: type[Any], where: tuple[ColumnElement[bool], ...] = ()
    ) -> None:
        self.model = model
        self.where = where
        self.order: tuple[OrderTerm, ...] = ()
        self.limit: int | None = None
        self.offset = 0
        # (relationship path, joined?) from select_related / prefetch_related
        self.options: tuple[tuple[str, bool], ...] = ()
        # only() / defer(): the columns to load is (only or all) minus defer
        self.only: frozenset[str] | None = None
        self.defer: frozenset[str] = frozenset()
        self.distinct = False
        #: distinct(*fields): PostgreSQL's DISTINCT ON
        self.distinct_fields: tuple[str, ...] = ()
        #: annotate(): (name, aggregate or expression, its SQL, the model it reads)
        self.annotations: tuple[Annotation, ...] = ()
        #: alias(): annotations to filter and order on, not selected
        self.aliases: tuple[Annotation, ...] = ()
        #: none(): matches nothing, and no statement is sent
        self.empty = False
        #: select_for_update()'s options, or None
        self.for_update: RowLock | None = None
        #: union() / intersection() / difference(): the parts, or None
        self.combined: _compound.Combined | None = None
        #: per filter() call, per to-many relationship it went through: its
        #: lookups through it ANDed, or None where an OR / NOT also did
        self.through: tuple[_joins.Through, ...] = ()
        #: Prefetch objects with a QuerySet or to_attr (see _prefetch)
        self.prefetches: tuple[Any, ...] = ()

    def replace(self, **changes: Any) -> Query:
        """A copy with *changes* (attribute names) applied."""
        clone = object.__new__(Query)
        for name in Query.__slots__:
            setattr(clone, name, changes.get(name, getattr(self, name)))
        return clone

    # -- state ------------------------------------------------------------------

    @property
    def sliced(self) -> bool:
        return self.limit is not None or self.offset != 0

    def refuse_if_sliced(self, what: str) -> None:
        if self.sliced:
            raise TypeError(f"Cannot {what} a query once a slice has been taken.")

    def nothing(self) -> Query:
        """Matching no row (``none()``): no statement is sent."""
        return self.replace(empty=True, where=(*self.where, false()))

    def refuse_if_combined(self, what: str) -> None:
        if self.combined is not None:
            raise _compound.refuse(what)

    def combine(
        self, kind: _compound.Kind, others: list[Query], all_rows: bool
    ) -> Query:
        """``union()`` / ``intersection()`` / ``difference()`` of this query
        and *others*: a new query on the compound, unordered and unsliced."""
        fresh = Query(self.model)
        fresh.combined = _compound.Combined(kind, (self, *others), all_rows)
        return fresh

    def ordering(self) -> tuple[OrderTerm, ...]:
        return self.order or ("pk",)

    @property
    def loads_more_than_rows(self) -> bool:
        """Whether objects get more than their rows: annotations, or Prefetch
        objects loaded after them (streaming takes neither)."""
        return bool(self.annotations or self.prefetches)

    def loads_whole_rows(self) -> bool:
        """Whether rows are read whole and nothing more, as get_or_create's
        prepared and one-statement paths read them: no order, slice, column
        choice or loader option (filters aside)."""
        return not (
            self.order
            or self.limit is not None
            or self.offset
            or self.options
            or self.prefetches
            or self.only is not None
            or self.defer
        )

    # -- builders ---------------------------------------------------------------

    def annotate(
        self, named: Mapping[str, Aggregate | Combinable], *, alias: bool = False
    ) -> Query:
        """With the aggregates and expressions *named* computed per row
        (``annotate()``)."""
        self.refuse_if_combined("annotate()")
        fields = lookups.mapper_of(self.model).attrs
        taken = {name for name, *_ in (*self.annotations, *self.aliases)}
        added: list[Annotation] = []
        for name, agg in named.items():
            if not isinstance(agg, Aggregate | Combinable):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise TypeError(
                    "annotate() takes Count/Sum/Avg/Min/Max, F() expressions, "
                    f"Exists() and Subquery(), not {agg!r}"
                )
            if name in fields or name == "pk":
                raise ValueError(
                    f"The annotation {name!r} conflicts with a field on the model "
                    f"{self.model.__name__}."
                )
            if name in taken:
                raise ValueError(f"The annotation {name!r} is given twice.")
            if isinstance(agg, Aggregate):
                rel = agg.field.split(lookups.LOOKUP_SEP)[0]
                restrict = _joins.restriction(self, rel, f"annotate({name}={agg!r})")
                expression, read_from = agg.annotation(self.model, restrict)
            else:
                expression, read_from = agg.annotation(self.model)
            added.append((name, agg, expression, read_from))
            taken.add(name)
        if alias:
            return self.replace(aliases=(*self.aliases, *added))
        return self.replace(annotations=(*self.annotations, *added))

    def annotation_columns(self) -> dict[str, Any]:
        return {
            name: expression
            for name, _, expression, _ in (*self.annotations, *self.aliases)
        }

    def _annotation_condition(self, key: str, value: Any) -> ColumnElement[bool] | None:
        """``n__gt=1`` on the annotation ``n``, or None if *key* names none."""
        first, _, op = key.partition(lookups.LOOKUP_SEP)
        columns = self.annotation_columns()
        if first not in columns:
            return None
        op = op or "exact"
        if op not in lookups.OPERATORS:
            raise exceptions.FieldError(
                f"Unsupported lookup {op!r} on the annotation {first!r}.",
                model=self.model,
                name=key,
                valid=sorted(lookups.OPERATORS),
            )
        return lookups.OPERATORS[op](columns[first], resolve_operand(self.model, value))

    def filter(
        self, args: tuple[Q | Conditional, ...], lookup: Mapping[str, Any]
    ) -> Query:
        """Narrowed to rows matching every ``Q`` of *args* and *lookup*."""
        if not args and not lookup:
            return self
        self.refuse_if_combined("filter()")
        self.refuse_if_sliced("filter")
        if self.annotations or self.aliases:
            on_annotations: list[ColumnElement[bool]] = []
            rest: dict[str, Any] = {}
            for key, value in lookup.items():
                condition = self._annotation_condition(key, value)
                if condition is None:
                    rest[key] = value
                else:
                    on_annotations.append(condition)
            query = self.replace(where=(*self.where, *on_annotations))
            return query._filter_plain(args, rest) if (args or rest) else query
        return self._filter_plain(args, lookup)

    def _filter_plain(
        self, args: tuple[Q | Conditional, ...], lookup: Mapping[str, Any]
    ) -> Query:
        condition = Q(*args, **lookup)
        where = condition.resolve(self.model, same_row=True)
        if where is None:
            return self
        return self.replace(
            where=(*self.where, where),
            through=(*self.through, *_joins.crossed(self.model, condition)),
        )

    def exclude(
        self, args: tuple[Q | Conditional, ...], lookup: Mapping[str, Any]
    ) -> Query:
        """Without the rows matching all of *args* and *lookup* (Django's
        negation: a row whose condition is unknown stays)."""
        self.refuse_if_combined("exclude()")
        self.refuse_if_sliced("filter")
        where = Q(*args, **lookup).resolve(self.model)
        if where is None:
            return self
        return self.replace(where=(*self.where, negate(where)))

    def order_by(self, fields: tuple[OrderTerm | Combinable, ...]) -> Query:
        self.refuse_if_sliced("reorder")
        terms: list[OrderTerm] = []
        for field in fields:
            if isinstance(field, Combinable):
                field = field.asc()
            if isinstance(field, OrderBy):
                field.clauses(self.model)  # FieldError now, not at run time
            elif isinstance(field, str):  # pyright: ignore[reportUnnecessaryIsInstance]
                name = field.removeprefix("-")
                if name in self.annotation_columns():
                    pass
                elif _joins.crosses_to_many(self.model, name):
                    _joins.Joins(None, self.model).column(name, "order_by()")
                else:
                    lookups.field_column(self.model, name, "order_by()")
            else:
                raise TypeError(
                    f"order_by() takes field names or F() expressions, not {field!r}"
                )
            terms.append(field)
        return self.replace(order=tuple(terms))

    def reverse(self) -> Query:
        self.refuse_if_sliced("reverse")
        return self.replace(order=tuple(flip(f) for f in self.ordering()))

    def related(self, fields: tuple[str, ...], *, joined: bool) -> Query:
        """With loader options for *fields* (select_related when *joined*)."""
        self.refuse_if_combined("select_related()" if joined else "prefetch_related()")
        for field in fields:
            loader(self.model, field, joined=joined)  # FieldError now, not at await
        related = tuple((f, joined) for f in fields)
        return self.replace(options=(*self.options, *related))

    def locked(self, nowait: bool, skip_locked: bool, of: Sequence[str]) -> Query:
        """``select_for_update()``: reading with a row lock (names checked now)."""
        if isinstance(of, str):
            raise TypeError("select_for_update(of=...) takes a tuple of names.")
        self.refuse_if_combined("select_for_update()")
        query = self.replace(for_update=RowLock(nowait, skip_locked, tuple(of)))
        query.statement()  # names in of= checked now
        return query

    def prefetched(self, items: tuple[Any, ...]) -> Query:
        """``prefetch_related()``: names become loader options; Prefetch
        objects with a QuerySet or a to_attr are loaded after the rows
        (:mod:`._prefetch`)."""
        later = tuple(
            item.checked(self.model)
            for item in items
            if hasattr(item, "prefetch_through") and not item.plain
        )
        names = tuple(
            getattr(item, "prefetch_through", item)
            for item in items
            if not hasattr(item, "prefetch_through") or item.plain
        )
        query = self.related(names, joined=False) if names else self
        return query.replace(prefetches=(*self.prefetches, *later)) if later else query

    def with_only(self, fields: Iterable[str]) -> Query:
        self.refuse_if_combined("only()")
        return self.replace(only=frozenset(self.column_names(fields, "only()")))

    def with_defer(self, fields: tuple[str | None, ...]) -> Query:
        self.refuse_if_combined("defer()")
        if fields == (None,):
            return self.replace(defer=frozenset())
        if any(f is None for f in fields):
            raise TypeError("defer(None) clears deferrals and takes no other field.")
        names = self.column_names([f for f in fields if f is not None], "defer()")
        return self.replace(defer=self.defer | frozenset(names))

    def column_names(self, fields: Iterable[str], what: str) -> list[str]:
        names: list[str] = []
        for field in fields:
            if not isinstance(field, str):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise TypeError(f"{what} takes field names, not {field!r}")
            names.append(lookups.column_of(self.model, field, what).key)
        return names

    def sliced_by(self, key: slice) -> Query:
        """``qs[a:b]``: LIMIT / OFFSET; slices of slices compose."""
        offset, limit = window(self.offset, self.limit, key)
        return self.replace(offset=offset, limit=limit)

    # -- statements -------------------------------------------------------------

    def apply(self, stmt: Any, joins: _joins.Joins | None = None) -> Any:
        """*stmt* with this query's WHERE, ORDER BY, LIMIT and OFFSET. An
        order through a to-many relationship joins it (through *joins*, if
        given: the JOINs of the columns), a row per related row, as Django."""
        if joins is None and any(
            isinstance(term, str)
            and _joins.crosses_to_many(self.model, term.removeprefix("-"))
            for term in self.order
        ):
            joins = _joins.Joins(self, self.model, "order_by()")
        if self.where:
            stmt = stmt.where(and_(*self.where))
        if self.distinct_fields:
            stmt = distinct_on(
                stmt,
                [
                    lookups.field_column(self.model, name, "distinct()")
                    for name in self.distinct_fields
                ],
            )
        elif self.distinct:
            stmt = stmt.distinct()
        if self.order:
            stmt = stmt.order_by(
                *order_clauses(self.model, self.order, self.annotation_columns(), joins)
            )
        if self.limit is not None:
            stmt = stmt.limit(self.limit)
        if self.offset:
            stmt = stmt.offset(self.offset)
        return stmt if joins is None else joins.apply(stmt)

    def statement(self) -> Select[Any]:
        """The SELECT of the model's rows, with loader options and only()/defer()."""
        if self.combined is not None:
            order = order_clauses(self.model, self.order)
            return _compound.statement(self, None, order)
        stmt: Select[Any] = self.apply(select(self.model))
        if self.options:
            joined = {path for path, is_joined in self.options if is_joined}
            stmt = stmt.options(
                *(
                    loader(self.model, path, joined=is_joined, joined_paths=joined)
                    for path, is_joined in dict.fromkeys(self.options)
                )
            )
        columns = self._loaded_columns()
        if columns is not None:
            stmt = stmt.options(sqlalchemy.orm.load_only(*columns))
        for name, _, expression, _ in self.annotations:
            stmt = stmt.add_columns(expression.label(name))
        if self.for_update is not None:
            lock = self.for_update
            stmt = stmt.with_for_update(
                nowait=lock.nowait,
                skip_locked=lock.skip_locked,
                of=[self._lock_target(name) for name in lock.of] or None,
            )
        return stmt

    def _lock_target(self, name: str) -> Any:
        """``of=("self", "author")``: the model's table, or a related one."""
        if name == "self":
            return self.model
        prop = lookups.mapper_of(self.model).relationships.get(name)
        if prop is None:
            raise exceptions.FieldError(
                f"Invalid field name given in select_for_update(of=...) on "
                f"{self.model.__name__}: {name!r}. Only 'self' and relationships "
                "are allowed.",
                model=self.model,
                name=name,
                valid=[
                    "self",
                    *sorted(lookups.mapper_of(self.model).relationships.keys()),
                ],
            )
        return prop.mapper.class_

    def get_statement(self, lock: Lock = None) -> Select[Any]:
        """The SELECT of ``get()``: at most :data:`MAX_GET_RESULTS` rows,
        locked as *lock* says."""
        stmt = self.statement().limit(MAX_GET_RESULTS)
        if lock is not None:
            stmt = stmt.with_for_update(read=lock == "share")
        return stmt

    def _loaded_columns(self) -> list[Any] | None:
        """The column attributes only()/defer() leave loaded, or None for all."""
        if self.only is None and not self.defer:
            return None
        mapper = lookups.mapper_of(self.model)
        pk = {mapper.get_property_by_column(c).key for c in mapper.primary_key}
        names = list(mapper.column_attrs.keys())
        wanted = self.only if self.only is not None else set(names)
        return [
            getattr(self.model, name)
            for name in names
            if name in pk or (name in wanted and name not in self.defer)
        ]

    def aliased_statement(self, columns: Sequence[Any] | None) -> Select[Any]:
        """This query inside another (``Exists()``, ``Subquery()``), on an
        alias of the model so that the outer query never correlates it away:
        ``SELECT 1`` with the WHERE (*columns* None: no ordering or slice
        matters to EXISTS), or ``SELECT columns`` with ordering and slice."""
        alias = sqlalchemy.orm.aliased(self.model)
        adapter = ClauseAdapter(inspect(alias).selectable)
        if columns is None:
            one: Any = literal_column("1")  # pyright: ignore[reportUnknownVariableType]
            stmt: Select[Any] = select(one).select_from(alias)
            if self.where:
                stmt = stmt.where(adapter.traverse(and_(*self.where)))
            return stmt
        stmt = self.apply(select(*columns).select_from(self.model))
        adapted: Select[Any] = adapter.traverse(stmt)
        return adapted

    def count_statement(self) -> Select[Any]:
        # Django's count() drops the order (and a to-many order's extra rows)
        counted = self if self.sliced else self.replace(order=())
        return select(func.count()).select_from(counted.statement().subquery())

    def exists_statement(self) -> Select[Any]:
        return select(self.statement().exists())

    def value_columns(self, names: Sequence[str], what: str) -> list[Any]:
        """The columns of ``values(*names)``: fields, related fields, annotations."""
        annotated = self.annotation_columns()
        for name in names:
            if any(name == alias for alias, *_ in self.aliases):
                raise exceptions.FieldError(
                    f"Cannot select the {name!r} alias. Use annotate() to promote it.",
                    model=self.model,
                    name=name,
                )
        return [
            annotated[name].label(name)
            if name in annotated
            else _labelled(lookups.field_column(self.model, name, what), name)
            for name in names
        ]

    def columns_statement(self, names: Sequence[str], what: str) -> Select[Any]:
        if self.combined is not None:
            order = order_clauses(self.model, self.order)
            return _compound.statement(self, names, order)
        if any(_joins.crosses_to_many(self.model, name) for name in names):
            joins = _joins.Joins(self, self.model, what)
            labelled = [
                _joins.value_column(self, joins, name, what).label(name)
                for name in names
            ]
            joined: Select[Any] = self.apply(
                select(*labelled).select_from(self.model), joins
            )
            return joined
        columns = self.value_columns(names, what)
        stmt: Select[Any] = self.apply(select(*columns).select_from(self.model))
        return stmt

    def aggregate_statement(
        self, named: Mapping[str, Aggregate]
    ) -> tuple[Select[Any], list[Any]]:
        """``SELECT agg, ...`` over the matching rows, and how to convert each
        value (see :func:`._joins.aggregate_statement`)."""
        self.refuse_if_combined("aggregate()")
        return _joins.aggregate_statement(self, named)

    def update_statements(self, values: Mapping[str, Any]) -> list[Any]:
        """The UPDATE(s) of ``update(**values)``: one, or, where the values
        belong to several tables of a joined-inheritance model, one per table,
        each on the rows whose keys the QuerySet matches (the first one's
        row count is the answer)."""
        self.refuse_if_combined("update()")
        self.refuse_if_sliced("update")
        if not values:
            raise TypeError(f"{self.model.__name__}.objects.update() needs values.")
        columns = prep_values(self.model, lookups.update_values(self.model, values))
        resolved = {k: resolve_operand(self.model, v) for k, v in columns.items()}
        mapper = lookups.mapper_of(self.model)
        by_table: dict[Any, dict[str, Any]] = {}
        for key, value in resolved.items():
            table = mapper.column_attrs[key].columns[0].table
            by_table.setdefault(table, {})[key] = value
        if len(by_table) == 1 and mapper.local_table in by_table:
            stmt = update(self.model).values(**resolved)
            if self.where:
                stmt = stmt.where(and_(*self.where))
            return [stmt]
        pk = [
            getattr(self.model, mapper.get_property_by_column(c).key)
            for c in mapper.primary_key
        ]
        matched = select(*pk)
        if self.where:
            matched = matched.where(and_(*self.where))
        # Through a derived table: MySQL refuses a subquery on the table it updates.
        keys = matched.subquery()
        statements: list[Any] = []
        for owner in mapper.iterate_to_root():
            group = by_table.pop(owner.local_table, None)
            if group is None:
                continue
            owner_table: Any = owner.local_table
            # Each table's own key columns (a joined subclass's key is a foreign
            # key to its parent's, with the same values).
            owner_pk: list[Any] = list(owner_table.primary_key.columns)
            target: Any = tuple_(*owner_pk) if len(owner_pk) > 1 else owner_pk[0]
            ids = select(*keys.c)
            statements.append(
                update(owner.class_).where(target.in_(ids)).values(**group)
            )
        return statements

    def delete_statement(self) -> Any:
        self.refuse_if_combined("delete()")
        self.refuse_if_sliced("delete")
        stmt = delete(self.model)
        if self.where:
            stmt = stmt.where(and_(*self.where))
        return stmt


class RowLock:
    """The options of ``select_for_update()``."""

    __slots__ = ("nowait", "of", "skip_locked")

    def __init__(self, nowait: bool, skip_locked: bool, of: tuple[str, ...]) -> None:
        if nowait and skip_locked:
            raise ValueError("The nowait option cannot be used with skip_locked.")
        self.nowait = nowait
        self.skip_locked = skip_locked
        self.of = of


#: One annotate() entry: (name, aggregate or expression, its SQL, the model
#: whose column it reads, for converting the value).
Annotation = tuple[str, Aggregate | Combinable, Any, type[Any]]

#: One term of order_by(): ``"name"``, ``"-name"`` or ``F("name").desc()``.
OrderTerm = str | OrderBy


def _labelled(column: Any, name: str) -> Any:
    """A related field's subquery, named as asked (``author__name``)."""
    return column.label(name) if lookups.LOOKUP_SEP in name else column


def window(offset: int, limit: int | None, key: slice) -> tuple[int, int | None]:
    """The OFFSET and LIMIT of rows already at *offset* / *limit*, sliced by
    *key* (``qs[a:b]`` of ``qs[c:d]``)."""
    start, stop = key.start or 0, key.stop
    if key.step is not None:
        raise TypeError("QuerySet slices do not support a step.")
    if start < 0 or (stop is not None and stop < 0):
        raise ValueError("Negative indexing is not supported.")
    new_limit = None if stop is None else max(stop - start, 0)
    if limit is not None:
        room = max(limit - start, 0)
        new_limit = room if new_limit is None else min(new_limit, room)
    return offset + start, new_limit


def flip(field: OrderTerm) -> OrderTerm:
    if isinstance(field, OrderBy):
        return field.reversed()
    return field[1:] if field.startswith("-") else f"-{field}"


def order_clauses(
    model: type[Any],
    fields: Iterable[OrderTerm],
    annotations: Mapping[str, Any] | None = None,
    joins: _joins.Joins | None = None,
) -> list[ColumnElement[Any]]:
    clauses: list[ColumnElement[Any]] = []
    for field in fields:
        if isinstance(field, OrderBy):
            clauses.extend(field.clauses(model))
            continue
        name = field.removeprefix("-")
        if annotations and name in annotations:
            column = annotations[name]
        elif joins is not None and _joins.crosses_to_many(model, name):
            column = joins.column(name, "order_by()")[0]
        else:
            column = lookups.field_column(model, name, "order_by()")
        clauses.append(column.desc() if field.startswith("-") else column.asc())
    return clauses


def loader(
    model: type[Any],
    path: str,
    *,
    joined: bool,
    joined_paths: frozenset[str] | set[str] = frozenset(),
) -> Any:
    """Return the loader option for a ``select_related`` / ``prefetch_related`` path.

    A prefetch path that runs through a select_related one (``author`` and
    ``author__articles``) keeps the JOIN for the shared part.
    """
    what = "select_related()" if joined else "prefetch_related()"
    if not isinstance(path, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TypeError(f"{what} takes relationship names, not {path!r}")
    current = model
    option: Any | None = None
    parts = path.split(lookups.LOOKUP_SEP)
    for depth, part in enumerate(parts):
        mapper = lookups.mapper_of(current)
        prop = mapper.relationships.get(part)
        if prop is None or (joined and prop.uselist):
            valid = sorted(
                key
                for key, rel in mapper.relationships.items()
                if not (joined and rel.uselist)
            )
            hint = (
                f" {current.__name__}.{part} is one-to-many or many-to-many: use "
                "prefetch_related() for it."
                if prop is not None
                else ""
            )
            raise exceptions.FieldError(
                f"Invalid field name {part!r} in {what} on {model.__name__} "
                f"(path {path!r}). Choices are: {', '.join(valid) or '(none)'}.{hint}",
                model=model,
                name=part,
                valid=valid,
            )
        attr = getattr(current, part)
        prefix = lookups.LOOKUP_SEP.join(parts[: depth + 1])
        strategy = "joinedload" if joined or prefix in joined_paths else "selectinload"
        option = (
            getattr(sqlalchemy.orm, strategy)(attr)
            if option is None
            else getattr(option, strategy)(attr)
        )
        current = prop.mapper.class_
    assert option is not None
    return option

"""``Prefetch("books", queryset=Book.objects.filter(...), to_attr="long_books")``.

Django's Prefetch object: a ``prefetch_related()`` whose related rows come from
a QuerySet of your own (its filters, its order, its annotations, its own
``prefetch_related()``), optionally into another attribute. After the rows of
the outer query are loaded, in the same session, one SELECT per relationship
(in batches of :data:`BATCH` keys) loads the related rows of all of them:

* one-to-many (``books``): ``... WHERE books.author_id IN (...)``;
* many-to-many: joined through the secondary table, ``... WHERE
  secondary.item_id IN (...)``;
* many-to-one (``author``): ``... WHERE authors.id IN (...)``.

Without *to_attr* the relationship itself holds the result (loaded: reading it
needs no IO); with it, the attribute holds a list (the object, or None, for a
many-to-one), and the relationship is left as it was, as in Django.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from . import lookups
from ._query import Query
from .exceptions import FieldError, NotSupportedError

#: Keys per SELECT ... IN: far below every backend's bind-parameter limit.
BATCH: Final = 1000


class Prefetch:
    """One relationship to prefetch, from *queryset*, into *to_attr*."""

    __slots__ = ("prefetch_through", "queryset", "to_attr")

    def __init__(
        self, lookup: str, queryset: Any = None, to_attr: str | None = None
    ) -> None:
        if not isinstance(lookup, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"Prefetch() takes a relationship name, not {lookup!r}")
        if queryset is not None and not hasattr(queryset, "prefetch_related"):
            raise ValueError(
                "Prefetch querysets cannot use raw(), values(), and values_list(); "
                f"got {queryset!r}."
            )
        if to_attr is not None and not to_attr.isidentifier():
            raise ValueError(f"Prefetch(to_attr=...) must be a name, not {to_attr!r}")
        self.prefetch_through = lookup
        self.queryset = queryset
        self.to_attr = to_attr

    def __repr__(self) -> str:
        return f"Prefetch({self.prefetch_through!r}, to_attr={self.to_attr!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Prefetch) and (
            other.prefetch_through,
            other.queryset,
            other.to_attr,
        ) == (self.prefetch_through, self.queryset, self.to_attr)

    def __hash__(self) -> int:
        return hash(("Prefetch", self.prefetch_through, self.to_attr))

    @property
    def plain(self) -> bool:
        """Whether this is ``prefetch_related("name")`` said another way."""
        return self.queryset is None and self.to_attr is None

    def checked(self, model: type[Any]) -> Prefetch:
        """Self, after checking it against *model* (FieldError now, not at await)."""
        name = self.prefetch_through
        if lookups.LOOKUP_SEP in name:
            raise NotSupportedError(
                f"Prefetch({name!r}, ...): one relationship step; give the inner "
                "QuerySet its own prefetch_related() for the next."
            )
        mapper = lookups.mapper_of(model)
        prop = mapper.relationships.get(name)
        if prop is None:
            valid = sorted(mapper.relationships.keys())
            raise FieldError(
                f"Invalid field name {name!r} in Prefetch() on {model.__name__}. "
                f"Choices are: {', '.join(valid) or '(none)'}.",
                model=model,
                name=name,
                valid=valid,
            )
        target = prop.mapper.class_
        if self.queryset is not None:
            inner: Query = self.queryset._query
            if inner.model is not target:
                raise ValueError(
                    f"Prefetch({name!r}) needs a QuerySet of {target.__name__}, not "
                    f"of {inner.model.__name__}."
                )
            if inner.sliced or inner.combined is not None:
                raise NotSupportedError(
                    f"Prefetch({name!r}): a sliced or combined QuerySet is not "
                    "supported."
                )
        if self.to_attr is not None and self.to_attr in mapper.attrs:
            raise ValueError(
                f"to_attr={self.to_attr!r} conflicts with a field on the model "
                f"{model.__name__}."
            )
        return self


async def prefetch(
    session: AsyncSession, objs: Sequence[Any], prefetches: Sequence[Prefetch]
) -> None:
    """Load each of *prefetches* for *objs* (objects of one model), in *session*."""
    if not objs:
        return
    for one in prefetches:
        await _load(session, objs, one)


async def _load(session: AsyncSession, objs: Sequence[Any], one: Prefetch) -> None:
    mapper = lookups.mapper_of(objs[0].__class__)
    prop = mapper.relationships[one.prefetch_through]
    target = prop.mapper.class_
    inner: Query = one.queryset._query if one.queryset is not None else Query(target)
    direction = prop.direction.name
    if direction == "MANYTOONE":
        ((local, remote),) = prop.local_remote_pairs
        key_of = mapper.get_property_by_column(local).key
        key_column: Any = getattr(
            target, prop.mapper.get_property_by_column(remote).key
        )
        join: Any = None
    elif prop.secondary is not None:
        ((parent_column, secondary_parent),) = prop.synchronize_pairs
        pairs: Any = prop.secondary_synchronize_pairs
        ((child_column, secondary_child),) = pairs
        key_of = mapper.get_property_by_column(parent_column).key
        key_column = secondary_parent
        join = (prop.secondary, secondary_child == child_column)
    else:
        ((local, remote),) = prop.local_remote_pairs
        key_of = mapper.get_property_by_column(local).key
        key_column = getattr(target, prop.mapper.get_property_by_column(remote).key)
        join = None
    keys = list(
        dict.fromkeys(k for obj in objs if (k := getattr(obj, key_of)) is not None)
    )
    found: dict[Any, list[Any]] = {}
    for start in range(0, len(keys), BATCH):
        stmt = inner.statement().add_columns(key_column.label("_prefetch_key"))
        if join is not None:
            stmt = stmt.join(*join)
        stmt = stmt.where(key_column.in_(keys[start : start + BATCH]))
        children: list[Any] = []
        for row in (await session.execute(stmt)).all():
            child = row[0]
            for (name, agg, _, read_from), value in zip(
                inner.annotations, row[1:-1], strict=True
            ):
                setattr(child, name, agg.convert_annotation(value, read_from))
            found.setdefault(row[-1], []).append(child)
            children.append(child)
        if inner.prefetches:
            await prefetch(session, list(dict.fromkeys(children)), inner.prefetches)
    for obj in objs:
        related = found.get(getattr(obj, key_of), [])
        loaded: Any = related if prop.uselist else (related[0] if related else None)
        if one.to_attr is not None:
            setattr(obj, one.to_attr, loaded)
        else:
            set_committed_value(obj, prop.key, loaded)

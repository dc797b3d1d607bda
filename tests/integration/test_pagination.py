"""Keyset pagination (SPEC §4): ``await qs.order_by(...).paginate(after, size)``
on every backend: pages walk the whole ordering once, stay right while rows
are inserted and deleted between pages, and bad cursors are refused."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from sqlalchemy_objects import Database, F, FieldError, Page
from tests.conftest import StatementLog
from tests.models import Article, Event, Level

T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


async def make_events(n: int) -> list[Event]:
    """*n* events; `at` repeats every 4 rows (ties), kinds and scores vary."""
    events = [
        Event(
            at=T0 + dt.timedelta(minutes=i // 4),
            kind="abc"[i % 3],
            score=Decimal(i % 5) / 4,
            level=Level.HIGH if i % 2 else Level.LOW,
        )
        for i in range(n)
    ]
    return await Event.objects.bulk_create(events)


def sort_key(order: tuple[str, ...]) -> Any:
    """The Python sort of the same ordering, pk last (for reference lists)."""

    def key(e: Event) -> tuple[Any, ...]:
        parts: list[Any] = []
        for term in (*order, "id"):
            name = term.removeprefix("-")
            value = getattr(e, name)
            value = value.value if isinstance(value, Level) else value
            parts.append(Reverse(value) if term.startswith("-") else value)
        return tuple(parts)

    return key


class Reverse:
    """Sorts in the opposite order of its value (for descending columns)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: Reverse) -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reverse) and other.value == self.value

    __hash__ = None  # type: ignore[assignment]


async def walk(qs: Any, size: int) -> list[Page[Event]]:
    pages: list[Page[Event]] = []
    cursor = None
    while True:
        page: Page[Event] = await qs.paginate(after=cursor, size=size)
        pages.append(page)
        cursor = page.next
        if cursor is None:
            return pages
        assert len(pages) < 100


async def test_pages_walk_the_whole_table_once_by_primary_key(
    db: Database, sql: StatementLog
) -> None:
    made = await make_events(23)
    sql.statements.clear()
    pages = await walk(Event.objects, 5)
    assert [len(p.items) for p in pages] == [5, 5, 5, 5, 3]
    assert [e.id for p in pages for e in p.items] == sorted(e.id for e in made)
    assert all(isinstance(p.next, str) for p in pages[:-1])
    assert pages[-1].next is None
    pages_sql = [s for s in sql.statements if s.lstrip().upper().startswith("SELECT")]
    assert len(pages_sql) == 5  # one SELECT per page
    # Pages after the first start from the cursor's key, not from an offset.
    assert all("events.id >" in s for s in pages_sql[1:])
    assert "events.id >" not in pages_sql[0]


async def test_an_exactly_full_last_page_has_no_next(db: Database) -> None:
    await make_events(10)
    first = await Event.objects.paginate(size=5)
    second = await Event.objects.paginate(after=first.next, size=5)
    assert (len(first.items), len(second.items), second.next) == (5, 5, None)
    assert await Event.objects.filter(kind="none").paginate() == Page([], None)


@pytest.mark.parametrize(
    "order",
    [
        ("at",),
        ("-at",),
        ("-at", "kind"),  # mixed directions: the expanded OR condition
        ("kind", "-score", "at"),
        ("score",),  # Decimal values in the cursor
        ("level", "-id"),  # Enum values, and the primary key ordered by hand
    ],
    ids=lambda o: ",".join(o),
)
async def test_pages_follow_any_ordering_with_the_primary_key_as_tie_breaker(
    db: Database, backend: str, order: tuple[str, ...]
) -> None:
    made = await make_events(30)
    qs = Event.objects.filter(id__gt=made[2].id).order_by(*order)
    if order == ("level", "-id"):
        if backend == "mariadb":
            with pytest.raises(
                FieldError, match=r"Event\.level on MySQL/MariaDB: an ENUM"
            ):
                await qs.paginate()
            return
        # A native ENUM (PostgreSQL) sorts by declaration order; SQLite stores
        # the names as text.
        rank: Any = {"postgresql": list(Level).index, "sqlite": lambda m: m.name}[
            backend
        ]
        expected = [
            e.id for e in sorted(made[3:], key=lambda e: (rank(e.level), -e.id))
        ]
    else:
        expected = [e.id for e in sorted(made[3:], key=sort_key(order))]
    pages = await walk(qs, 4)
    got = [e.id for p in pages for e in p.items]
    assert got == expected
    assert len(set(got)) == len(got) == 27


async def test_rows_inserted_or_deleted_between_pages_never_repeat_or_skip_a_row(
    db: Database,
) -> None:
    """Offsets shift when a row before them changes; a cursor does not: the
    next page starts right after the last row seen, whatever happened
    before it."""
    made = await make_events(12)
    qs = Event.objects.order_by("at")
    first = await qs.paginate(size=5)
    last_seen = first.items[-1]
    # Before the cursor: a new row and a deleted one (an OFFSET would now
    # repeat or skip a row). After it: a new row, which the walk must reach.
    await Event.objects.create(
        at=T0 - dt.timedelta(days=1), kind="a", score=Decimal(0), level=Level.LOW
    )
    await Event.objects.filter(id=first.items[0].id).delete()
    late = await Event.objects.create(
        at=T0 + dt.timedelta(days=1), kind="z", score=Decimal(1), level=Level.LOW
    )
    rest = await walk_from(qs, first.next, 5)
    seen = [e.id for e in first.items] + [e.id for e in rest]
    assert len(seen) == len(set(seen))
    after_cursor = [
        e.id
        for e in sorted(await Event.objects.all(), key=sort_key(("at",)))
        if (e.at, e.id) > (last_seen.at, last_seen.id)
    ]
    assert [e.id for e in rest] == after_cursor
    assert late.id in after_cursor
    assert set(seen) >= {e.id for e in made[1:]}


async def walk_from(qs: Any, cursor: str | None, size: int) -> list[Event]:
    rows: list[Event] = []
    while cursor is not None:
        page = await qs.paginate(after=cursor, size=size)
        rows.extend(page.items)
        cursor = page.next
    return rows


async def test_bad_cursors_and_orderings_are_refused(db: Database) -> None:
    await make_events(6)
    by_at = await Event.objects.order_by("at").paginate(size=2)
    assert by_at.next is not None
    with pytest.raises(ValueError, match="not a cursor of a Event page"):
        await Event.objects.paginate(after="not-a-cursor")
    with pytest.raises(ValueError, match="not a cursor of a Event page"):
        await Event.objects.paginate(after=by_at.next[:-3] + "xyz")
    with pytest.raises(
        ValueError,
        match=r"made for Event pages ordered by \['at', 'id'\].*\['kind', 'id'\]",
    ):
        await Event.objects.order_by("kind").paginate(after=by_at.next)
    with pytest.raises(TypeError, match="takes a cursor string"):
        await Event.objects.paginate(after=5)  # type: ignore[arg-type]
    for size in (0, -1, True, "5", None):
        with pytest.raises(ValueError, match="size must be a positive integer"):
            await Event.objects.paginate(size=size)  # type: ignore[arg-type]
    with pytest.raises(FieldError, match=r"Event\.note: the column is nullable"):
        await Event.objects.order_by("note").paginate()
    with pytest.raises(FieldError, match="'author__username' across a relationship"):
        await Article.objects.order_by("author__username").paginate()
    with pytest.raises(TypeError, match="orders by field names"):
        await Event.objects.order_by(F("at").desc()).paginate()
    with pytest.raises(TypeError, match="once a slice has been taken"):
        await Event.objects.all()[:3].paginate()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_page_is_an_index_range_scan(db: Database, sql: StatementLog) -> None:
    """SQLite's plan for page two: a SEARCH on the (at, id) index from the
    cursor, not a scan and sort of the table."""
    await make_events(50)
    first = await Event.objects.order_by("at").paginate(size=10)
    sql.statements.clear()
    await Event.objects.order_by("at").paginate(after=first.next, size=10)
    (statement,) = [s for s in sql.statements if s.startswith("SELECT")]
    assert "(events.at, events.id) > (?, ?)" in statement
    last = first.items[-1]
    async with db.engine.connect() as conn:
        raw = await conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {statement}",
            (last.at.isoformat(sep=" "), last.id, 11, 0),
        )
        plan = " ".join(str(row[-1]) for row in raw)
    assert "USING INDEX ix_events_at_id" in plan, plan
    assert "TEMP B-TREE" not in plan, plan

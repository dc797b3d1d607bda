"""``bulk_get_or_create(lookups, defaults=None)`` (SPEC §4) on every backend:
input order, repeated keys, defaults, composite keys, batches, sessions,
bad input, and races between tasks and between OS processes (one row and one
created=True per key across every caller, no exception)."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from sqlalchemy_objects import Database, FieldError
from tests.concurrency import worker
from tests.conftest import StatementLog
from tests.models import Counter, Note, Reading, Stamp, Tag, User


async def test_existing_and_new_keys_in_input_order(
    db: Database, sql: StatementLog, backend: str
) -> None:
    existing = [
        await Tag.objects.create(name=f"t{i}", label="old") for i in range(0, 10, 2)
    ]
    sql.statements.clear()
    names = [f"t{i}" for i in range(10)] + ["t3", "t0"]  # two repeats at the end
    results = await Tag.objects.bulk_get_or_create(
        [{"name": n} for n in names], defaults={"label": "new"}
    )
    sent = list(sql.statements)
    assert [obj.name for obj, _ in results] == names
    assert [created for _, created in results] == [i % 2 == 1 for i in range(10)] + [
        False,
        False,
    ]
    by_name = {obj.name: obj for obj, _ in results}
    assert results[10][0] is by_name["t3"]  # a repeated key: the same object
    assert {o.id for o in existing} == {by_name[f"t{i}"].id for i in range(0, 10, 2)}
    assert all(by_name[f"t{i}"].label == "new" for i in range(1, 10, 2))
    assert all(by_name[f"t{i}"].label == "old" for i in range(0, 10, 2))
    assert await Tag.objects.count() == 10
    writes = [s for s in sent if s.lstrip().upper().startswith(("SELECT", "INSERT"))]
    # A SELECT, one INSERT of the five new rows returning whole rows: the new
    # objects come from it, no SELECT after it.
    assert len(writes) == 2, writes
    assert "label" in writes[1].split("RETURNING")[1]
    if backend == "postgresql":  # one array parameter per column
        assert "unnest(" in writes[1], writes[1]


async def test_new_rows_carry_every_default_and_none_is_null(db: Database) -> None:
    """The new objects come from the INSERT's RETURNING: a Python-side
    default, a server default and the given values are what the table holds;
    None stores NULL, as in Django, not the column's default (PostgreSQL
    sends such a batch row by row, not as arrays)."""
    seen = dt.datetime(2026, 12, 7, 18, 0)
    results = await Counter.objects.bulk_get_or_create(
        [{"name": "a"}, {"name": "b"}],
        defaults={
            "seen": seen,
            "day": "2026-12-07",
            "active": True,
            "ratio": "1.50",
        },
    )
    nulls = await Counter.objects.bulk_get_or_create(
        [{"name": "c"}], defaults={"count": None, "level": None}
    )
    assert [c for _, c in results + nulls] == [True, True, True]
    stored = {c.name: c for c in await Counter.objects.all()}
    for obj, _ in results:
        row = stored[obj.name]
        assert (obj.id, obj.count, obj.level) == (row.id, 2, 3)
        assert (obj.seen, obj.day, obj.active) == (seen, dt.date(2026, 12, 7), True)
        assert obj.ratio == Decimal("1.50")
        assert (row.seen, row.day, row.ratio) == (seen, obj.day, obj.ratio)
    ((c, _),) = nulls
    assert (c.count, c.level) == (None, None)
    assert (stored["c"].count, stored["c"].level) == (None, None)


async def test_a_callable_default_of_the_model_is_called_per_row(db: Database) -> None:
    """A column whose default is a Python callable: PostgreSQL's array INSERT
    cannot run it, so the batch goes row by row and each row gets its own
    value."""
    results = await Stamp.objects.bulk_get_or_create(
        [{"name": f"s{i}"} for i in range(3)]
    )
    tokens = [obj.token for obj, _ in results]
    assert len(set(tokens)) == 3
    assert all(tokens)
    assert sorted(await Stamp.objects.values_list("token", flat=True)) == sorted(tokens)


async def test_callable_defaults_and_a_composite_key(db: Database) -> None:
    day = dt.date(2026, 12, 1)
    await Reading.objects.create(sensor="a", day=day, value=-1)
    lookups = [
        {"sensor": s, "day": day + dt.timedelta(days=d)} for s in "ab" for d in range(3)
    ]
    results = await Reading.objects.bulk_get_or_create(
        lookups,
        defaults=lambda lookup: {"value": ord(lookup["sensor"]) + lookup["day"].day},
    )
    assert [(o.sensor, o.day, created) for o, created in results] == [
        (lk["sensor"], lk["day"], not (lk["sensor"] == "a" and lk["day"] == day))
        for lk in lookups
    ]
    assert results[0][0].value == -1  # found, defaults not applied
    assert results[1][0].value == ord("a") + 2
    assert await Reading.objects.count() == 6
    assert await Reading.objects.bulk_get_or_create([]) == []


async def test_thousands_of_keys_go_in_batches(db: Database, sql: StatementLog) -> None:
    await Tag.objects.bulk_create([Tag(name=f"k{i}") for i in range(0, 2500, 2)])
    sql.statements.clear()
    results = await Tag.objects.bulk_get_or_create(
        {"name": f"k{i}"} for i in range(2500)
    )
    assert sum(created for _, created in results) == 1250
    assert [o.name for o, _ in results] == [f"k{i}" for i in range(2500)]
    assert await Tag.objects.count() == 2500
    inserts = [s for s in sql.statements if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 3  # batches of 1,000 keys


async def test_inside_a_session_a_batch_is_a_savepoint(db: Database) -> None:
    await Tag.objects.create(name="there")
    async with db.session():
        await Note.objects.create(text="the caller's own write")
        results = await Tag.objects.bulk_get_or_create(
            [{"name": "there"}, {"name": "new"}]
        )
        assert [c for _, c in results] == [False, True]
        assert await Tag.objects.count() == 2  # the session sees its rows
    assert await Note.objects.count() == 1
    assert await Tag.objects.filter(name="new").exists()

    async def fails_after_the_batch() -> None:
        async with db.session():
            await Tag.objects.bulk_get_or_create([{"name": "rolled-back"}])
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await fails_after_the_batch()
    assert not await Tag.objects.filter(name="rolled-back").exists()


async def test_another_unique_key_falls_back_to_get_or_create_per_key(
    db: Database,
) -> None:
    """Two new users given the same nickname (unique): the batch INSERT fails,
    each key then runs as get_or_create would, and the second raises the
    IntegrityError get_or_create raises."""
    with pytest.raises(IntegrityError):
        await User.objects.bulk_get_or_create(
            [{"username": "a"}, {"username": "b"}], defaults={"nickname": "same"}
        )
    assert await User.objects.values_list("username", flat=True) == ["a"]


async def test_bad_input_is_refused_before_any_sql(
    db: Database, sql: StatementLog
) -> None:
    sql.statements.clear()
    with pytest.raises(FieldError, match=r"one unique key; \['email'\] is not one"):
        await User.objects.bulk_get_or_create([{"email": "x"}])
    with pytest.raises(FieldError, match=r"\['sensor'\] is not one"):
        await Reading.objects.bulk_get_or_create([{"sensor": "a"}])
    with pytest.raises(ValueError, match="every lookup must name the same fields"):
        await Tag.objects.bulk_get_or_create([{"name": "a"}, {"code": "b"}])
    with pytest.raises(ValueError, match="empty lookup"):
        await Tag.objects.bulk_get_or_create([{}])
    with pytest.raises(FieldError, match="colour"):
        await Tag.objects.bulk_get_or_create([{"name": "a"}], defaults={"colour": 1})
    with pytest.raises(TypeError, match="iterable of lookup dicts"):
        await Tag.objects.bulk_get_or_create(["a"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="expected a number"):
        await Tag.objects.bulk_get_or_create([{"id": "abc"}])
    assert sql.statements == []


@pytest.mark.parametrize("backend", ["mariadb"])
async def test_mariadb_ignore_never_stores_a_changed_value(db: Database) -> None:
    """INSERT IGNORE would truncate a too-long value with a warning; the
    warning is caught and nothing of the batch is kept."""
    with pytest.raises(ValueError, match="would have stored a value it changed"):
        await Tag.objects.bulk_get_or_create([{"name": "ok"}, {"name": "x" * 100}])
    assert await Tag.objects.count() == 0


async def test_tasks_racing_with_overlapping_batches(db: Database) -> None:
    """8 tasks, each asking for 60 keys of which most overlap the others'."""
    barrier = asyncio.Barrier(8)

    async def caller(n: int) -> list[tuple[Any, bool]]:
        keys = [{"name": f"r{(n * 7 + i) % 90}"} for i in range(60)]
        await barrier.wait()
        return await Tag.objects.bulk_get_or_create(keys)

    results = await asyncio.gather(*(caller(n) for n in range(8)))
    created: dict[str, int] = {}
    ids: dict[str, set[int]] = {}
    for result in results:
        for obj, was_created in result:
            created[obj.name] = created.get(obj.name, 0) + was_created
            ids.setdefault(obj.name, set()).add(obj.id)
    assert set(created) == {f"r{i}" for i in range(90)}
    assert set(created.values()) == {1}  # one created=True per key, all callers
    assert all(len(v) == 1 for v in ids.values())
    assert await Tag.objects.count() == 90


def test_processes_racing_with_overlapping_batches(
    backend: str, tmp_path: Path
) -> None:
    url = worker.prepared_url(backend, tmp_path)
    reports = worker.run_in_processes(
        4, worker.run_bulk, lambda p, barrier, out: (url, p, barrier, out)
    )
    errors = [e for report in reports for e in report["errors"]]
    assert errors == []
    created: dict[str, int] = {}
    for report in reports:
        for name, was_created in report["created"]:
            created[name] = created.get(name, 0) + was_created
    assert len(created) == worker.BULK_KEYS
    assert set(created.values()) == {1}

    async def count() -> int:
        db = Database(url)
        try:
            return await Tag.objects.using(db).count()
        finally:
            await db.dispose()

    assert asyncio.run(count()) == worker.BULK_KEYS


async def test_keys_that_differ_only_in_case(db: Database, backend: str) -> None:
    """PostgreSQL and SQLite compare text exactly: two rows. MariaDB's
    default collation does not: one row, created once, the same object."""
    results = await Tag.objects.bulk_get_or_create([{"name": "Case"}, {"name": "case"}])
    if backend == "mariadb":
        assert [c for _, c in results] == [True, False]
        assert results[0][0].id == results[1][0].id
        assert await Tag.objects.count() == 1
    else:
        assert [(o.name, c) for o, c in results] == [("Case", True), ("case", True)]
        assert await Tag.objects.count() == 2

"""``db.run_in_transaction(work, retries=3)`` (SPEC §6) on every backend:
aborted transactions (serialization failures, deadlocks, get_or_create races
a snapshot hides) run again until they commit; the caller's own errors never
do. Counted from an independent connection (``Database(db.url)``)."""

from __future__ import annotations

import asyncio
from collections import Counter as Tally

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sqlalchemy_objects import Database, TransactionManagementError
from tests.models import Article, Counter, Note, Tag

#: The strictest level each backend has (SQLite transactions are serializable).
STRICT = {"postgresql": "SERIALIZABLE", "mariadb": "SERIALIZABLE", "sqlite": None}


async def independent_count(db: Database, model: type, **lookup: object) -> int:
    other = Database(db.url)
    try:
        return await model.objects.using(other).filter(**lookup).count()  # type: ignore[attr-defined, no-any-return]
    finally:
        await other.dispose()


async def test_concurrent_read_modify_write_at_serializable_loses_nothing(
    db: Database, backend: str
) -> None:
    """16 tasks read a counter and write it back plus one: at SERIALIZABLE
    the server aborts all but one of each overlapping group, and the reruns
    bring the count to exactly 16, with no exception."""
    await Counter.objects.create(name="hits", count=0)
    runs: Tally[int] = Tally()

    async def increment(caller: int) -> int:
        async def work(session: AsyncSession) -> int:
            runs[caller] += 1
            counter = await Counter.objects.get(name="hits")
            await asyncio.sleep(0.002)  # widen the window: the reads overlap
            assert counter.count is not None
            new = counter.count + 1
            await Counter.objects.filter(id=counter.id).update(count=new)
            return new

        return await db.run_in_transaction(
            work, retries=10, isolation_level=STRICT[backend]
        )

    values = await asyncio.gather(*(increment(i) for i in range(16)))
    assert sorted(values) == list(range(1, 17))  # each caller saw its own increment
    other = Database(db.url)
    try:
        final = await Counter.objects.using(other).get(name="hits")
    finally:
        await other.dispose()
    assert final.count == 16
    assert sum(runs.values()) >= 16


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_get_or_create_race_a_snapshot_hides_runs_the_transaction_again(
    db: Database,
) -> None:
    """REPEATABLE READ, 16 callers, each writing a side row and then
    get_or_create on one new key: the losers' retried get cannot see the
    winner in their snapshot, so their transaction runs again. One row, one
    created=True, every side row committed exactly once, no exception."""
    runs: Tally[int] = Tally()

    async def caller(i: int) -> bool:
        async def work(session: AsyncSession) -> bool:
            runs[i] += 1
            await Note.objects.create(text=f"side-{i}")
            await asyncio.sleep(0.001)
            _, created = await Tag.objects.get_or_create(name="contended")
            return created

        return await db.run_in_transaction(
            work, isolation_level="REPEATABLE READ", retries=10
        )

    created = await asyncio.gather(*(caller(i) for i in range(16)))
    assert sum(created) == 1
    assert await independent_count(db, Tag, name="contended") == 1
    for i in range(16):
        assert await independent_count(db, Note, text=f"side-{i}") == 1
    assert sum(runs.values()) > 16  # the losers did run again


# MariaDB's locking re-read and SQLite's single writer always see the winner.
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_the_snapshot_error_outside_points_to_run_in_transaction(
    db: Database,
) -> None:
    await Tag.objects.create(name="seen-late")
    async with db.session() as session:
        await session.connection(
            execution_options={"isolation_level": "REPEATABLE READ"}
        )
        await session.execute(text("SELECT 1"))  # the snapshot starts here
        other = Database(db.url)
        try:
            await Tag.objects.using(other).filter(name="seen-late").delete()
            await Tag.objects.using(other).create(name="late")
        finally:
            await other.dispose()
        with pytest.raises(IntegrityError) as caught:
            await Tag.objects.get_or_create(name="late")
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "REPEATABLE READ" in notes
    assert "db.run_in_transaction(work)" in notes


def failure_sql(backend: str) -> str:
    """A statement the server answers with a serialization failure."""
    if backend == "postgresql":
        return "DO $$ BEGIN RAISE EXCEPTION 'forced' USING ERRCODE = '40001'; END $$"
    return "SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'forced'"


# SQLite never aborts a transaction this way.
@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
async def test_reruns_are_bounded_and_the_last_error_says_how_many(
    db: Database, backend: str
) -> None:
    calls = 0

    async def always(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        await Note.objects.create(text=f"try-{calls}")
        await session.execute(text(failure_sql(backend)))

    with pytest.raises(DBAPIError) as caught:
        await db.run_in_transaction(always, retries=2)
    assert calls == 3
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "ran the work 3 time(s) (retries=2)" in notes
    assert await independent_count(db, Note) == 0  # every attempt rolled back

    calls = 0

    async def once(session: AsyncSession) -> str:
        nonlocal calls
        calls += 1
        await Note.objects.create(text=f"attempt-{calls}")
        if calls == 1:
            await session.execute(text(failure_sql(backend)))
        return "done"

    assert await db.run_in_transaction(once) == "done"
    assert calls == 2
    assert await Note.objects.values_list("text", flat=True) == ["attempt-2"]


async def test_the_callers_own_errors_are_never_rerun(db: Database) -> None:
    calls = 0

    async def wrong(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        await Note.objects.create(text="kept?")
        raise ValueError("mine")

    with pytest.raises(ValueError, match="mine"):
        await db.run_in_transaction(wrong)
    assert calls == 1

    async def dangling(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        await Article.objects.create(title="x", author_id=424242)  # no such user

    calls = 0
    with pytest.raises(IntegrityError):  # SQLite too: foreign keys are enforced
        await db.run_in_transaction(dangling)
    assert calls == 1
    assert await Note.objects.filter(text="kept?").count() == 0


async def test_refused_inside_a_session_and_bad_retries(db: Database) -> None:
    async def work(session: AsyncSession) -> int:
        return 7

    async with db.session():
        with pytest.raises(
            TransactionManagementError, match="cannot run inside a session"
        ):
            await db.run_in_transaction(work)
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="retries must be an integer >= 0"):
            await db.run_in_transaction(work, retries=bad)  # type: ignore[arg-type]
    assert await db.run_in_transaction(work, retries=0) == 7

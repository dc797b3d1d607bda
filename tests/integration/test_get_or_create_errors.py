"""What get_or_create does when its INSERT fails (SPEC §3): race, conflict, other errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError, IntegrityError

from sqlalchemy_objects import Database
from tests.conftest import SERVER_BACKENDS, StatementLog
from tests.models import Article, Note, User


async def commit_competitor(db: Database, username: str) -> None:
    """Commit a users row from another connection, as a concurrent winner would."""
    other = Database(db.url)
    try:
        async with other.engine.begin() as conn:
            await conn.execute(
                insert(User).values(username=username, email="winner", age=0)
            )
    finally:
        await other.dispose()


@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
async def test_lost_race_keeps_callers_earlier_writes(
    db: Database, sql: StatementLog
) -> None:
    """A competitor commits the key between our get and our INSERT, inside the caller's
    transaction: we return the winner's row with created=False, the caller's earlier
    writes survive and the session stays usable.

    (SQLite is not a parameter: its single write lock, taken by the caller's earlier
    write, makes this interleaving impossible there; the race tests cover SQLite.)
    """

    async def winner_commits_first() -> str:
        await commit_competitor(
            db, "ann"
        )  # runs after our get missed, before our INSERT
        return "loser"

    async with db.session():
        await Note.objects.create(text="earlier write")
        user, created = await User.objects.get_or_create(
            username="ann", defaults={"email": winner_commits_first}
        )
        assert sql.selects_on("users") == 2  # the get and exactly one retried get
        assert created is False
        assert user.email == "winner"
        await Note.objects.create(text="later write")  # the session is still usable
    assert sorted(n.text for n in await Note.objects.all()) == [
        "earlier write",
        "later write",
    ]
    assert await User.objects.count() == 1
    assert sql.count(lambda s: "SAVEPOINT" in s.upper()) >= 2


@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
async def test_lost_race_in_autocommit_mode(db: Database, sql: StatementLog) -> None:
    """Outside a session the loser re-reads in a fresh transaction and finds the winner."""

    async def winner_commits_first() -> str:
        await commit_competitor(db, "ann")
        return "loser"

    user, created = await User.objects.get_or_create(
        username="ann", defaults={"email": winner_commits_first}
    )
    assert (created, user.email) == (False, "winner")
    assert sql.selects_on("users") == 2


async def test_conflict_on_another_unique_column_is_reraised(
    db: Database, sql: StatementLog
) -> None:
    """A unique violation that is not our lookup: one retried get finds nothing, so the
    original IntegrityError is re-raised; the caller's session stays usable."""
    await User.objects.create(username="ann", nickname="taken")
    sql.statements.clear()
    async with db.session():
        await Note.objects.create(text="kept")
        with pytest.raises(IntegrityError) as info:
            await User.objects.get_or_create(
                username="bob", defaults={"nickname": "taken"}
            )
        assert sql.selects_on("users") == 2
        await Note.objects.create(text="also kept")
    assert not getattr(
        info.value, "__notes__", []
    )  # READ COMMITTED: a real conflict, no note
    assert await Note.objects.count() == 2
    assert not await User.objects.filter(username="bob").exists()


async def test_not_null_violation_is_not_retried(
    db: Database, sql: StatementLog
) -> None:
    """A NOT NULL violation is not a race: re-raised at once, with no retried get,
    and the caller's transaction survives it."""
    async with db.session():
        await User.objects.create(username="kept")
        with pytest.raises(IntegrityError):
            await Note.objects.get_or_create(id=5, defaults={"text": None})
        assert sql.selects_on("notes") == 1
    assert await User.objects.count() == 1


async def test_foreign_key_violation_is_not_retried(
    db: Database, sql: StatementLog
) -> None:
    """A foreign-key violation is re-raised unchanged, with no retried get."""
    with pytest.raises(IntegrityError):
        await Article.objects.get_or_create(
            title="orphan", defaults={"author_id": 999_999}
        )
    assert sql.selects_on("articles") == 1
    assert await Article.objects.count() == 0


async def test_check_violation_is_not_retried(db: Database, sql: StatementLog) -> None:
    """A CHECK violation is re-raised unchanged, with no retried get.

    (MariaDB reports it as error 4025, which its driver classes as OperationalError.)
    """
    with pytest.raises(DBAPIError):
        await User.objects.get_or_create(username="ann", defaults={"age": -1})
    assert sql.selects_on("users") == 1


async def test_callers_own_flush_error_is_not_taken_for_a_race(
    db: Database, sql: StatementLog
) -> None:
    """Pending objects of the caller are flushed before our SELECT and savepoint
    (autoflush): their error is raised as theirs, before any statement of ours."""
    async with db.session() as session:
        session.add(Note(text=None))
        with pytest.raises(IntegrityError):
            await User.objects.get_or_create(username="ann")
        await session.rollback()
    assert sql.selects_on("users") == 0
    assert sql.count(lambda s: s.lstrip().upper().startswith("INSERT INTO USERS")) == 0


@pytest.mark.postgresql
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_repeatable_read_lost_race_carries_a_note(
    backend: str, tmp_path: Path
) -> None:
    """On PostgreSQL under REPEATABLE READ the retried get cannot see a row committed
    after the snapshot: the original IntegrityError is re-raised with a note to retry
    the whole transaction."""
    from tests.conftest import open_database

    db = await open_database(backend, tmp_path, isolation_level="REPEATABLE READ")
    try:

        async def winner_commits_first() -> str:
            await commit_competitor(db, "ann")
            return "loser"

        with pytest.raises(IntegrityError) as info:  # noqa: PT012
            async with db.session():
                await Note.objects.create(text="snapshot taken")
                assert await Note.objects.count() == 1  # the snapshot starts here
                await User.objects.get_or_create(
                    username="ann", defaults={"email": winner_commits_first}
                )
        notes = getattr(info.value, "__notes__", [])
        assert any(
            "REPEATABLE READ" in n and "Retry the whole transaction" in n for n in notes
        ), notes
        # Outside the transaction the same call is race-proof: it finds the winner.
        user, created = await User.objects.get_or_create(username="ann")
        assert (created, user.email) == (False, "winner")
    finally:
        await db.drop_all()
        await db.dispose()


@pytest.mark.mariadb
@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
async def test_mariadb_repeatable_read_lost_race_finds_the_winner(
    backend: str, tmp_path: Path
) -> None:
    """On MySQL/MariaDB the retried get is a locking read, which InnoDB answers from
    the latest committed data: under REPEATABLE READ the loser finds the winner."""
    from tests.conftest import open_database

    db = await open_database(backend, tmp_path, isolation_level="REPEATABLE READ")
    try:

        async def winner_commits_first() -> str:
            await commit_competitor(db, "ann")
            return "loser"

        async with db.session():
            await Note.objects.create(text="snapshot taken")
            assert await Note.objects.count() == 1  # the snapshot starts here
            user, created = await User.objects.get_or_create(
                username="ann", defaults={"email": winner_commits_first}
            )
            assert (created, user.email) == (False, "winner")
        assert await Note.objects.count() == 1
    finally:
        await db.drop_all()
        await db.dispose()

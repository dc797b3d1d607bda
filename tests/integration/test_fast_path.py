"""get_or_create's one-statement miss path (PostgreSQL and SQLite, autocommit): taken only
where it cannot behave differently, and then indistinguishable from the ORM
path. `make test` also runs the get_or_create suites with the path off
(SQLALCHEMY_OBJECTS_FAST_PATH=0)."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, func, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sqlalchemy_objects import Database, FieldError, _cursor, _on_conflict, _rows
from tests.conftest import StatementLog
from tests.models import Article, Counter, Level, Setting, Tag, User
from tests.reliability.test_killed_connections import kill, track_backend_ids


def one_statement_inserts(sql: StatementLog) -> list[str]:
    """The INSERTs sent outside a transaction: PostgreSQL's ``ON CONFLICT DO
    NOTHING``; on MariaDB a plain INSERT not right after a BEGIN or SAVEPOINT
    (the ORM path's BEGIN is a statement there; PostgreSQL's is not logged)."""
    found = []
    previous = ""
    for statement in sql.statements:
        text = statement.lstrip().upper()
        if "ON CONFLICT" in text or (
            text.startswith("INSERT")
            and "IGNORE" not in text
            and not previous.startswith(("BEGIN", "SAVEPOINT", "INSERT"))
            and sql.backend == "mysql"
        ):
            found.append(statement)
        previous = text
    return found


@pytest.fixture
def fast(db: Database) -> bool:
    """Whether this run takes the one-statement path for an eligible miss."""
    return db.one_statement_get_or_create and db.facts.autocommit_writes


async def test_an_eligible_miss_is_one_insert(
    db: Database, sql: StatementLog, fast: bool
) -> None:
    user, created = await User.objects.get_or_create(
        username="ann", defaults={"email": "a@x"}
    )
    assert created
    inserts = one_statement_inserts(sql)
    if fast:
        assert len(inserts) == 1, sql.statements
        assert "BEGIN" not in sql.statements, sql.statements
        if db.backend == "postgresql":
            assert "ON CONFLICT (username) DO NOTHING RETURNING" in inserts[0]
        else:  # MariaDB: a duplicate key fails it; the retried get decides
            assert inserts[0].startswith("INSERT INTO users"), inserts
            assert "RETURNING" in inserts[0]
    else:
        assert inserts == []
    sql.statements.clear()
    again, created = await User.objects.get_or_create(username="ann")
    assert (again.id, created) == (user.id, False)
    assert sql.count(lambda s: not s.startswith("BEGIN")) == 1  # a hit: one SELECT
    by_pk, created = await User.objects.get_or_create(
        pk=user.id, defaults={"username": "x"}
    )
    assert (by_pk.username, created) == ("ann", False)


async def test_both_paths_leave_the_same_object_state(db: Database) -> None:
    """Server and Python defaults loaded, detached with an identity,
    relationships unloaded: the same after either path."""
    states = []
    for on, name in ((True, "fast"), (False, "orm")):
        db.fast_get_or_create = on
        user, created = await User.objects.get_or_create(
            username=name, defaults={"age": 7}
        )
        assert created
        state = inspect(user)
        states.append(
            (
                state.detached,
                state.identity is not None,
                sorted(state.unloaded),
                user.email,
                user.status,
                user.age,
                user.nickname,
            )
        )
        assert (await User.objects.get(username=name)).id == user.id
    assert states[0] == states[1]
    assert states[0] == (True, True, ["articles"], "", "new", 7, None)


@pytest.mark.parametrize(
    ("lookup", "defaults"),
    [
        ({"username__iexact": "ann"}, {"username": "ann"}),  # operator lookup
        ({"email": "a@x"}, {"username": "ann"}),  # not a unique key
        ({"username": "ann", "email": "a@x"}, {}),  # more than the key
    ],
    ids=["operator", "not-unique", "key-plus-more"],
)
async def test_lookups_that_are_not_exactly_a_unique_key_take_the_orm_path(
    db: Database, sql: StatementLog, lookup: dict[str, Any], defaults: dict[str, Any]
) -> None:
    _, created = await User.objects.get_or_create(defaults=defaults, **lookup)
    assert created
    assert one_statement_inserts(sql) == []


async def test_insert_and_flush_listeners_send_it_to_the_orm_path(
    db: Database, sql: StatementLog
) -> None:
    seen: list[str] = []

    def before_insert(mapper: Any, connection: Any, target: User) -> None:
        seen.append(f"insert {target.username}")

    def before_flush(session: Session, context: Any, instances: Any) -> None:
        seen.append("flush")

    event.listen(User, "before_insert", before_insert)
    try:
        await User.objects.get_or_create(username="ann")
    finally:
        event.remove(User, "before_insert", before_insert)
    event.listen(Session, "before_flush", before_flush)
    try:
        await User.objects.get_or_create(username="bob")
    finally:
        event.remove(Session, "before_flush", before_flush)
    assert seen == ["insert ann", "flush"]
    assert one_statement_inserts(sql) == []


async def test_a_clash_on_another_unique_key_raises_on_both_paths(
    db: Database,
) -> None:
    """The conflict target is named, so a duplicate nickname is still an
    IntegrityError (after its one retried get), never a silent no-op."""
    await User.objects.create(username="ann", nickname="x")
    for on in (True, False):
        db.fast_get_or_create = on
        with pytest.raises(IntegrityError):
            await User.objects.get_or_create(username="bob", defaults={"nickname": "x"})
    assert await User.objects.count() == 1


async def test_a_lost_race_returns_the_winner(db: Database, fast: bool) -> None:
    """The row appears between our read and our insert: the insert does nothing
    (or raises, on the ORM path), one retried get returns the winner,
    created=False."""
    winner = await User.objects.create(username="ann", email="winner")
    calls = 0
    # The first read (through one statement, or the ORM's) misses; the
    # retried get (the one-statement re-read, or the ORM's after the
    # IntegrityError, as on SQLite, whose write is the ORM's) finds it.
    select_one = _on_conflict.select_one
    first_or_none = _rows.first_or_none

    def count(*args: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        return calls == 1  # as if the winner committed just after our read

    def miss_once(*args: Any, **kw: Any) -> Any:  # select_one runs in a greenlet
        return (True, None) if count() else select_one(*args, **kw)

    async def miss_once_async(*args: Any, **kw: Any) -> Any:
        return None if count() else await first_or_none(*args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_on_conflict, "select_one", miss_once)
        mp.setattr(_rows, "first_or_none", miss_once_async)
        user, created = await User.objects.get_or_create(
            username="ann", defaults={"email": "loser"}
        )
    assert (user.id, user.email, created) == (winner.id, "winner", False)
    assert calls == 2
    assert await User.objects.count() == 1


async def test_load_listeners_and_none_lookups_take_the_orm_path(
    db: Database, sql: StatementLog
) -> None:
    """A load listener must see rows loaded by get_or_create, and a lookup on
    NULL cannot rely on a unique key (NULLs repeat): both take the ORM path."""
    await User.objects.create(username="ann")
    loaded: list[str] = []

    def on_load(target: User, context: Any) -> None:
        loaded.append(target.username)

    event.listen(User, "load", on_load)
    try:
        user, created = await User.objects.get_or_create(username="ann")
    finally:
        event.remove(User, "load", on_load)
    assert (user.username, created, loaded) == ("ann", False, ["ann"])
    _, created = await User.objects.get_or_create(
        nickname=None, defaults={"username": "bob"}
    )
    assert created is False  # ann has no nickname: found, not created
    assert one_statement_inserts(sql) == []


async def test_a_filtered_manager_keeps_its_filter_after_the_shape_is_cached(
    db: Database,
) -> None:
    """Once Article(title=...) is a known eligible shape, the plain manager
    reads with a prepared SELECT; a manager that pre-filters must not."""
    ann = await User.objects.create(username="ann")
    draft, created = await Article.objects.get_or_create(
        title="x", defaults={"author_id": ann.id}
    )
    assert created
    again, created = await Article.objects.get_or_create(title="x")
    assert (again.id, created) == (draft.id, False)  # the cached shape
    with pytest.raises(IntegrityError):  # the draft is not published
        await Article.published_objects.get_or_create(
            title="x", defaults={"author_id": ann.id}
        )
    with pytest.raises(FieldError):
        await Article.objects.get_or_create(titel="x")


class CursorSpy:
    """Counts the statements the one-statement path sent through the driver's
    cursor instead of SQLAlchemy's execute()."""

    def __init__(self, mp: pytest.MonkeyPatch) -> None:
        self.sql: list[str] = []
        original = _cursor.cursor_rows

        def spy(conn: Any, plan: Any, args: Any) -> Any:
            self.sql.append(plan.sql)
            return original(conn, plan, args)

        mp.setattr(_cursor, "cursor_rows", spy)


@pytest.fixture
def cursor(monkeypatch: pytest.MonkeyPatch) -> CursorSpy:
    return CursorSpy(monkeypatch)


async def test_plain_columns_go_through_the_cursor(
    db: Database, fast: bool, cursor: CursorSpy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tag's columns need no conversion and it has no Python-side default: its
    SELECT and its INSERT skip execute(). The object is what the ORM path
    makes of the same row."""
    # Start cold, whatever earlier tests in this process proved of the shape.
    monkeypatch.setattr(_on_conflict, "_targets", {})
    monkeypatch.setattr(_on_conflict, "_prepared", {})
    tag, created = await Tag.objects.get_or_create(name="db")
    again, found_created = await Tag.objects.get_or_create(name="db")
    assert (created, found_created, again.id) == (True, False, tag.id)
    assert (tag.label, again.label) == ("", "")  # the server default, loaded
    state = inspect(again)
    assert state.detached
    assert state.identity == (tag.id,)
    if fast or (
        db.one_statement_get_or_create and db.facts.autocommit_writes_by_cursor
    ):
        # The first call's SELECT is built for that call (the lookup shape is
        # not yet known to be valid); from the second call on it is prepared.
        # SQLite too: its INSERT goes through the cursor's one trip.
        kinds = [s.split()[0] for s in cursor.sql]
        assert kinds == ["INSERT", "SELECT"], cursor.sql
        if db.backend in {"postgresql", "sqlite"}:
            assert "ON CONFLICT (name) DO NOTHING" in cursor.sql[0]
        else:
            assert "RETURNING" in cursor.sql[0], cursor.sql
    else:
        assert cursor.sql == []


async def test_racing_through_the_cursor(
    db: Database, fast: bool, cursor: CursorSpy
) -> None:
    """32 tasks released together on one new key, 10 rounds, the SELECT and
    the INSERT through the cursor: one created=True a round, no exception."""
    await Tag.objects.get_or_create(name="warm-up")  # the shape is prepared
    for round_no in range(10):
        gate = asyncio.Event()

        async def caller(
            key: str = f"race-{round_no}", gate: asyncio.Event = gate
        ) -> bool:
            await gate.wait()
            _, created = await Tag.objects.get_or_create(name=key)
            return created

        tasks = [asyncio.ensure_future(caller()) for _ in range(32)]
        await asyncio.sleep(0.01)
        gate.set()
        assert sum(await asyncio.gather(*tasks)) == 1
    assert await Tag.objects.count() == 11
    if fast:
        # INSERT ... ON CONFLICT, or, once the shape mostly misses, the one
        # statement that reads or inserts (WITH found AS ...)
        inserts = [s for s in cursor.sql if s.startswith(("INSERT", "WITH"))]
        assert len(inserts) >= 10
        assert all(s.startswith(("SELECT", "INSERT", "WITH")) for s in cursor.sql)
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_another_unique_key_clashing_under_the_cursor_raises(
    db: Database, fast: bool, cursor: CursorSpy
) -> None:
    """The cursor's INSERT names its conflict target: a clash on Tag.code is
    SQLAlchemy's IntegrityError, after one retried get, and the connection
    goes back to the pool in good order."""
    await Tag.objects.get_or_create(name="a", defaults={"code": "x"})
    with pytest.raises(IntegrityError) as info:
        await Tag.objects.get_or_create(name="b", defaults={"code": "x"})
    assert not info.value.connection_invalidated
    if fast:
        assert [s.split()[0] for s in cursor.sql][-2:] == ["INSERT", "SELECT"]
    assert [t.name for t in await Tag.objects.order_by("name")] == ["a"]
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_converted_types_and_python_defaults_go_through_execute(
    db: Database, fast: bool, cursor: CursorSpy
) -> None:
    """Numeric and Enum values are converted by SQLAlchemy, and a column left
    out of the INSERT with a Python-side default (User.age) needs SQLAlchemy to
    compute it: those statements run through execute(), with the same result
    as the ORM path."""
    setting, created = await Setting.objects.get_or_create(
        name="s", defaults={"ratio": Decimal("1.50"), "level": Level.HIGH}
    )
    found, again = await Setting.objects.get_or_create(name="s")
    assert (created, again) == (True, False)
    assert (found.ratio, found.level) == (Decimal("1.50"), Level.HIGH)
    assert (setting.ratio, setting.level) == (Decimal("1.50"), Level.HIGH)
    assert cursor.sql == []
    user, created = await User.objects.get_or_create(username="ann")
    assert (created, user.age, user.email) == (True, 0, "")
    if fast:  # the read of User is plain, its INSERT is not
        assert [s.split()[0] for s in cursor.sql] == ["SELECT"]


async def test_none_for_a_column_with_a_default_stores_null(db: Database) -> None:
    """As in Django, a value given as None is NULL even where the column has a
    default (the default is for a value not given); on both paths. On a NOT
    NULL column that is the server's error, as in Django."""
    for on in (True, False):
        db.fast_get_or_create = on
        counter, created = await Counter.objects.get_or_create(
            name=f"c{on}", defaults={"count": None, "level": None}
        )
        assert (created, counter.count, counter.level) == (True, None, None)
        stored = await Counter.objects.get(name=f"c{on}")
        assert (stored.count, stored.level) == (None, None)
        with pytest.raises(IntegrityError):
            await User.objects.get_or_create(username=f"u{on}", defaults={"age": None})
        assert not await User.objects.filter(username=f"u{on}").exists()


async def test_values_a_bound_insert_cannot_write_take_the_orm_path(
    db: Database,
) -> None:
    """A SQL expression as a value, None for JSON (stored as JSON null, not
    SQL NULL): the same row on both paths."""
    outcomes = []
    for on in (True, False):
        db.fast_get_or_create = on
        user, created = await User.objects.get_or_create(
            username=f"u{on}", defaults={"email": func.lower("A@X")}
        )
        assert (created, user.email) == (True, "a@x")
        setting, created = await Setting.objects.get_or_create(
            name=f"s{on}", defaults={"data": None}
        )
        assert created
        async with db.session() as session:
            sql_null = await session.scalar(
                text("SELECT data IS NULL FROM settings WHERE name = :n"),
                {"n": f"s{on}"},
            )
        outcomes.append((bool(sql_null), setting.data))
    assert outcomes[0] == outcomes[1]


async def test_statement_listeners_and_sql_logging_turn_the_cursor_off(
    db: Database, cursor: CursorSpy, caplog: pytest.LogCaptureFixture
) -> None:
    """Whoever listens to statements (tracing, query counting) or logs SQL
    sees every statement: the cursor path steps aside for them."""
    await Tag.objects.get_or_create(name="warm")  # shapes prepared
    cursor.sql.clear()
    seen: list[str] = []

    def record(conn: Any, cur: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split()[0])

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        await Tag.objects.get_or_create(name="a")
        await Tag.objects.get_or_create(name="a")
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    assert cursor.sql == []
    assert seen.count("SELECT") >= 2  # every read seen (a miss may refresh)
    assert "INSERT" in seen
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine.Engine"):
        await Tag.objects.get_or_create(name="b")
    assert cursor.sql == []
    assert any("tags" in r.getMessage() for r in caplog.records)
    logging.getLogger("sqlalchemy.engine.Engine").setLevel(logging.WARNING)


@pytest.mark.postgresql
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_dead_connection_under_the_cursor_is_replaced_once(
    db: Database, cursor: CursorSpy, caplog: pytest.LogCaptureFixture
) -> None:
    """The pooled connection was killed: the cursor's error goes through
    SQLAlchemy's handling (connection invalidated), the read runs once more
    on a fresh connection, and the caller sees only the result."""
    db.fast_get_or_create = True  # this is a test of the cursor path
    tag, _ = await Tag.objects.get_or_create(name="t")
    await db.engine.dispose()
    opened: list[int] = []
    ids = track_backend_ids(db, opened)
    await Tag.objects.get_or_create(name="t")  # one pooled connection, tracked
    assert await kill(db, ids) == 1
    await asyncio.sleep(0.2)
    cursor.sql.clear()
    with caplog.at_level(logging.INFO, logger="sqlalchemy_objects"):
        found, created = await Tag.objects.get_or_create(name="t")
    assert (found.id, created) == (tag.id, False)
    assert len(cursor.sql) == 2  # the failed read and its retry
    assert any("retrying it once" in r.getMessage() for r in caplog.records)
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_loader_options_keep_the_orm_path(
    db: Database, sql: StatementLog
) -> None:
    """select_related() and only() shape what get_or_create loads; the
    one-statement path, which loads whole rows and nothing more, steps aside."""
    ann = await User.objects.create(username="ann")
    await Article.objects.create(title="x", author_id=ann.id)
    sql.statements.clear()
    article, created = await Article.objects.select_related("author").get_or_create(
        title="x"
    )
    assert not created
    assert article.author.username == "ann"  # loaded with it: no lazy load
    narrow, created = await Article.objects.only("title").get_or_create(
        title="y", defaults={"author_id": ann.id}
    )
    assert created
    assert narrow.title == "y"
    assert one_statement_inserts(sql) == []

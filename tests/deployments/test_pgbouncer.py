"""Behind PgBouncer in transaction mode (SPEC §6), against a real PgBouncer.

``pool_mode=transaction`` hands each transaction (and each statement outside
one) to any server connection. With ``pgbouncer=True`` every call must give
the right answer; without it, a call may fail but must never answer wrongly,
and its error must say what to do.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, OperationalError

from sqlalchemy_objects import Database
from sqlalchemy_objects._dialects.postgresql import POOLER_NOTE
from tests.conftest import open_database
from tests.deployments.pgbouncer import Bouncer, free_port
from tests.models import Base, User

pytestmark = pytest.mark.postgresql

PROCESSES = 3
TASKS = 32
ROUNDS = 20
SEEDED = 100


@pytest.fixture(name="seeded")
async def _seeded(tmp_path: Path) -> AsyncGenerator[Database]:
    """The test tables on the server behind the bouncer, with SEEDED users
    ``base-0`` ... (a direct connection: the truth to check answers against)."""
    db = await open_database("postgresql", tmp_path)
    await User.objects.bulk_create([User(username=f"base-{n}") for n in range(SEEDED)])
    yield db
    await db.drop_all()
    await db.dispose()


async def _answers(n: int, key: str) -> list[str]:
    """One task's calls: race on *key*, then reads whose answers are known.
    Returns what was wrong (empty: all right)."""
    wrong: list[str] = []
    _, created = await User.objects.get_or_create(username=key)
    count = await User.objects.filter(username__startswith="base-").count()
    if count != SEEDED:
        wrong.append(f"count {count}")
    mine = f"base-{n % SEEDED}"
    values = await User.objects.filter(username=mine).values("username")
    if values != [{"username": mine}]:
        wrong.append(f"values {values!r}")
    if (await User.objects.get(username=mine)).username != mine:
        wrong.append("get")
    return ["created"] * created + wrong


async def _task(release: asyncio.Barrier, n: int, key: str) -> list[str]:
    await release.wait()
    return await _answers(n, key)


def _process(url: str, flag: bool, proc: int, barrier: Any, out: Any) -> None:
    """A worker process: TASKS tasks released together, ROUNDS rounds, each
    round's key shared with the other processes (a process barrier)."""

    async def main() -> list[Any]:
        db = Database(url, pgbouncer=flag or None, pool_size=TASKS, max_overflow=0)
        db.bind(Base)
        results: list[Any] = []
        loop = asyncio.get_running_loop()
        try:
            for round_no in range(ROUNDS):
                await loop.run_in_executor(None, barrier.wait, 60)
                release = asyncio.Barrier(TASKS)
                key = f"round-{round_no}"
                outcomes = await asyncio.gather(
                    *(_task(release, proc * TASKS + n, key) for n in range(TASKS)),
                    return_exceptions=True,
                )
                results.append(
                    [o if isinstance(o, list) else repr(o)[:300] for o in outcomes]
                )
        finally:
            await db.dispose()
        return results

    try:
        out.put((proc, asyncio.run(main())))
    except BaseException as exc:
        out.put((proc, repr(exc)))


async def rows_per_key(db: Database) -> dict[str, int]:
    async with db.session() as session:
        result = await session.execute(
            select(User.username, func.count())
            .where(User.username.startswith("round-"))
            .group_by(User.username)
        )
        return {row[0]: row[1] for row in result.all()}


async def test_racing_processes_get_exact_answers_with_pgbouncer_true(
    bouncer: Bouncer, seeded: Database
) -> None:
    """PROCESSES processes x TASKS tasks, ROUNDS rounds racing on one new key
    per round and reading known rows: 0 exceptions, 0 wrong answers, one row
    and one created=True per key."""
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(PROCESSES), ctx.Queue()
    # Process 0 says it in the URL, the others with the keyword.
    args = [(bouncer.url(pgbouncer="true"), False)] + [(bouncer.url(), True)] * (
        PROCESSES - 1
    )
    workers = [
        ctx.Process(target=_process, args=(*args[p], p, barrier, out))
        for p in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    loop = asyncio.get_running_loop()
    results = dict(
        [await loop.run_in_executor(None, out.get, True, 300) for _ in workers]
    )
    for worker in workers:
        worker.join(timeout=60)
    failures = {p: r for p, r in results.items() if not isinstance(r, list)}
    assert failures == {}
    answers = [a for r in results.values() for rnd in r for a in rnd]
    assert [a for a in answers if isinstance(a, str)] == []  # no exception
    assert [w for a in answers for w in a if w != "created"] == []  # no wrong answer
    created_per_round = [
        sum(a.count("created") for r in results.values() for a in r[n])
        for n in range(ROUNDS)
    ]
    assert created_per_round == [1] * ROUNDS
    assert await rows_per_key(seeded) == {f"round-{n}": 1 for n in range(ROUNDS)}


async def test_without_the_flag_an_answer_is_right_or_an_error_says_why(
    bouncer: Bouncer, seeded: Database
) -> None:
    """No pgbouncer=True: 8 tasks at a time, 60 rounds of reads with known
    answers. A call may fail, but never answers wrongly (statement names never
    repeat across clients), and each failure says "pass pgbouncer=True"."""
    db = Database(bouncer.url(), pool_size=8, max_overflow=0)
    db.bind(Base)
    wrong: list[str] = []
    noted = unexplained = right = 0
    try:
        for _ in range(60):
            outcomes = await asyncio.gather(
                *(_answers(n, f"base-{n}") for n in range(8)), return_exceptions=True
            )
            for outcome in outcomes:
                if isinstance(outcome, list):
                    wrong += outcome
                    right += not outcome
                elif isinstance(outcome, DBAPIError) and POOLER_NOTE in getattr(
                    outcome, "__notes__", []
                ):
                    noted += 1
                else:
                    unexplained += 1
    finally:
        await db.dispose()
    assert (wrong, unexplained) == ([], 0)
    assert noted > 0  # the pooler did interfere: the test proves the note
    assert right + noted == 60 * 8


async def test_a_killed_and_restarted_pgbouncer_costs_at_most_two_calls(
    bouncer: Bouncer, seeded: Database
) -> None:
    """8 tasks reading in a loop; PgBouncer is SIGKILLed, then restarted. While
    it is down every failure is one of SQLAlchemy's errors (no raw OSError);
    once it is back each task fails at most twice before its answers are right
    again."""
    db = Database(bouncer.url(), pgbouncer=True, pool_size=8, max_overflow=0)
    db.bind(Base)
    phase = "up"
    log: dict[int, list[tuple[str, str]]] = {n: [] for n in range(8)}
    stop = asyncio.Event()

    async def reader(n: int) -> None:
        while not stop.is_set():
            seen = phase
            try:
                count = await User.objects.filter(username__startswith="base-").count()
                log[n].append((seen, "ok" if count == SEEDED else f"wrong {count}"))
            except Exception as exc:
                log[n].append((seen, type(exc).__name__))
                await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(reader(n)) for n in range(8)]
    loop = asyncio.get_running_loop()
    try:
        await asyncio.sleep(0.5)
        bouncer.kill()
        phase = "down"
        await asyncio.sleep(1.0)
        await loop.run_in_executor(None, bouncer.start)
        phase = "back"
        await asyncio.sleep(2.0)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await db.dispose()
    for n, entries in log.items():
        outcomes = {outcome for _, outcome in entries}
        assert outcomes <= {"ok", "OperationalError", "DBAPIError", "InterfaceError"}, (
            n,
            outcomes,
        )
        back = [outcome for seen, outcome in entries if seen == "back"]
        assert "ok" in back, (n, back)
        assert back.index("ok") <= 2, (n, back)
        assert all(outcome == "ok" for outcome in back[back.index("ok") :]), (n, back)
    assert any(
        outcome != "ok"
        for entries in log.values()
        for seen, outcome in entries
        if seen == "down"
    )


async def test_a_refused_connection_is_an_operational_error() -> None:
    """Nothing listens on the port: asyncpg's ConnectionRefusedError reaches the
    caller as SQLAlchemy's OperationalError (one exception family to catch)."""
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test")
    db.bind(Base)
    try:
        with pytest.raises(OperationalError) as caught:
            await db.run_read(lambda session: session.scalar(select(1)))
        assert isinstance(caught.value.orig, ConnectionRefusedError)
    finally:
        await db.dispose()

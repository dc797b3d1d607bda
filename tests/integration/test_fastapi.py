"""FastAPI through a real server: uvicorn on a free port, driven by httpx.

No ``from __future__ import annotations`` here: FastAPI reads endpoint annotations
at run time, and these endpoints are built inside a function around local names.
"""

import asyncio
import socket
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from sqlalchemy_objects import Database, current_session
from sqlalchemy_objects.fastapi import SessionMiddleware, lifespan, session_dependency
from tests.conftest import open_transactions, settle
from tests.models import Note, User

SLOW_CALLS = {"started": 0, "finished": 0}


def build_app(db: Database) -> FastAPI:
    """/...: SessionMiddleware; /dep/...: session_dependency (two separate sub-apps,
    since a mounted app also runs its parent's middleware)."""
    root = FastAPI()
    app = FastAPI()
    app.add_middleware(SessionMiddleware, database=db)
    dependency_app = FastAPI()
    request_session = session_dependency(db)
    EarlySession = Annotated[AsyncSession, Depends(request_session, scope="function")]
    RequestSession = Annotated[AsyncSession, Depends(request_session)]

    @app.post("/users/{name}")
    async def get_or_create_user(name: str) -> dict[str, object]:
        user, created = await User.objects.get_or_create(username=name)
        return {"id": user.id, "created": created}

    @app.post("/fail/{name}")
    async def write_then_fail(name: str, kind: str = "http") -> None:
        await Note.objects.create(text=name)
        await User.objects.create(username=name)
        if kind == "http":
            raise HTTPException(status_code=409, detail="conflict after writing")
        raise RuntimeError("boom after writing")

    @app.post("/slow/{name}")
    async def slow(name: str) -> dict[str, str]:
        SLOW_CALLS["started"] += 1
        try:
            await Note.objects.create(text=name)
            await asyncio.sleep(1.0)
            return {"ok": name}
        finally:
            SLOW_CALLS["finished"] += 1

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def rows() -> AsyncIterator[str]:
            for i in range(3):
                note = await Note.objects.create(text=f"streamed-{i}")
                yield f"{note.text}\n"

        return StreamingResponse(rows(), media_type="text/plain")

    @dependency_app.post("/users/{name}")
    async def dep_get_or_create(name: str, session: EarlySession) -> dict[str, object]:
        assert current_session() is session  # manager calls use the request's session
        user, created = await User.objects.get_or_create(username=name)
        return {"id": user.id, "created": created}

    @dependency_app.post("/fail/{name}")
    async def dep_fail(name: str, session: RequestSession) -> None:
        await Note.objects.create(text=name)
        raise HTTPException(status_code=422, detail="nope")

    root.mount("/dep", dependency_app)
    root.mount("/", app)
    return root


@dataclass
class Server:
    url: str
    server: uvicorn.Server


@pytest.fixture(name="server")
async def _server(db: Database) -> AsyncGenerator[Server]:
    """uvicorn serving the test app on 127.0.0.1 in this event loop."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        build_app(db),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_keep_alive=60,
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield Server(f"http://127.0.0.1:{port}", server)
    finally:
        server.should_exit = True
        await task


# SQLite's busy handler is not fair: with 20 concurrent writer sessions a waiter
# can lose the lock for the whole 30 s busy timeout ("database is locked", seen in
# CI). SQLite is therefore driven with 4 client connections (docs/fastapi.md).
CLIENT_CONNECTIONS = {"sqlite": 4, "postgresql": 20, "mariadb": 20}


async def test_hundreds_of_concurrent_requests_create_one_row_per_key(
    backend: str, db: Database, server: Server
) -> None:
    """200 concurrent requests over 20 client connections (SQLite: 4) doing
    get_or_create on 5 keys: no 5xx, one row per key, exactly one created=True per
    key (middleware and dependency alike)."""
    limits = httpx.Limits(max_connections=CLIENT_CONNECTIONS[backend])
    async with httpx.AsyncClient(
        base_url=server.url, limits=limits, timeout=60
    ) as client:
        responses = await asyncio.gather(
            *(client.post(f"/users/u{i % 5}") for i in range(100)),
            *(client.post(f"/dep/users/d{i % 5}") for i in range(100)),
        )
    assert [r.status_code for r in responses] == [200] * 200
    created = [r.json()["created"] for r in responses]
    assert created.count(True) == 10
    names = sorted(u.username for u in await User.objects.all())
    assert names == sorted([f"u{i}" for i in range(5)] + [f"d{i}" for i in range(5)])


@pytest.mark.parametrize("kind", ["http", "error"])
async def test_a_request_that_fails_after_writing_leaves_nothing(
    db: Database, server: Server, kind: str
) -> None:
    """Writes, then HTTPException (409) or an unhandled error (500): both roll back."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.post("/fail/ghost", params={"kind": kind})
        dep_response = await client.post("/dep/fail/ghost2")
    assert response.status_code == (409 if kind == "http" else 500)
    assert dep_response.status_code == 422
    assert await Note.objects.count() == 0
    assert await User.objects.count() == 0


async def test_streaming_response_writes_are_committed(
    db: Database, server: Server
) -> None:
    """The session stays open while a streaming body is produced, and its writes commit."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.get("/stream")
    assert response.text.splitlines() == ["streamed-0", "streamed-1", "streamed-2"]
    assert await Note.objects.count() == 3


async def test_client_disconnect_leaves_no_connection_checked_out(
    db: Database, server: Server
) -> None:
    """Clients that give up mid-request leave no connection checked out and no
    transaction open once the server has finished with them."""
    SLOW_CALLS.update(started=0, finished=0)
    async with httpx.AsyncClient(base_url=server.url, timeout=0.2) as client:
        results = await asyncio.gather(
            *(client.post(f"/slow/n{i}") for i in range(5)), return_exceptions=True
        )
    assert all(isinstance(r, httpx.TimeoutException) for r in results)
    # The server finishes the abandoned requests (one at a time on SQLite).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    pool = db.engine.pool
    while loop.time() < deadline and (SLOW_CALLS["finished"] < 5 or pool.checkedout()):  # type: ignore[attr-defined]  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    await settle()
    assert SLOW_CALLS == {"started": 5, "finished": 5}
    assert pool.checkedout() == 0, pool.status()  # type: ignore[attr-defined]
    assert await open_transactions(db) == 0


async def test_lifespan_creates_tables_and_disposes(db: Database) -> None:
    """lifespan(db, create_all=True) creates the tables at start-up and closes the pool."""
    await db.drop_all()
    async with lifespan(db, create_all=True)(FastAPI()):
        await User.objects.create(username="after-startup")
    assert db.engine.pool.checkedin() == 0  # type: ignore[attr-defined]
    assert (
        await User.objects.get(username="after-startup")
    ).username == "after-startup"

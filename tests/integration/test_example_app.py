"""examples/fastapi_app.py works as its docstring says, on every backend."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from examples.fastapi_app import Base as ExampleBase
from examples.fastapi_app import create_app
from sqlalchemy_objects import Database
from tests.deployments.pgbouncer import free_port

ROOT = Path(__file__).resolve().parents[2]


async def test_the_example_app(db: Database) -> None:
    """Create users, tag them concurrently, read them back; errors are 404/409."""
    example_db = Database(db.url)
    app = create_app(example_db)
    await example_db.drop_all()
    await example_db.create_all()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test"
        ) as client:
            created = await client.post(
                "/users", json={"username": "ann", "email": "a@x"}
            )
            assert created.status_code == 201
            duplicate = await client.post(
                "/users", json={"username": "ann", "email": "b@x"}
            )
            assert duplicate.status_code == 409
            results = await asyncio.gather(
                *(client.put(f"/users/ann/tags/t{i % 3}") for i in range(30))
            )
            assert {r.status_code for r in results} == {200}
            assert sum(r.json()["tag_created"] for r in results) == 3
            assert sum(r.json()["newly_linked"] for r in results) == 3
            user = (await client.get("/users/ann")).json()
            assert sorted(user["tags"]) == ["t0", "t1", "t2"]
            assert (await client.get("/tags/t1")).json() == {"name": "t1", "users": 1}
            assert (await client.get("/users/nobody")).status_code == 404
            assert (await client.put("/users/nobody/tags/x")).status_code == 404
    finally:
        await example_db.drop_all()
        await example_db.dispose()


async def test_the_example_app_served_by_uvicorn(db: Database, tmp_path: Path) -> None:
    """The README's ``make demo-api`` app in a real server process (uvicorn)
    on this backend: users and posts (a relationship), keyset-paginated
    lists walked to the end while new posts arrive, the background task's
    counts, and the exception handlers' 404 / 400 bodies."""
    url = db.url.render_as_string(hide_password=False)
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "uvicorn", "examples.fastapi_app:app"),
        *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await wait_until_up(client, server)
            for name in ("ann", "bob"):
                made = await client.post(
                    "/users", json={"username": name, "email": "x"}
                )
                assert made.status_code == 201, made.text
            for batch in range(5):
                answers = await asyncio.gather(
                    *(
                        client.post(
                            f"/users/{'ann' if i % 4 else 'bob'}/posts",
                            json={"title": f"p{batch}-{i}"},
                        )
                        for i in range(8)
                    )
                )
                assert {a.status_code for a in answers} == {201}
            # Walk the newest-first list 7 at a time; a post made between two
            # pages is newer than the cursor, so it never shows up twice or
            # pushes a row off a page.
            seen: list[dict[str, Any]] = []
            cursor: str | None = None
            pages = 0
            while True:
                params: dict[str, Any] = {"size": 7}
                if cursor is not None:
                    params["after"] = cursor
                page = (await client.get("/posts", params=params)).json()
                seen.extend(page["items"])
                pages += 1
                if pages == 2:
                    late = await client.post("/users/ann/posts", json={"title": "late"})
                    assert late.status_code == 201
                cursor = page["next"]
                if cursor is None:
                    break
            ids = [p["id"] for p in seen]
            assert len(ids) == len(set(ids))
            # Every post that was there at the start, exactly once; the late
            # one only if it sorts after the cursor (MariaDB's DATETIME keeps
            # whole seconds, so it may tie with older posts and follow them).
            originals = [p for p in seen if p["title"] != "late"]
            assert len(originals) == 40
            assert len(seen) in {40, 41}
            assert {p["author"] for p in originals} == {"ann", "bob"}
            assert sum(p["author"] == "bob" for p in originals) == 10
            # The background task counted every post (it commits after the
            # response, so poll briefly).
            for _ in range(100):
                ann = (await client.get("/users/ann")).json()
                if ann["posts"] == 31:
                    break
                await asyncio.sleep(0.05)
            assert ann["posts"] == 31
            assert (await client.get("/users/bob")).json()["posts"] == 10
            missing = await client.get("/users/nobody")
            assert (missing.status_code, missing.json()) == (
                404,
                {"detail": "User not found"},
            )
            bad = await client.get("/posts", params={"order": "colour"})
            assert bad.status_code == 400
            assert (
                "Cannot resolve 'colour' into a column of Post" in bad.json()["detail"]
            )
            assert "Choices are: author_id, created, id, title" in bad.json()["detail"]
            garbage = await client.get("/posts", params={"after": "nope"})
            assert garbage.status_code == 400
            assert "not a cursor of a Post page" in garbage.json()["detail"]
    finally:
        if server.returncode is None:
            server.terminate()
        raw, _ = await asyncio.wait_for(server.communicate(), 30)
        output = raw.decode()
        example_db = Database(db.url)
        example_db.bind(ExampleBase)
        await example_db.drop_all()
        await example_db.dispose()
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it (-15).
    assert server.returncode in {0, -15}, output
    assert "Traceback" not in output, output


async def wait_until_up(
    client: httpx.AsyncClient, server: asyncio.subprocess.Process
) -> None:
    for _ in range(200):
        if server.returncode is not None:
            raise AssertionError("uvicorn exited before it served a request")
        try:
            await client.get("/openapi.json")
            return
        except httpx.TransportError:
            await asyncio.sleep(0.05)
    raise AssertionError("uvicorn did not start within 10 s")

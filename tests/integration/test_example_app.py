"""examples/fastapi_app.py works as its docstring says, on every backend."""

from __future__ import annotations

import asyncio

import httpx

from examples.fastapi_app import create_app
from sqlalchemy_objects import Database


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

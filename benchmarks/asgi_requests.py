"""The request of benchmarks/web_requests.py without HTTP: where its time goes.

    .venv/bin/python benchmarks/asgi_requests.py              # µs per request
    .venv/bin/python benchmarks/asgi_requests.py --profile    # and cProfile

Each endpoint of benchmarks/web/web_apps.py (raw asyncpg, ours with
``SessionMiddleware``, ours in autocommit mode) is built in this process and
called through ASGI directly, ``POST /items/hot-<n>`` on 1,000 existing rows,
one request at a time: no uvicorn, no wrk, no socket but the database's. The
endpoints run in interleaved blocks, so the machine's noise hits them alike;
medians of µs per request, and each ratio to the raw endpoint. What is left
between the endpoints is the per-request Python of each: with ``--profile``
the functions of ours that take the most time under cProfile are listed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import os
import pstats
import statistics
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from web_requests import HOT, fresh_table

HERE = Path(__file__).resolve().parent / "web"
TABLE = "bench_asgi_items"
ENDPOINTS = ("raw", "autocommit", "middleware")

Message = MutableMapping[str, Any]


def load_app(endpoint: str) -> Any:
    """A fresh import of web_apps.py with APP=*endpoint* (it builds its app
    at import)."""
    os.environ["APP"] = endpoint
    os.environ["TABLE"] = TABLE
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    sys.modules.pop("web_apps", None)
    return importlib.import_module("web_apps").app


class Running:
    """An ASGI app after its lifespan's start-up, until :meth:`stop`."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.started = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async def receive() -> Message:
            return await self.inbox.get()

        async def send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                self.started.set()

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
        self.task = asyncio.create_task(self.app(scope, receive, send))
        await self.inbox.put({"type": "lifespan.startup"})
        await self.started.wait()

    async def request(self, n: int) -> None:
        path = f"/items/hot-{n % HOT}"
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        statuses: list[int] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(int(message["status"]))

        await self.app(scope, receive, send)
        assert statuses == [200], statuses

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        assert self.task is not None
        await self.task


async def main(blocks: int, per_block: int, profile: bool) -> None:
    await fresh_table(TABLE)
    apps = {name: Running(load_app(name)) for name in ENDPOINTS}
    for running in apps.values():
        await running.start()
    try:
        for running in apps.values():  # warm-up: pools, prepared statements
            for n in range(300):
                await running.request(n)
        times: dict[str, list[float]] = {name: [] for name in ENDPOINTS}
        for block in range(blocks):
            order = ENDPOINTS if block % 2 == 0 else ENDPOINTS[::-1]
            for name in order:
                start = time.perf_counter()
                for n in range(per_block):
                    await apps[name].request(n)
                times[name].append((time.perf_counter() - start) / per_block * 1e6)
        raw = statistics.median(times["raw"])
        print(f"{'endpoint':<12} {'µs/request':>11} {'× raw':>7}")
        for name in ENDPOINTS:
            median = statistics.median(times[name])
            print(f"{name:<12} {median:>11.1f} {median / raw:>7.2f}")
        if profile:
            for name in ("autocommit", "middleware"):
                profiler = cProfile.Profile()
                profiler.enable()
                for n in range(2000):
                    await apps[name].request(n)
                profiler.disable()
                print(f"\n== {name}: cumulative time of ours, 2,000 requests")
                stats = pstats.Stats(profiler)
                stats.sort_stats("cumulative").print_stats("sqlalchemy_objects", 15)
    finally:
        for running in apps.values():
            await running.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--per-block", type=int, default=300)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.blocks, args.per_block, args.profile))

"""The whole request: ``POST /items/{key}`` (one get_or_create, the row as
JSON) through uvicorn, driven by ``wrk`` from another process.

    .venv/bin/python benchmarks/web_requests.py                # 3 repeats
    .venv/bin/python benchmarks/web_requests.py --quick        # 1 repeat, short

Endpoints (benchmarks/web/web_apps.py, tortoise_web_app.py): raw asyncpg by hand
(the floor), ours with ``SessionMiddleware`` (what docs/fastapi.md shows), ours
in autocommit mode, and Tortoise ORM with ``RegisterTortoise`` (its own venv
under benchmarks/.venvs/, made on first use). Each runs under uvicorn with 1
and 4 worker processes, on 127.0.0.1 only, against PostgreSQL on 5432; ``wrk``
(Debian's package: ``apt-get install wrk``) keeps 64 connections busy for
``--seconds`` after a warm-up, the keys drawn from 1,000 existing rows (hits).
The order of the endpoints alternates between repeats; each ratio is to the
raw endpoint of the same repeat and worker count. Medians over repeats go to
stdout and benchmarks/results/requests-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import glob
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

HERE = Path(__file__).resolve().parent / "web"
ROOT = HERE.parents[1]
VENV = ROOT / "benchmarks" / ".venvs" / "tortoise_request"
TORTOISE_REQUIREMENTS = [
    "tortoise-orm[asyncpg]==1.1.9",
    "fastapi==0.165.0",
    "uvicorn==0.54.0",
]
DSN = "postgresql://postgres@127.0.0.1:5432/test"
TABLE = "bench_request_items"
HOT = 1000
CONNECTIONS = 64
ENDPOINTS = ("raw", "middleware", "autocommit", "tortoise")
LUA = f"""
request = function()
  return wrk.format("POST", "/items/hot-" .. math.random(0, {HOT - 1}))
end
"""


def tortoise_python() -> Path:
    """The Tortoise venv's Python (made now if missing or outdated)."""
    return venv_python(VENV, TORTOISE_REQUIREMENTS)


def venv_python(venv: Path, requirements: list[str]) -> Path:
    """The Python of *venv* with *requirements* installed, the venv made
    now if missing or outdated (benchmarks/backends.py uses it too)."""
    python = venv / "bin" / "python"
    stamp = venv / ".requirements"
    if stamp.exists() and stamp.read_text() == "\n".join(requirements):
        return python
    base = next(
        iter(sorted(glob.glob(f"{Path.home()}/.pyenv/versions/3.11*/bin/python"))),
        shutil.which("python3.11") or shutil.which("python3"),
    )
    if base is None:
        raise SystemExit(f"no Python 3.11 for {venv}")
    subprocess.run([base, "-m", "venv", "--clear", venv], check=True)
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", *requirements], check=True
    )
    stamp.write_text("\n".join(requirements))
    return python


async def fresh_table(table: str = TABLE) -> None:
    """*table* made anew, holding the HOT keys (benchmarks/asgi_requests.py
    uses it too)."""
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.execute(
            f"CREATE TABLE {table} (id serial PRIMARY KEY, "
            "key varchar(64) UNIQUE NOT NULL, value varchar(64) NOT NULL)"
        )
        await conn.executemany(
            f"INSERT INTO {table} (key, value) VALUES ($1, 'v')",
            [(f"hot-{i}",) for i in range(HOT)],
        )
    finally:
        await conn.close()


async def drop_table() -> None:
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until *port* answers a request (every worker has started its pool)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        done = subprocess.run(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "POST",
                f"http://127.0.0.1:{port}/items/hot-0",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.stdout == "200":
            return
        time.sleep(0.2)
    raise RuntimeError(f"port {port} never answered")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(out: str) -> dict[str, float]:
    """Requests/s, p50/p90/p99 latency (ms) and error counts from wrk's output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    result = {"rps": rps}
    for pct in ("50", "90", "99"):
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert found, out
        result[f"p{pct}_ms"] = float(found.group(1)) * _UNITS[found.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = float(errors.group(1)) if errors else 0.0
    socket_errors = re.search(r"Socket errors: (.*)", out)
    result["socket_errors"] = (
        float(sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1))))
        if socket_errors
        else 0.0
    )
    return result


def measure(endpoint: str, workers: int, seconds: float, lua: str) -> dict[str, float]:
    port = free_port()
    env = {
        **os.environ,
        "APP": endpoint,
        "TABLE": TABLE,
        "PYTHONPATH": f"{HERE}:{ROOT / 'src'}",
    }
    python = tortoise_python() if endpoint == "tortoise" else Path(sys.executable)
    module = "tortoise_web_app:app" if endpoint == "tortoise" else "web_apps:app"
    server = subprocess.Popen(
        [
            str(python),
            "-m",
            "uvicorn",
            module,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=HERE,
        env=env,
    )
    try:
        wait_for(port, server)
        url = f"http://127.0.0.1:{port}"
        wrk = ["wrk", "-t", "2", "-c", str(CONNECTIONS), "-s", lua, "--latency"]
        subprocess.run([*wrk, "-d", "2s", url], capture_output=True, check=True)  # warm
        done = subprocess.run(
            [*wrk, "-d", f"{seconds:g}s", "--timeout", "10s", url],
            capture_output=True,
            text=True,
            check=True,
        )
        return parse_wrk(done.stdout)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def results_dir() -> Path:
    """Where results go: benchmarks/results/, or $BENCH_RESULTS (the quick
    mode of benchmarks/all.py, so its figures never replace a full run's)."""
    folder = Path(
        os.environ.get("BENCH_RESULTS", Path(__file__).resolve().parent / "results")
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--workers", type=int, action="append")
    parser.add_argument("--only", choices=ENDPOINTS, action="append")
    parser.add_argument("--quick", action="store_true", help="1 repeat of 3 s")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.seconds = 1, 3
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    endpoints = ["raw", *[e for e in (args.only or ENDPOINTS) if e != "raw"]]
    worker_counts = args.workers or [1, 4]
    asyncio.run(fresh_table())
    samples: dict[tuple[int, str], list[dict[str, float]]] = {}
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(LUA)
        lua.flush()
        for repeat in range(args.repeats):
            order = endpoints if repeat % 2 == 0 else endpoints[::-1]
            for workers in worker_counts:
                for endpoint in order:
                    result = measure(endpoint, workers, args.seconds, lua.name)
                    samples.setdefault((workers, endpoint), []).append(result)
                    print(
                        f"repeat {repeat} workers {workers} {endpoint:10} "
                        f"{result['rps']:8.0f} req/s  p99 {result['p99_ms']:6.1f} ms",
                        flush=True,
                    )
    asyncio.run(drop_table())
    table: list[dict[str, Any]] = []
    for workers in worker_counts:
        raws = samples[(workers, "raw")]
        for endpoint in endpoints:
            runs = samples[(workers, endpoint)]
            entry: dict[str, Any] = {"endpoint": endpoint, "workers": workers}
            for key in ("rps", "p50_ms", "p90_ms", "p99_ms"):
                entry[key] = statistics.median(r[key] for r in runs)
                entry[f"{key}_x_raw"] = statistics.median(
                    r[key] / f[key] for r, f in zip(runs, raws, strict=True)
                )
            entry["non_2xx"] = sum(r["non_2xx"] for r in runs)
            entry["socket_errors"] = sum(r["socket_errors"] for r in runs)
            table.append(entry)
    print(
        "\n| endpoint | workers | req/s | × raw | p50 ms | p99 ms | p99 × raw | non-2xx |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for e in table:
        print(
            f"| {e['endpoint']} | {e['workers']} | {e['rps']:.0f} | {e['rps_x_raw']:.2f} "
            f"| {e['p50_ms']:.1f} | {e['p99_ms']:.1f} | {e['p99_ms_x_raw']:.2f} "
            f"| {e['non_2xx']:.0f} |"
        )
    today = datetime.date.today().isoformat()
    path = results_dir() / f"requests-{today}.json"
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    path.write_text(
        json.dumps(
            {
                "command": "benchmarks/web_requests.py " + " ".join(sys.argv[1:]),
                "python": platform.python_version(),
                "wrk": wrk_version.strip().splitlines()[0] if wrk_version else "",
                "connections": CONNECTIONS,
                "seconds": args.seconds,
                "repeats": args.repeats,
                "results": table,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()

"""Every peer's get_or_create on the same PostgreSQL table, in one run.

    make bench                                   # installs the peers, then this
    .venv/bin/python benchmarks/peers/run.py --repeats 3

Each system runs in its own process (and, for the peers, its own virtualenv
under benchmarks/.venvs/, created on first use with pinned versions), on a
fresh table ``(id serial pk, key text unique not null, value text not null)``
holding the hot keys, and a side table ``(id serial pk, key text unique not
null)``. Workloads: hit-seq and miss-seq (one coroutine; median and p99 µs),
hit-conc (32 coroutines sharing 2,000 hits, pools of 20: ops/s), a race (32
callers released together on one new key, 100 rounds: exceptions, rounds
without exactly one created=True, duplicate keys), and a race in transactions
(the same, each caller first writing its own side row in its own
transaction: exceptions, and side rows missing although the call returned).
The order of the systems alternates between repeats. Medians over repeats are
reported with min-max, and each ratio is to the raw-asyncpg floor of the same
repeat. Results go to benchmarks/results/peers-<date>.json and a markdown
table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENVS = ROOT / "benchmarks" / ".venvs"
URL = "postgresql://postgres@127.0.0.1:5432/test"
FLOOR = "raw asyncpg (floor)"
DJANGO = "Django aget_or_create"

#: name -> (script, python for a new venv or None for ours, pinned requirements)
SYSTEMS: dict[str, tuple[str, str | None, list[str]]] = {
    FLOOR: ("floor_asyncpg.py", None, []),
    "sqlalchemy-objects": ("ours.py", None, []),
    "hand-written SQLAlchemy": ("sa_handwritten.py", None, []),
    "Tortoise ORM": ("tortoise_peer.py", "3.11", ["tortoise-orm[asyncpg]==1.1.9"]),
    DJANGO: (
        "django_peer.py",
        "3.12",
        ["Django==6.1.3", "psycopg[binary]==3.3.9"],
    ),
    "piccolo": ("piccolo_peer.py", "3.11", ["piccolo[postgres]==1.38.0"]),
    "ormar": ("ormar_peer.py", "3.11", ["ormar==0.26.0", "asyncpg==0.32.0"]),
    "advanced-alchemy get_or_upsert": (
        "advanced_alchemy_peer.py",
        "3.11",
        ["advanced-alchemy==1.12.0", "asyncpg==0.32.0"],
    ),
}


def interpreter(name: str) -> Path:
    """The Python that runs *name*: ours, or the peer's own venv (made now)."""
    _, version, requirements = SYSTEMS[name]
    if version is None:
        return Path(sys.executable)
    venv = VENVS / SYSTEMS[name][0].removesuffix(".py")
    python = venv / "bin" / "python"
    stamp = venv / ".requirements"
    base = _python(version)
    if base is None and name == DJANGO:
        # Django 6 needs Python >= 3.12; without one, Django 5.2 (reported).
        base, requirements = _python("3.11"), ["Django==5.2.*", "psycopg[binary]"]
        SYSTEMS[name] = (SYSTEMS[name][0], "3.11", requirements)
    if base is None:
        raise SystemExit(f"no Python {version} for {name}")
    if not stamp.exists() or stamp.read_text() != "\n".join(requirements):
        subprocess.run([base, "-m", "venv", "--clear", venv], check=True)
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", *requirements], check=True
        )
        stamp.write_text("\n".join(requirements))
    return python


def _python(version: str) -> str | None:
    """A working interpreter for *version* (pyenv's or on PATH), or None."""
    candidates = sorted(
        glob.glob(f"{Path.home()}/.pyenv/versions/{version}*/bin/python")
    )
    on_path = shutil.which(f"python{version}")
    for candidate in [*candidates, *([on_path] if on_path else [])]:
        done = subprocess.run(
            [candidate, "-c", "pass"], capture_output=True, check=False
        )
        if done.returncode == 0:
            return candidate
    return None


async def fresh_table(table: str, hot: int) -> None:
    conn = await asyncpg.connect(URL)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {table}, {table}_side")
        await conn.execute(
            f"CREATE TABLE {table} (id serial PRIMARY KEY, "
            "key text UNIQUE NOT NULL, value text NOT NULL)"
        )
        await conn.execute(
            f"CREATE TABLE {table}_side (id serial PRIMARY KEY, "
            "key text UNIQUE NOT NULL)"
        )
        await conn.executemany(
            f"INSERT INTO {table} (key, value) VALUES ($1, 'v')",
            [(f"hot-{i}",) for i in range(hot)],
        )
    finally:
        await conn.close()


async def duplicate_keys(table: str) -> int:
    conn = await asyncpg.connect(URL)
    try:
        return int(
            await conn.fetchval(
                f"SELECT count(*) FROM (SELECT key FROM {table} GROUP BY key "
                "HAVING count(*) > 1) d"
            )
        )
    finally:
        await conn.close()


async def lost_side_rows(table: str, confirmed: list[str]) -> int:
    """How many side rows of calls that returned are missing (must be 0)."""
    conn = await asyncpg.connect(URL)
    try:
        present = {r["key"] for r in await conn.fetch(f"SELECT key FROM {table}_side")}
    finally:
        await conn.close()
    return len(set(confirmed) - present)


def run_one(name: str, args: argparse.Namespace, repeat: int) -> dict[str, Any]:
    table = "peer_" + SYSTEMS[name][0].removesuffix(".py")
    asyncio.run(fresh_table(table, args.hot))
    command = [
        str(interpreter(name)),
        str(HERE / SYSTEMS[name][0]),
        *("--table", table, "--calls", str(args.calls), "--hot", str(args.hot)),
        *("--rounds", str(args.rounds), "--tag", str(repeat)),
    ]
    env_path = f"{HERE}:{ROOT / 'src'}"
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        timeout=900,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["race"]["duplicate_keys"] = asyncio.run(duplicate_keys(table))
    confirmed = result["race_tx"].pop("confirmed_side_keys")
    result["race_tx"]["returned"] = len(confirmed)
    result["race_tx"]["side_rows_lost"] = asyncio.run(lost_side_rows(table, confirmed))
    return result


def _tally(races: list[dict[str, Any]], *counts: str) -> dict[str, Any]:
    """The races of every repeat added up (*counts*: further counts to add)."""
    names = ("rounds", "exceptions", "rounds_without_exactly_one_created", *counts)
    tally: dict[str, Any] = {n: sum(r[n] for r in races) for n in names}
    tally["exception_types"] = sorted({t for r in races for t in r["exception_types"]})
    return tally


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    floors = runs[FLOOR]
    for name, results in runs.items():
        ok = [(r, f) for r, f in zip(results, floors, strict=True) if "error" not in r]
        if not ok:
            summary[name] = {"error": results[0]["error"]}
            continue
        entry: dict[str, Any] = {}
        for workload in ("hit", "miss"):
            medians = [r[workload]["median"] for r, _ in ok]
            ratios = [r[workload]["median"] / f[workload]["median"] for r, f in ok]
            entry[workload] = {
                "median_us": statistics.median(medians),
                "min_us": min(medians),
                "max_us": max(medians),
                "p99_us": statistics.median(r[workload]["p99"] for r, _ in ok),
                "x_floor": statistics.median(ratios),
            }
        ops = [r["hit_conc_ops"] for r, _ in ok]
        entry["hit_conc"] = {
            "ops_per_s": statistics.median(ops),
            "of_floor": statistics.median(
                r["hit_conc_ops"] / f["hit_conc_ops"] for r, f in ok
            ),
        }
        entry["race"] = _tally([r["race"] for r, _ in ok], "duplicate_keys")
        entry["race_tx"] = _tally(
            [r["race_tx"] for r, _ in ok], "returned", "side_rows_lost"
        )
        summary[name] = entry
    return summary


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| system | hit µs (min–max) | × floor | miss µs (min–max) | × floor "
        "| hit-conc ops/s (% of floor) | race: exceptions | race: rounds ≠ 1 created "
        "| race in transactions: exceptions | side rows lost |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, s in summary.items():
        if "error" in s:
            lines.append(f"| {name} | failed: {s['error']} | | | | | | | | |")
            continue
        h, m, r, t = s["hit"], s["miss"], s["race"], s["race_tx"]
        kinds = f" ({', '.join(r['exception_types'])})" if r["exception_types"] else ""
        tx_kinds = (
            f" ({', '.join(t['exception_types'])})" if t["exception_types"] else ""
        )
        lines.append(
            f"| {name} | {h['median_us']:.0f} ({h['min_us']:.0f}–{h['max_us']:.0f}) "
            f"| {h['x_floor']:.2f} "
            f"| {m['median_us']:.0f} ({m['min_us']:.0f}–{m['max_us']:.0f}) "
            f"| {m['x_floor']:.2f} "
            f"| {s['hit_conc']['ops_per_s']:.0f} ({s['hit_conc']['of_floor']:.0%}) "
            f"| {r['exceptions']}{kinds} "
            f"| {r['rounds_without_exactly_one_created']} of {r['rounds']} "
            f"| {t['exceptions']}{tx_kinds} "
            f"| {t['side_rows_lost']} of {t['returned']} |"
        )
    return "\n".join(lines)


def results_dir() -> Path:
    """Where results go: benchmarks/results/, or $BENCH_RESULTS (the quick
    mode of benchmarks/all.py, so its figures never replace a full run's)."""
    folder = Path(
        os.environ.get("BENCH_RESULTS", Path(__file__).resolve().parents[1] / "results")
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--hot", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--only", nargs="*", help="system names (default: all)")
    args = parser.parse_args()
    names = [n for n in SYSTEMS if not args.only or n in args.only or n == FLOOR]
    for name in names:
        interpreter(name)  # install every venv before timing anything
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for repeat in range(args.repeats):
        order = names if repeat % 2 == 0 else list(reversed(names))
        for name in order:
            result = run_one(name, args, repeat)
            runs[name].append(result)
            print(
                f"repeat {repeat + 1}: {name}: {json.dumps(result)[:160]}", flush=True
            )
    summary = summarise(runs)
    markdown = table(summary)
    command = "python benchmarks/peers/run.py " + " ".join(sys.argv[1:])
    out = results_dir() / f"peers-{datetime.date.today()}.json"
    out.write_text(
        json.dumps(
            {
                "command": command,
                "machine": platform.platform(),
                "python": platform.python_version(),
                "args": vars(args),
                "runs": runs,
                "summary": summary,
            },
            indent=2,
        )
    )
    print(f"\ncommand: {command}\n\n{markdown}\n\nwritten: {out}")


if __name__ == "__main__":
    main()

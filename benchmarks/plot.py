"""Draw docs/img/performance.png from the newest peers and scaling results,
docs/img/batches.png from the newest bulk results and docs/img/requests.png
from the newest request benchmark.

    make bench                                   # runs this last
    .venv/bin/python benchmarks/plot.py

Needs matplotlib (``make bench`` installs it; it is not a dependency of the
library or of its tests).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
# all.py --quick points $BENCH_RESULTS elsewhere: its plots go there too.
RESULTS = Path(os.environ.get("BENCH_RESULTS", ROOT / "benchmarks" / "results"))
IMAGES = RESULTS if "BENCH_RESULTS" in os.environ else ROOT / "docs" / "img"
OUT = IMAGES / "performance.png"
BATCHES = IMAGES / "batches.png"
REQUESTS = IMAGES / "requests.png"


def newest(prefix: str) -> Path:
    found = sorted(RESULTS.glob(f"{prefix}-*.json"))
    if not found:
        raise SystemExit(f"no {prefix}-*.json in {RESULTS}: run make bench first")
    return found[-1]


def main() -> None:
    peers_file, scaling_file = newest("peers"), newest("scaling")
    peers: dict[str, Any] = json.loads(peers_file.read_text())["summary"]
    scaling: dict[str, Any] = json.loads(scaling_file.read_text())
    systems = [n for n, s in peers.items() if "error" not in s]
    # Fastest first; the floor at the top.
    systems.sort(key=lambda n: peers[n]["hit"]["x_floor"])
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    (lat, conc), (size, tasks) = axes

    def label(name: str) -> str:
        raised = (
            peers[name]["race"]["exceptions"] + peers[name]["race_tx"]["exceptions"]
        )
        return f"{name}\n(raises when racing)" if raised else name

    labels = [label(n) for n in systems]
    ys = range(len(systems))
    hit = [peers[n]["hit"]["x_floor"] for n in systems]
    miss = [peers[n]["miss"]["x_floor"] for n in systems]
    lat.barh([y - 0.2 for y in ys], hit, height=0.4, label="hit")
    lat.barh([y + 0.2 for y in ys], miss, height=0.4, label="miss")
    lat.axvline(2.0, color="grey", linestyle=":", linewidth=1)
    lat.set_yticks(list(ys), labels)
    lat.set_xlim(0, max(hit + miss) * 1.15)
    lat.invert_yaxis()
    lat.set_xlabel("median latency, × raw asyncpg (lower is better)")
    lat.set_title("get_or_create, one coroutine")
    lat.legend(loc="upper right")

    share = [100 * peers[n]["hit_conc"]["of_floor"] for n in systems]
    conc.barh(list(ys), share, color="tab:green")
    conc.axvline(50, color="grey", linestyle=":", linewidth=1)
    conc.set_yticks(list(ys), labels)
    conc.invert_yaxis()
    conc.set_xlabel("% of raw asyncpg's hits/s (higher is better)")
    conc.set_title("get_or_create hits, 32 coroutines, pool of 20")

    rows = [r["rows"] for r in scaling["table_size"]]
    for workload, style in (("hit_us", "-"), ("miss_us", "--")):
        for system, colour in (("floor", "tab:grey"), ("ours", "tab:blue")):
            values = [r[workload][system] for r in scaling["table_size"]]
            who = "raw asyncpg" if system == "floor" else "sqlalchemy-objects"
            size.plot(
                rows,
                values,
                style,
                marker="o",
                color=colour,
                label=f"{who} {workload.split('_')[0]}",
            )
    size.set_xscale("log")
    size.set_xlabel("rows in the table")
    size.set_ylabel("median µs per call")
    size.set_ylim(bottom=0)
    size.set_title("latency as the table grows")
    size.legend()

    counts = [r["tasks"] for r in scaling["tasks"]]
    for system, colour in (("floor", "tab:grey"), ("ours", "tab:blue")):
        tasks.plot(
            counts,
            [r["ops"][system] for r in scaling["tasks"]],
            marker="o",
            color=colour,
            label="raw asyncpg" if system == "floor" else "sqlalchemy-objects",
        )
    tasks.set_xscale("log", base=2)
    tasks.set_xticks(counts, [str(c) for c in counts])
    tasks.set_xlabel("coroutines (one process, pool of 20)")
    tasks.set_ylabel("hits per second")
    tasks.set_ylim(bottom=0)
    tasks.set_title("throughput as concurrency grows")
    tasks.legend()

    fig.suptitle(
        f"sqlalchemy-objects get_or_create on PostgreSQL "
        f"({peers_file.name}, {scaling_file.name})",
        fontsize=11,
    )
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=90)
    print(f"written: {OUT}", file=sys.stderr)
    plot_batches()
    plot_requests()


def plot_batches() -> None:
    """1,000 keys, half existing: sequential calls, one bulk call, asyncpg by hand."""
    source = newest("bulk")
    bulk: dict[str, Any] = json.loads(source.read_text())
    ways = [
        ("1,000 get_or_create calls", "sequential"),
        ("one bulk_get_or_create", "bulk"),
        ("asyncpg by hand", "asyncpg"),
    ]
    fig, ax = plt.subplots(figsize=(8, 3))
    values = [bulk["median_ms"][key] for _, key in ways]
    ax.barh(range(len(ways)), values, color=["tab:grey", "tab:blue", "tab:green"])
    ax.set_yticks(range(len(ways)), [label for label, _ in ways])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median ms for 1,000 keys (half existing), log scale")
    for y, value in enumerate(values):
        ax.text(value, y, f" {value:.1f} ms", va="center")
    ax.set_title(f"bulk_get_or_create on PostgreSQL ({source.name})", fontsize=10)
    fig.tight_layout()
    fig.savefig(BATCHES, dpi=90)
    print(f"written: {BATCHES}", file=sys.stderr)


def plot_requests() -> None:
    """Requests/s and p99 of each endpoint over the raw endpoint's, per worker count."""
    source = newest("requests")
    rows: list[dict[str, Any]] = json.loads(source.read_text())["results"]
    workers = sorted({r["workers"] for r in rows})
    endpoints = list(dict.fromkeys(r["endpoint"] for r in rows))
    fig, (rps, p99) = plt.subplots(1, 2, figsize=(12, 3.8))
    width = 0.8 / len(workers)
    for i, count in enumerate(workers):
        by = {r["endpoint"]: r for r in rows if r["workers"] == count}
        ys = [y + (i - (len(workers) - 1) / 2) * width for y in range(len(endpoints))]
        label = f"{count} worker" + ("s" if count > 1 else "")
        rps.barh(ys, [by[e]["rps_x_raw"] for e in endpoints], height=width, label=label)
        p99.barh(
            ys, [by[e]["p99_ms_x_raw"] for e in endpoints], height=width, label=label
        )
    for ax in (rps, p99):
        ax.set_yticks(range(len(endpoints)), endpoints)
        ax.invert_yaxis()
        ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
        ax.legend(loc="lower right")
    rps.set_xlabel("requests/s, × the raw asyncpg endpoint (higher is better)")
    p99.set_xlabel("p99 latency, × the raw endpoint (lower is better)")
    fig.suptitle(
        f"POST /items/{{key}} through uvicorn, wrk with 64 connections ({source.name})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(REQUESTS, dpi=90)
    print(f"written: {REQUESTS}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Every benchmark, one after the other, then the plots: what ``make bench`` runs.

    .venv/bin/python benchmarks/all.py            # the full run (about 20 minutes)
    .venv/bin/python benchmarks/all.py --quick    # fewer calls and repeats (a few minutes)

Each script writes its own JSON under benchmarks/results/ (named by date);
this prints each one's wall time and stops at the first that fails. The quick
mode is for development: its ratios are noisier, compare them only with each
other. It writes its JSON and plots to benchmarks/results/quick/ (not kept
in git), so that it never replaces a full run's figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: script -> (full arguments, quick arguments)
STEPS: list[tuple[str, list[str], list[str]]] = [
    ("get_or_create.py", ["--calls", "3000"], ["--calls", "500"]),
    (
        "peers/run.py",
        ["--repeats", "3"],
        ["--repeats", "1", "--calls", "300", "--rounds", "20"],
    ),
    (
        "backends.py",
        ["--calls", "1000", "--blocks", "5"],
        ["--calls", "300", "--blocks", "3", "--rounds", "5"],
    ),
    (
        "bulk.py",
        ["--keys", "1000", "--repeats", "5"],
        ["--keys", "1000", "--repeats", "2"],
    ),
    ("scaling.py", [], ["--sizes", "2", "--memory-calls", "10000", "--seconds", "1"]),
    ("pgbouncer.py", ["--calls", "1000"], ["--calls", "300", "--blocks", "3"]),
    ("web_requests.py", ["--repeats", "3", "--seconds", "5"], ["--quick"]),
    ("plot.py", [], []),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--skip", action="append", default=[], help="a script to leave out"
    )
    args = parser.parse_args()
    env = dict(os.environ)
    if args.quick:
        env["BENCH_RESULTS"] = str(HERE / "results" / "quick")
    started = time.monotonic()
    for script, full, quick in STEPS:
        if script in args.skip:
            continue
        command = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        print(f"== {' '.join(command[1:])}", flush=True)
        began = time.monotonic()
        subprocess.run(command, check=True, env=env)
        print(f"== {script}: {time.monotonic() - began:.0f} s", flush=True)
    print(f"== all: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()

"""get_or_create through PgBouncer (transaction mode) against direct connections.

    .venv/bin/python benchmarks/pgbouncer.py --calls 1000

Starts a PgBouncer of its own on a free port in front of 127.0.0.1:5432 (the
tests' helper, tests/deployments/pgbouncer.py), then times get_or_create hits
and misses, one coroutine, on four set-ups interleaved in blocks so machine
noise hits them alike: direct with the defaults; direct with the pooler's
settings (unnamed statements: what pgbouncer=True costs by itself); through
PgBouncer with pgbouncer=True; and the same with the one-statement path off.
Medians in microseconds and the ratio to direct; JSON to
benchmarks/results/pgbouncer-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import String  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column  # noqa: E402

from sqlalchemy_objects import Database, ManagerMixin  # noqa: E402
from tests.deployments.pgbouncer import running_bouncer  # noqa: E402

DIRECT = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


class Base(ManagerMixin, DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "bench_pgbouncer_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    value: Mapped[str] = mapped_column(String(64), default="v")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="timed calls per path")
    parser.add_argument("--blocks", type=int, default=5)
    args = parser.parse_args()
    with running_bouncer() as bouncer:
        setups = {
            "direct, defaults": Database(DIRECT),
            "direct, pgbouncer=True settings": Database(DIRECT, pgbouncer=True),
            "PgBouncer, pgbouncer=True": Database(bouncer.url(), pgbouncer=True),
            "PgBouncer, pgbouncer=True, one-statement path off": Database(
                bouncer.url(), pgbouncer=True, fast_get_or_create=False
            ),
        }
        admin = setups["direct, defaults"]
        admin.bind(Base)
        await admin.drop_all()
        await admin.create_all()
        await Item.objects.bulk_create([Item(key=f"hot-{n}") for n in range(1000)])
        samples: dict[str, dict[str, list[float]]] = {
            name: {"hit": [], "miss": []} for name in setups
        }
        per_block = max(args.calls // args.blocks, 1)
        fresh = 0
        for _ in range(args.blocks):
            for name, db in setups.items():
                objects = Item.objects.using(db)
                for kind in ("hit", "miss"):
                    for n in range(per_block + 20):
                        fresh += 1
                        key = f"hot-{n % 1000}" if kind == "hit" else f"new-{fresh}"
                        t0 = time.perf_counter_ns()
                        await objects.get_or_create(key=key)
                        if n >= 20:  # warm-up per block
                            samples[name][kind].append(
                                (time.perf_counter_ns() - t0) / 1000
                            )
        await admin.drop_all()
        for db in setups.values():
            await db.dispose()
    base = {
        k: statistics.median(samples["direct, defaults"][k]) for k in ("hit", "miss")
    }
    command = f"benchmarks/pgbouncer.py --calls {args.calls} --blocks {args.blocks}"
    print(f"command: {command}")
    print(f"{'setup':<52} {'hit µs':>8} {'× direct':>9} {'miss µs':>8} {'× direct':>9}")
    table = {}
    for name, kinds in samples.items():
        hit, miss = (statistics.median(kinds[k]) for k in ("hit", "miss"))
        table[name] = {
            "hit_us": hit,
            "miss_us": miss,
            "hit_x": hit / base["hit"],
            "miss_x": miss / base["miss"],
        }
        print(
            f"{name:<52} {hit:>8.1f} {hit / base['hit']:>9.2f} {miss:>8.1f} {miss / base['miss']:>9.2f}"
        )
    folder = Path(os.environ.get("BENCH_RESULTS", ROOT / "benchmarks" / "results"))
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240  (all.py --quick)
    out = folder / f"pgbouncer-{datetime.date.today().isoformat()}.json"
    out.write_text(json.dumps({"command": command, "results": table}, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())

"""A PostgreSQL primary with a streaming hot-standby replica, of the tests' own.

Made with PostgreSQL 15's binaries in a temporary directory, on free ports,
as the ``postgres`` user when the tests run as root (``initdb`` refuses root):
``initdb`` for the primary (``wal_level=replica``), ``pg_basebackup -R -X
stream -C -S <slot>`` for the replica (``hot_standby=on``), both started with
``pg_ctl``. Stopped and removed by the context manager that started them; the
machine's own server on 5432 is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.conftest import PG_URL
from tests.deployments.pgbouncer import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
DATABASE = "test"


def available() -> str | None:
    """Why a cluster cannot be made here (None: it can)."""
    if not (BIN / "initdb").exists():
        return f"PostgreSQL 15's binaries are not in {BIN}"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "runuser is needed to run PostgreSQL as the postgres user"
    return None


class Cluster:
    """The primary and its replica; ``stop_replica()`` / ``start_replica()``
    for the tests of a replica that is down."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.as_postgres = (
            ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        )
        self.primary_port = free_port()
        self.replica_port = free_port()

    def url(self, port: int) -> str:
        """The URL of the server on *port*, with the suite's PostgreSQL driver
        (asyncpg, or psycopg when make test reruns on it)."""
        driver = make_url(PG_URL).get_driver_name()
        return f"postgresql+{driver}://postgres@127.0.0.1:{port}/{DATABASE}"

    @property
    def primary_url(self) -> str:
        return self.url(self.primary_port)

    @property
    def replica_url(self) -> str:
        return self.url(self.replica_port)

    def run(self, *args: str | Path) -> str:
        done = subprocess.run(
            [*self.as_postgres, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def psql(self, port: int, sql: str, database: str = DATABASE) -> str:
        return self.run(
            BIN / "psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
            "-d", database, "-Atc", sql,
        )  # fmt: skip

    def pg_ctl(self, name: str, action: str) -> None:
        data = self.root / name
        extra = (
            ["-m", "fast"]
            if action == "stop"
            else ["-l", str(self.root / f"{name}.log")]
        )
        self.run(BIN / "pg_ctl", "-D", data, "-w", "-t", "60", *extra, action)

    def start(self) -> None:
        primary = self.root / "primary"
        self.run(
            BIN / "initdb",
            "-D",
            primary,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        )
        settings = (
            f"port = {self.primary_port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.root}'\nwal_level = replica\n"
            "max_wal_senders = 5\nmax_replication_slots = 5\nhot_standby = on\n"
            "fsync = off\nfull_page_writes = off\nmax_connections = 200\n"
        )
        with (primary / "postgresql.conf").open("a") as conf:
            conf.write(settings)
        self.pg_ctl("primary", "start")
        self.psql(self.primary_port, f"CREATE DATABASE {DATABASE}", database="postgres")
        replica = self.root / "replica"
        self.run(
            BIN / "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port),
            "-U", "postgres", "-D", replica, "-R", "-X", "stream", "-c", "fast",
            "-C", "-S", "replica_slot",
        )  # fmt: skip
        with (replica / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.replica_port}\n")
        self.start_replica()

    def start_replica(self) -> None:
        self.pg_ctl("replica", "start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):
                if (
                    self.psql(self.replica_port, "SELECT pg_is_in_recovery()").strip()
                    == "t"
                ):
                    return
            time.sleep(0.1)
        raise RuntimeError("the replica did not come up in recovery")

    def stop_replica(self) -> None:
        self.pg_ctl("replica", "stop")

    def stop(self) -> None:
        for name in ("replica", "primary"):
            with contextlib.suppress(RuntimeError):
                self.pg_ctl(name, "stop")


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="sqlalchemy-objects-replica-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    cluster = Cluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)

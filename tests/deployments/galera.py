"""A 3-node MariaDB Galera cluster of the tests' own.

Three ``mariadbd`` processes with their own datadirs (``mariadb-install-db``)
on free ports, ``wsrep_provider=/usr/lib/galera/libgalera_smm.so`` (galera-4
ships with Debian's mariadb-server), the first bootstrapped with
``--wsrep-new-cluster`` and the others joining one at a time until each says
``wsrep_local_state_comment = Synced``. Run as the ``mysql`` user when the
tests run as root; stopped and removed by the context manager that started
them. The machine's own server on 3306 is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.conftest import MARIADB_URL

PROVIDER = Path("/usr/lib/galera/libgalera_smm.so")
DATABASE = "test"


def available() -> str | None:
    """Why a cluster cannot be made here (None: it can)."""
    for tool in ("mariadbd", "mariadb-install-db", "rsync", "mariadb"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} is needed for a Galera cluster"
    if not PROVIDER.exists():
        return f"the Galera provider {PROVIDER} is missing (Debian's galera-4)"
    return None


def free_ports(count: int) -> list[int]:
    """*count* distinct free ports (the sockets are held until all are chosen,
    so no port is handed out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _mariadbd() -> str:
    return shutil.which("mariadbd") or "/usr/sbin/mariadbd"


class Node:
    def __init__(
        self, root: Path, number: int, cluster_ports: list[int], ports: list[int]
    ) -> None:
        self.number = number
        self.dir = root / f"node{number}"
        self.port, self.ist, self.sst = ports
        self.gcomm = cluster_ports[number - 1]
        self.socket = self.dir / "mysqld.sock"
        self.process: subprocess.Popen[bytes] | None = None
        addresses = ",".join(f"127.0.0.1:{p}" for p in cluster_ports)
        self.config = (
            "[mysqld]\n"
            f"datadir={self.dir / 'data'}\nsocket={self.socket}\nport={self.port}\n"
            f"bind-address=127.0.0.1\npid-file={self.dir / 'mysqld.pid'}\n"
            f"log-error={self.dir / 'error.log'}\n"
            "skip-name-resolve\nskip-log-bin\n"
            "binlog_format=ROW\ndefault_storage_engine=InnoDB\n"
            "innodb_autoinc_lock_mode=2\ninnodb_flush_log_at_trx_commit=0\n"
            "innodb_buffer_pool_size=64M\ninnodb_log_file_size=16M\n"
            "wsrep_on=ON\n"
            f"wsrep_provider={PROVIDER}\n"
            f"wsrep_cluster_address=gcomm://{addresses}\n"
            "wsrep_cluster_name=sqlalchemy_objects_tests\n"
            f"wsrep_node_address=127.0.0.1:{self.gcomm}\n"
            f"wsrep_node_name=node{number}\n"
            f"wsrep_provider_options=gmcast.listen_addr=tcp://127.0.0.1:{self.gcomm};"
            f"ist.recv_addr=127.0.0.1:{self.ist};gcache.size=32M\n"
            f"wsrep_sst_receive_address=127.0.0.1:{self.sst}\n"
            "wsrep_sst_method=rsync\n"
        )

    def url(self) -> str:
        """This node's URL, with the suite's MariaDB driver (asyncmy, or
        aiomysql when make test reruns on it)."""
        driver = make_url(MARIADB_URL).get_driver_name()
        return f"mysql+{driver}://root@127.0.0.1:{self.port}/{DATABASE}"

    def query(self, sql: str) -> str:
        done = subprocess.run(
            ["mariadb", f"--socket={self.socket}", "-uroot", "-N", "-B", "-e", sql],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        return done.stdout.strip()

    def log(self) -> str:
        path = self.dir / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"


class Galera:
    """Three synced nodes; ``nodes[i].url()`` for each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.as_mysql = ["runuser", "-u", "mysql", "--"] if os.geteuid() == 0 else []
        ports = free_ports(12)
        self.nodes = [
            Node(root, n, ports[:3], ports[3 * n : 3 * n + 3]) for n in (1, 2, 3)
        ]

    def start(self) -> None:
        for node in self.nodes:
            node.dir.mkdir()
            (node.dir / "my.cnf").write_text(node.config)
            if self.as_mysql:
                shutil.chown(node.dir, "mysql")
                shutil.chown(node.dir / "my.cnf", "mysql")
            subprocess.run(
                [
                    *self.as_mysql,
                    "mariadb-install-db",
                    f"--defaults-file={node.dir / 'my.cnf'}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ],
                capture_output=True,
                timeout=120,
                check=True,
            )
        for index, node in enumerate(self.nodes):
            extra = ["--wsrep-new-cluster"] if index == 0 else []
            node.process = subprocess.Popen(
                [
                    *self.as_mysql,
                    _mariadbd(),
                    f"--defaults-file={node.dir / 'my.cnf'}",
                    *extra,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self._wait_synced(node, index + 1)
        first = self.nodes[0]
        first.query(
            f"CREATE DATABASE IF NOT EXISTS {DATABASE}; "
            "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; "
            "GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(DATABASE in n.query("SHOW DATABASES").split() for n in self.nodes):
                return
            time.sleep(0.1)
        raise RuntimeError("the test database did not reach every node")

    def _wait_synced(self, node: Node, size: int) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if node.process is not None and node.process.poll() is not None:
                raise RuntimeError(f"node{node.number} exited: {node.log()}")
            with contextlib.suppress(RuntimeError):
                state = node.query("SHOW STATUS LIKE 'wsrep_local_state_comment'")
                cluster = node.query("SHOW STATUS LIKE 'wsrep_cluster_size'")
                if state.endswith("Synced") and cluster.split()[-1] == str(size):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"node{node.number} did not sync: {node.log()}")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            process = node.process
            if process is None:
                continue
            pid_file = node.dir / "mysqld.pid"
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
                process.kill()
                process.wait(timeout=30)


def _started() -> tuple[Galera, Path]:
    """A started cluster; a second try on new ports if the first fails (a port
    taken meanwhile by another process)."""
    for attempt in (1, 2):
        root = Path(tempfile.mkdtemp(prefix="sqlalchemy-objects-galera-"))
        if os.geteuid() == 0:
            shutil.chown(root, "mysql")
        cluster = Galera(root)
        try:
            cluster.start()
            return cluster, root
        except (RuntimeError, subprocess.SubprocessError):
            cluster.stop()
            shutil.rmtree(root, ignore_errors=True)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def running_galera() -> Iterator[Galera]:
    cluster, root = _started()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)

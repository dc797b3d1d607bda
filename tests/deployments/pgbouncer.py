"""A PgBouncer of the tests' own, in transaction mode, in front of the test server.

Started from Debian's ``pgbouncer`` package (``.ci/run`` installs it) on a free
port with an ini of its own, run as the ``postgres`` user, and stopped by the
fixture that started it. The machine's own servers are never reconfigured.
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

from tests.conftest import PG_URL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Bouncer:
    """One PgBouncer process; ``kill()`` and ``start()`` for fault tests."""

    def __init__(self, root: Path, port: int, as_postgres: list[str]) -> None:
        self.root = root
        self.port = port
        self.as_postgres = as_postgres
        self.ini = root / "pgbouncer.ini"
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, driver: str = "asyncpg", **query: str) -> str:
        server = make_url(PG_URL)
        url = server.set(
            drivername=f"postgresql+{driver}", host="127.0.0.1", port=self.port
        ).update_query_dict(query)
        return url.render_as_string(hide_password=False)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *self.as_postgres,
                shutil.which("pgbouncer") or "pgbouncer",
                str(self.ini),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"PgBouncer did not listen on {self.port}: {self.log()}")

    def _pid(self) -> int | None:
        try:
            return int((self.root / "pgbouncer.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _signal(self, sig: signal.Signals) -> None:
        """Signal PgBouncer itself (not runuser, which may not pass it on)."""
        pid = self._pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
        (self.root / "pgbouncer.pid").unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients or servers."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGINT)  # PgBouncer's "safe shutdown"

    def log(self) -> str:
        path = self.root / "pgbouncer.log"
        return path.read_text()[-2000:] if path.exists() else "(no log)"


@contextlib.contextmanager
def running_bouncer() -> Iterator[Bouncer]:
    """A running PgBouncer (pool_mode=transaction, auth_type=trust) in front of
    the test PostgreSQL server, stopped and removed at the end."""
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    server = make_url(PG_URL)
    root = Path(tempfile.mkdtemp(prefix="sqlalchemy-objects-pgbouncer-"))
    if as_postgres:
        shutil.chown(root, "postgres")
    port = free_port()
    (root / "users.txt").write_text(f'"{server.username or "postgres"}" ""\n')
    (root / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.host or '127.0.0.1'} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {root / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 20\nmax_client_conn = 500\n"
        "ignore_startup_parameters = extra_float_digits\n"
        "server_login_retry = 1\n"
        f"logfile = {root / 'pgbouncer.log'}\npidfile = {root / 'pgbouncer.pid'}\n"
    )
    for path in root.iterdir():
        if as_postgres:
            shutil.chown(path, "postgres")
    bouncer = Bouncer(root, port, as_postgres)
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()
        shutil.rmtree(root, ignore_errors=True)

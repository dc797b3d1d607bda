"""Fixtures of the deployment tests: a PgBouncer of their own."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.deployments.pgbouncer import Bouncer, running_bouncer


@pytest.fixture(name="bouncer")
def _bouncer() -> Iterator[Bouncer]:
    """A running PgBouncer; fails under CI=true if it cannot be started."""
    as_postgres = os.geteuid() == 0
    if shutil.which("pgbouncer") is None or (
        as_postgres and shutil.which("runuser") is None
    ):
        message = "pgbouncer (Debian's package) and runuser are needed"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with running_bouncer() as bouncer:
        yield bouncer

"""Fixtures: a real MariaDB with binlog on (a throwaway one), and clean-up after each test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from cdc._testing.mariadb import MariaDB
from tests.support import STARTED


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    """A throwaway MariaDB on a temporary datadir and a free port, binlog on (ROW, FULL)."""
    if os.environ.get("CDC_TEST_MYSQL_URL"):
        # The tests restart the server, kill its connections, create users and read its
        # binlog from the start of each test: they need a server of their own.
        pytest.fail(
            "CDC_TEST_MYSQL_URL is set, but these tests need a server they may restart and "
            "reconfigure; unset it to let them start a throwaway MariaDB (mariadbd)"
        )
    server = MariaDB().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _no_daemon_left_behind() -> Iterator[None]:
    """A test that failed half-way must not leave its `cdc run` for the next ones, and
    no test leaves a daemon's log file behind."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.log_path.unlink(missing_ok=True)

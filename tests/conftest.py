"""Fixtures: a real MariaDB with binlog on (throwaway, or CDC_TEST_MYSQL_URL)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from cdc.sandbox import MariaDB


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    """A throwaway MariaDB on a temporary datadir and a free port, binlog on (ROW, FULL)."""
    if os.environ.get("CDC_TEST_MYSQL_URL"):
        pytest.fail("CDC_TEST_MYSQL_URL is not supported by this fixture yet")
    server = MariaDB().start()
    try:
        yield server
    finally:
        server.stop()

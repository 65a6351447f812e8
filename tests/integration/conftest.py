"""Fixtures of the integration tests: a fresh event database, an end-to-end set-up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cdc._testing.mariadb import MariaDB
from tests.e2e_support import Setup, new_setup
from tests.http_support import EventDb, new_event_db


@pytest.fixture
def event_db(mariadb: MariaDB) -> Iterator[EventDb]:
    with new_event_db(mariadb) as db:
        yield db


@pytest.fixture
def e2e(mariadb: MariaDB) -> Iterator[Setup]:
    """A schema to capture (one `patient` table), a name for the daemon's database, a port."""
    with new_setup(mariadb) as setup:
        yield setup

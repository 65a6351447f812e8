"""An installation made by an older version is brought up to date by `cdc init` and
`cdc run`, keeping every row and id."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cdc._testing.mariadb import MariaDB
from cdc.settings import Dsn
from cdc.store import schema
from tests.support import (
    events,
    fresh_schema,
    start_daemon,
    stop_daemon,
    wait_for_events,
    wait_ready,
)

# The event table as versions before 0.2 created it (type as an ENUM of the row changes).
OLD_EVENT_TABLE = """CREATE TABLE {db}.event (
  `id` BIGINT UNSIGNED NOT NULL, `timestamp` DATETIME(6) NOT NULL, `user_id` VARCHAR(255) NULL,
  `type` ENUM('CREATE','UPDATE','DELETE') NOT NULL, `schema_name` VARCHAR(64) NOT NULL,
  `table_name` VARCHAR(64) NOT NULL, `row_id` VARCHAR(1024) NULL, `data` JSON NOT NULL,
  `txn` VARCHAR(255) NOT NULL, PRIMARY KEY (`id`), KEY `event_by_time` (`timestamp`),
  KEY `event_by_table_time` (`schema_name`, `table_name`, `timestamp`),
  KEY `event_by_row` (`schema_name`, `table_name`, `row_id`(255), `id`),
  KEY `event_by_user` (`user_id`, `id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"""


@pytest.fixture
def old_install(mariadb: MariaDB) -> Iterator[tuple[MariaDB, Any]]:
    conn = fresh_schema(mariadb, "mig_app", "CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS mig_cdc")
        cur.execute("CREATE DATABASE mig_cdc")
        cur.execute(OLD_EVENT_TABLE.format(db="mig_cdc"))
        statements = schema.ddl_statements()
        cur.execute("USE mig_cdc")
        cur.execute(statements[1])  # the checkpoint table, unchanged
        cur.executemany(
            "INSERT INTO mig_cdc.event VALUES (%s, %s, %s, %s, 'mig_app', 't', '1', %s, %s)",
            [
                (1, "2026-01-01 00:00:00", None, "CREATE", '{"after": {"id": 1}}', "0-1-1"),
                (2, "2026-01-01 00:00:01", "7", "DELETE", '{"before": {"id": 1}}', "0-1-2"),
            ],
        )
    yield mariadb, conn
    conn.close()


def test_init_widens_the_type_column_keeping_the_rows(old_install: tuple[MariaDB, Any]) -> None:
    server, conn = old_install
    dsn = Dsn.parse(f"mysql://root@127.0.0.1:{server.port}/mig_cdc")
    assert schema.init_schema(dsn) == [
        "event_type_any_name",
        "event_context_and_application_events",
    ]
    assert schema.init_schema(dsn) == []  # once only
    with conn.cursor() as cur:
        assert schema.column_type(cur, "mig_cdc", "event", "type") == "varchar(32)"
        assert schema.column_type(cur, "mig_cdc", "event", "context") == "longtext"  # JSON
    rows = events(conn, "mig_cdc")
    assert [(e["id"], e["type"], e["user_id"]) for e in rows] == [
        (1, "CREATE", None),
        (2, "DELETE", "7"),
    ]


def test_run_updates_an_old_installation_and_numbers_on(old_install: tuple[MariaDB, Any]) -> None:
    server, conn = old_install
    with conn.cursor() as cur:  # as if the old daemon had stopped at id 2
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
        cur.execute(
            "INSERT INTO mig_cdc.cdc_checkpoint (id, log_file, log_pos, last_event_id, updated_at)"
            " VALUES (1, %s, %s, 2, UTC_TIMESTAMP(6))",
            (file, pos),
        )
    proc = start_daemon(server, "--include", "mig_app.*", db="mig_cdc")
    try:
        wait_ready(conn, proc, "mig_cdc")
        with conn.cursor() as cur:
            cur.execute("INSERT INTO mig_app.t VALUES (2, 2)")
        wait_for_events(conn, 3, proc=proc, db="mig_cdc")
    finally:
        code, log = stop_daemon(proc)
    assert code == 0, log
    assert "schema_migration" in log
    assert [e["id"] for e in events(conn, "mig_cdc")] == [1, 2, 3]

"""Capture end to end against a real MariaDB: `cdc run` as a process, SQL in, events out."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from cdc.sandbox import MariaDB
from tests.support import (
    assert_replay_matches,
    cdc_command,
    events,
    start_daemon,
    stop_daemon,
    wait_for_events,
    wait_ready,
)


@pytest.fixture
def db(mariadb: MariaDB, request: pytest.FixtureRequest) -> Iterator[tuple[MariaDB, str, Any]]:
    """A fresh event database and application schema per test on the shared server."""
    name = "t_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")[:40]
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"DROP DATABASE IF EXISTS `{name}_cdc`")
        cur.execute(f"CREATE DATABASE `{name}`")
    yield mariadb, name, conn
    conn.close()


def run_sql(conn: Any, *statements: str) -> None:
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def test_init_is_idempotent(mariadb: MariaDB) -> None:
    url = f"mysql://root@127.0.0.1:{mariadb.port}/init_twice"
    shapes = []
    for _ in range(2):
        done = subprocess.run(cdc_command("init", "--dsn", url), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        conn = mariadb.connect("init_twice")
        with conn.cursor() as cur:
            cur.execute("SHOW CREATE TABLE event")
            event_ddl = cur.fetchone()[1]
            cur.execute("SHOW CREATE TABLE cdc_checkpoint")
            shapes.append((event_ddl, cur.fetchone()[1]))
        conn.close()
    assert shapes[0] == shapes[1]
    assert "event_by_row" in shapes[0][0]


def test_inserts_updates_deletes_in_commit_order(db: tuple[MariaDB, str, Any]) -> None:
    server, app, conn = db
    run_sql(
        conn,
        f"CREATE TABLE `{app}`.patient (id INT PRIMARY KEY, name VARCHAR(50), user_id INT)",
        f"CREATE TABLE `{app}`.visit (id INT PRIMARY KEY, patient_id INT, note TEXT)",
    )
    proc = start_daemon(server, db=f"{app}_cdc")
    try:
        wait_ready(conn, proc, f"{app}_cdc")
        run_sql(
            conn,
            f"INSERT INTO `{app}`.patient VALUES (1, 'Ann', 7), (2, 'Bob', 8)",
            f"UPDATE `{app}`.patient SET name = 'Anne' WHERE id = 1",
            "BEGIN",
            f"INSERT INTO `{app}`.visit VALUES (10, 1, 'checkup')",
            f"UPDATE `{app}`.patient SET user_id = 9 WHERE id = 2",
            "COMMIT",
            "BEGIN",
            f"INSERT INTO `{app}`.visit VALUES (11, 2, 'rolled back')",
            "ROLLBACK",
            f"DELETE FROM `{app}`.patient WHERE id = 2",
        )
        wait_for_events(conn, 6, proc=proc, db=f"{app}_cdc")
    finally:
        code, err = stop_daemon(proc)
    assert code == 0, err
    got = events(conn, f"{app}_cdc")
    summary = [(e["id"], e["type"], e["table_name"], e["row_id"], e["user_id"]) for e in got]
    assert summary == [
        (1, "CREATE", "patient", "1", "7"),
        (2, "CREATE", "patient", "2", "8"),
        (3, "UPDATE", "patient", "1", "7"),
        (4, "CREATE", "visit", "10", None),
        (5, "UPDATE", "patient", "2", "9"),
        (6, "DELETE", "patient", "2", "9"),
    ]
    assert got[2]["data"] == {
        "before": {"id": 1, "name": "Ann", "user_id": 7},
        "after": {"id": 1, "name": "Anne", "user_id": 7},
        "changed": ["name"],
    }
    assert got[0]["data"] == {"after": {"id": 1, "name": "Ann", "user_id": 7}}
    assert got[5]["data"] == {"before": {"id": 2, "name": "Bob", "user_id": 9}}
    # Both changes of the multi-table transaction carry the same source transaction.
    assert got[3]["txn"] == got[4]["txn"] != got[2]["txn"]
    assert all(e["schema_name"] == app for e in got)
    assert "rolled back" not in str(got)

"""Capture end to end against a real MariaDB: `cdc run` as a process, SQL in, events out."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cdc._testing.mariadb import MariaDB
from tests.support import (
    cdc_command,
    events,
    fresh_schema,
    start_daemon,
    stop_daemon,
    wait_for_events,
    wait_ready,
)


@pytest.fixture
def db(mariadb: MariaDB, request: pytest.FixtureRequest) -> Iterator[tuple[MariaDB, str, Any]]:
    """A fresh event database and application schema per test on the shared server."""
    name = "t_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")[:40]
    conn = fresh_schema(mariadb, name)
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


def test_clean_stop_mid_transaction_then_resume(db: tuple[MariaDB, str, Any]) -> None:
    """SIGTERM while a big transaction streams through: a clean exit 0 (well within the
    unit's stop timeout; the wait is long for a loaded machine), nothing half stored; the
    restart captures the whole transaction once."""
    server, app, conn = db
    run_sql(conn, f"CREATE TABLE `{app}`.t (id INT PRIMARY KEY, v VARCHAR(20))")
    proc = start_daemon(server, db=f"{app}_cdc")
    wait_ready(conn, proc, f"{app}_cdc")
    run_sql(
        conn,
        "SET SESSION max_recursive_iterations = 1000000",
        f"INSERT INTO `{app}`.t WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s"
        " WHERE n < 200000) SELECT n, CONCAT('v', n) FROM s",
    )
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"no clean stop within 60 s:\n{proc.log()[-3000:]}") from None
    assert proc.returncode == 0, proc.log()
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM `{app}_cdc`.event")
        assert cur.fetchone()[0] in (
            0,
            200000,
        )  # a source transaction is stored whole or not at all
    proc = start_daemon(server, db=f"{app}_cdc")
    try:
        wait_for_events(conn, 200000, proc=proc, db=f"{app}_cdc")
    finally:
        code, err = stop_daemon(proc)
    assert code == 0, err
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*), COUNT(DISTINCT row_id), MAX(id) FROM `{app}_cdc`.event")
        assert cur.fetchone() == (200000, 200000, 200000)


def test_logs_are_json_lines_without_row_data_or_password(db: tuple[MariaDB, str, Any]) -> None:
    server, app, conn = db
    run_sql(
        conn,
        "CREATE USER IF NOT EXISTS 'logcheck'@'%' IDENTIFIED BY 's3cret-pw'",
        "GRANT ALL PRIVILEGES ON *.* TO 'logcheck'@'%'",
        f"CREATE TABLE `{app}`.t (id INT PRIMARY KEY, secret VARCHAR(40))",
    )
    env_dsn = f"mysql://logcheck:s3cret-pw@127.0.0.1:{server.port}/{app}_cdc"
    proc = start_daemon(server, db=f"{app}_cdc", dsn=env_dsn)
    try:
        wait_ready(conn, proc, f"{app}_cdc")
        run_sql(conn, f"INSERT INTO `{app}`.t VALUES (1, 'patient-diagnosis-xyz')")
        wait_for_events(conn, 1, proc=proc, db=f"{app}_cdc")
    finally:
        code, log = stop_daemon(proc)
    assert code == 0, log
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    names = [line["event"] for line in lines]
    assert "capture_start" in names and "stopped" in names
    assert all({"event", "level", "timestamp"} <= set(line) for line in lines)
    start = next(line for line in lines if line["event"] == "capture_start")
    assert start["position"].startswith("binlog.")
    assert "patient-diagnosis-xyz" not in log
    assert "s3cret-pw" not in log


def test_status_reports_position_and_lag(db: tuple[MariaDB, str, Any]) -> None:
    server, app, conn = db
    run_sql(conn, f"CREATE TABLE `{app}`.t (id INT PRIMARY KEY)")
    proc = start_daemon(server, db=f"{app}_cdc")
    try:
        wait_ready(conn, proc, f"{app}_cdc")
        run_sql(conn, f"INSERT INTO `{app}`.t VALUES (1), (2)")
        wait_for_events(conn, 2, proc=proc, db=f"{app}_cdc")
    finally:
        code, err = stop_daemon(proc)
    assert code == 0, err
    done = subprocess.run(
        cdc_command("status", "--dsn", f"mysql://root@127.0.0.1:{server.port}/{app}_cdc"),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    report = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    report = {k.strip(): v.strip() for k, v in report.items()}
    assert report["stored position"].startswith("binlog.")
    assert report["last event id"] == "2"
    assert int(report["behind (bytes)"]) >= 0


def test_create_table_select_with_json_and_uuid_columns(db: tuple[MariaDB, str, Any]) -> None:
    """CREATE TABLE ... SELECT is one transaction holding its DDL: the new table's MariaDB
    JSON and UUID columns are still recognised."""
    server, app, conn = db
    run_sql(conn, f"CREATE TABLE `{app}`.src (id INT PRIMARY KEY, j JSON, u UUID)")
    run_sql(
        conn,
        f"INSERT INTO `{app}`.src VALUES (1, '{{\"a\": 1}}', '123e4567-e89b-12d3-a456-426614174000')",
    )
    proc = start_daemon(server, db=f"{app}_cdc")
    try:
        wait_ready(conn, proc, f"{app}_cdc")
        run_sql(
            conn,
            f"CREATE TABLE `{app}`.copy (id INT PRIMARY KEY, j JSON, u UUID)"
            f" SELECT id, j, u FROM `{app}`.src",
        )
        wait_for_events(conn, 1, proc=proc, db=f"{app}_cdc")
    finally:
        code, err = stop_daemon(proc)
    assert code == 0, err
    (event,) = events(conn, f"{app}_cdc")
    assert event["table_name"] == "copy"
    assert event["data"]["after"] == {
        "id": 1,
        "j": {"a": 1},
        "u": "123e4567-e89b-12d3-a456-426614174000",
    }


def test_every_event_of_a_transaction_has_its_commit_time(db: tuple[MariaDB, str, Any]) -> None:
    """A transaction whose statements span more than a second: the events carry the time
    of its commit (the GTID event's), not the row events' statement times."""
    server, app, conn = db
    run_sql(conn, f"CREATE TABLE `{app}`.t (id INT PRIMARY KEY)")
    proc = start_daemon(server, db=f"{app}_cdc")
    try:
        wait_ready(conn, proc, f"{app}_cdc")
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT UTC_TIMESTAMP()")
            first_statement = cur.fetchone()[0]
            cur.execute(f"INSERT INTO `{app}`.t VALUES (1)")
            cur.execute("DO SLEEP(1.5)")
            cur.execute(f"INSERT INTO `{app}`.t VALUES (2)")
            cur.execute("COMMIT")
            cur.execute("SELECT UTC_TIMESTAMP()")
            committed = cur.fetchone()[0]
        wait_for_events(conn, 2, proc=proc, db=f"{app}_cdc")
    finally:
        code, log = stop_daemon(proc)
    assert code == 0, log
    stamps = [e["timestamp"] for e in events(conn, f"{app}_cdc")]
    assert stamps[0] == stamps[1]
    assert first_statement < stamps[0] <= committed

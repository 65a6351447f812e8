"""Capture that cannot go on stops with the cause and the fix, never skips silently."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from cdc._testing.mariadb import MariaDB
from tests.support import (
    events,
    fresh_schema,
    start_daemon,
    stop_daemon,
    wait_for_events,
    wait_ready,
)


@pytest.fixture
def app(mariadb: MariaDB, request: pytest.FixtureRequest) -> Iterator[tuple[MariaDB, str, Any]]:
    db = request.node.name[:30]
    conn = fresh_schema(mariadb, db, "CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")
    yield mariadb, db, conn
    conn.close()


def wait_exit(proc: Any, timeout: float = 60) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            _, log = stop_daemon(proc)
            raise AssertionError(f"the daemon kept running:\n{log[-3000:]}")
        time.sleep(0.1)
    return proc.returncode, proc.log()


def test_purged_position_stops_with_the_fix(app: tuple[MariaDB, str, Any]) -> None:
    server, db, conn = app
    proc = start_daemon(server, db=f"{db}_cdc")
    wait_ready(conn, proc, f"{db}_cdc")
    code, _ = stop_daemon(proc)
    assert code == 0
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO `{db}`.t VALUES (1, 1)")  # missed while down ...
        # ... and its binlog purged. (MariaDB keeps a file InnoDB may still need for
        # recovery, so point the checkpoint at a purged file and GTID directly.)
        cur.execute("SHOW BINARY LOGS")
        first = cur.fetchone()[0]
        gone = first.rsplit(".", 1)[0] + ".000000"
        cur.execute(
            f"UPDATE `{db}_cdc`.cdc_checkpoint SET log_file = %s, gtid = '0-4242-7'", (gone,)
        )
    proc = start_daemon(server, db=f"{db}_cdc")
    code, log = wait_exit(proc)
    assert code == 1
    assert "cannot send the binlog from the stored position" in log
    assert "--from-now" in log
    # The operator's way out: start again from now, knowingly.
    proc = start_daemon(server, "--from-now", db=f"{db}_cdc")
    try:
        wait_ready(conn, proc, f"{db}_cdc")  # its new baseline is stored
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO `{db}`.t VALUES (2, 2)")
        wait_for_events(conn, 1, proc=proc, db=f"{db}_cdc")
    finally:
        code, log = stop_daemon(proc)
    assert code == 0, log
    assert [e["row_id"] for e in events(conn, f"{db}_cdc")] == ["2"]


def test_statement_logged_change_stops_capture(app: tuple[MariaDB, str, Any]) -> None:
    server, db, conn = app
    proc = start_daemon(server, db=f"{db}_cdc")
    wait_ready(conn, proc, f"{db}_cdc")
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO `{db}`.t VALUES (1, 1)")
        cur.execute("SET SESSION binlog_format = 'STATEMENT'")
        cur.execute(f"INSERT INTO `{db}`.t VALUES (2, 2)")
        cur.execute("SET SESSION binlog_format = 'ROW'")
    code, log = wait_exit(proc)
    assert code == 1
    assert "statement-logged change" in log and "binlog_format" in log
    assert [e["row_id"] for e in events(conn, f"{db}_cdc")] == ["1"]


def test_savepoints_stay_inside_their_transaction(app: tuple[MariaDB, str, Any]) -> None:
    server, db, conn = app
    proc = start_daemon(server, db=f"{db}_cdc")
    try:
        wait_ready(conn, proc, f"{db}_cdc")
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"INSERT INTO `{db}`.t VALUES (1, 1)")
            cur.execute("SAVEPOINT a")
            cur.execute(f"INSERT INTO `{db}`.t VALUES (2, 2)")
            cur.execute("ROLLBACK TO SAVEPOINT a")
            cur.execute("SAVEPOINT b")
            cur.execute(f"INSERT INTO `{db}`.t VALUES (3, 3)")
            cur.execute("COMMIT")
            cur.execute(f"INSERT INTO `{db}`.t VALUES (4, 4)")
        wait_for_events(conn, 3, proc=proc, db=f"{db}_cdc")
    finally:
        code, log = stop_daemon(proc)
    assert code == 0, log
    got = events(conn, f"{db}_cdc")
    assert [e["row_id"] for e in got] == ["1", "3", "4"]
    assert got[0]["txn"] == got[1]["txn"] != got[2]["txn"]


def test_revoked_privilege_stops_with_the_grant(app: tuple[MariaDB, str, Any]) -> None:
    server, db, conn = app
    with conn.cursor() as cur:
        cur.execute("DROP USER IF EXISTS 'revoked'@'%'")
        cur.execute("CREATE USER 'revoked'@'%' IDENTIFIED BY 'pw'")
        cur.execute("GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT ON *.* TO 'revoked'@'%'")
        cur.execute(f"GRANT ALL ON `{db}_cdc`.* TO 'revoked'@'%'")
    proc = start_daemon(server, dsn=f"mysql://revoked:pw@127.0.0.1:{server.port}/{db}_cdc")
    try:
        wait_ready(conn, proc, f"{db}_cdc")
        with conn.cursor() as cur:
            cur.execute("REVOKE REPLICATION SLAVE ON *.* FROM 'revoked'@'%'")
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'revoked'")
            for (thread_id,) in cur.fetchall():
                # A short-lived connection of the daemon may be gone by now.
                with contextlib.suppress(pymysql.err.OperationalError):
                    cur.execute(f"KILL {thread_id}")
        code, log = wait_exit(proc)
    finally:
        if proc.poll() is None:
            stop_daemon(proc)
    assert code == 1
    assert "lacks a privilege" in log and "GRANT REPLICATION SLAVE" in log


def test_compressed_events_stop_capture_instead_of_vanishing(app: tuple[MariaDB, str, Any]) -> None:
    """A setting turned on under a running daemon writes events the binlog library would
    drop in silence: capture stops at the first, naming the setting."""
    server, db, conn = app
    with conn.cursor() as cur:
        cur.execute(f"ALTER TABLE `{db}`.t ADD COLUMN big TEXT")
    proc = start_daemon(server, db=f"{db}_cdc")
    try:
        wait_ready(conn, proc, f"{db}_cdc")
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO `{db}`.t VALUES (1, 1, 'small')")
            cur.execute("SET GLOBAL log_bin_compress = ON")
            cur.execute(f"INSERT INTO `{db}`.t VALUES (2, 2, REPEAT('x', 5000))")
        code, log = wait_exit(proc)
    finally:
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL log_bin_compress = OFF")
        if proc.poll() is None:
            stop_daemon(proc)
    assert code == 1
    assert "log_bin_compress = OFF" in log
    assert [e["row_id"] for e in events(conn, f"{db}_cdc")] == ["1"]


def test_an_event_too_big_for_the_server_stops_then_resumes(app: tuple[MariaDB, str, Any]) -> None:
    """An event bigger than the server's max_allowed_packet: capture stops naming the
    setting, loses nothing, and takes the event once the server allows it."""
    server, db, conn = app
    with conn.cursor() as cur:
        cur.execute(f"ALTER TABLE `{db}`.t ADD COLUMN big LONGBLOB")
        cur.execute(f"INSERT INTO `{db}`.t VALUES (1, 1, REPEAT('a', 1500000))")
        cur.execute("SET GLOBAL max_allowed_packet = 4 * 1024 * 1024")
    try:
        proc = start_daemon(server, "--from-now", db=f"{db}_cdc")
        wait_ready(conn, proc, f"{db}_cdc")
        with conn.cursor() as cur:  # before and after image, in hex: about 6 MB
            cur.execute(f"UPDATE `{db}`.t SET v = 2, big = REPEAT('b', 1500000) WHERE id = 1")
        code, log = wait_exit(proc)
        assert code == 1
        assert "max_allowed_packet" in log and "resumes at this change" in log
    finally:
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")
    proc = start_daemon(server, db=f"{db}_cdc")
    try:
        wait_for_events(conn, 1, proc=proc, db=f"{db}_cdc")
    finally:
        code, log = stop_daemon(proc)
    assert code == 0, log
    (event,) = events(conn, f"{db}_cdc")
    assert event["type"] == "UPDATE" and event["data"]["changed"] == ["v", "big"]

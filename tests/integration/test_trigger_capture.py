"""`cdc run --capture triggers`: exactly once and in each row's order, whatever order the
application's transactions commit in, through rollbacks, long transactions, lost
connections and SIGKILLs; the outbox's events too."""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cdc._testing.mariadb import MariaDB
from tests.integration.test_exactly_once import (
    TABLES,
    Workload,
    assert_ids_gapless,
    captured,
    finish,
)
from tests.support import (
    assert_replay_matches,
    cdc_command,
    event_count,
    events,
    fresh_schema,
    start_daemon,
    stop_daemon,
    wait_for_events,
    wait_ready,
)


def _install(server: MariaDB, db: str) -> None:
    done = subprocess.run(
        cdc_command("triggers", "install", "--include", f"{db}.*"),
        env=dict(os.environ, CDC_DSN=f"mysql://root@127.0.0.1:{server.port}/{db}_cdc"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _daemon(server: MariaDB, db: str) -> Any:
    return start_daemon(server, "--capture", "triggers", "--include", f"{db}.*", db=f"{db}_cdc")


def _staged(conn: Any, db: str) -> int:
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM `{db}_cdc`.cdc_staging")
        return int(cur.fetchone()[0])


@pytest.fixture
def app(mariadb: MariaDB, request: pytest.FixtureRequest) -> Iterator[tuple[MariaDB, str, Any]]:
    db = request.node.name[:30]
    conn = fresh_schema(mariadb, db, *TABLES)
    _install(mariadb, db)
    yield mariadb, db, conn
    for opened in [conn, *(w.conn for w in Workload.opened)]:
        if opened.open:
            opened.close()
    Workload.opened.clear()


def test_commit_order_rollbacks_and_long_transactions(app: tuple[MariaDB, str, Any]) -> None:
    """A long transaction's changes, staged before others that commit first, come after
    them, once; a rolled-back one's never; two transactions on one row in lock order."""
    server, db, conn = app
    proc = _daemon(server, db)
    wait_ready(conn, proc, f"{db}_cdc")
    long_, other, third = (server.connect(db) for _ in range(3))
    try:
        with long_.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("INSERT INTO patient (id, name) VALUES (1, 'long')")  # staged first
        with other.cursor() as cur:
            cur.execute("INSERT INTO patient (id, name) VALUES (2, 'quick')")
            cur.execute("BEGIN")
            cur.execute("INSERT INTO patient (id, name) VALUES (3, 'never')")
            cur.execute("ROLLBACK")
            cur.execute("UPDATE patient SET name = 'quick+' WHERE id = 2")
        wait_for_events(conn, 2, proc=proc, db=f"{db}_cdc")
        assert [(e["row_id"], e["type"]) for e in events(conn, f"{db}_cdc")] == [
            ("2", "CREATE"),
            ("2", "UPDATE"),
        ]
        # Row 2, changed by two transactions: the second waits for the first's lock.
        with other.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("UPDATE patient SET name = 'first' WHERE id = 2")
        blocked = threading.Thread(
            target=lambda: third.cursor().execute("UPDATE patient SET name = 'second' WHERE id = 2")
        )
        blocked.start()
        deadline = time.monotonic() + 60
        while True:  # until the second one waits for the row lock
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                    " WHERE INFO LIKE 'UPDATE patient SET name = ''second''%%'"
                    " AND STATE LIKE '%%Updating%%'"
                )
                if cur.fetchone()[0]:
                    break
            assert time.monotonic() < deadline, "the second UPDATE never waited for the lock"
            time.sleep(0.05)
        with long_.cursor() as cur:
            cur.execute("UPDATE patient SET name = 'long+' WHERE id = 1")
            cur.execute("COMMIT")
        other.commit()
        blocked.join(timeout=60)
        assert not blocked.is_alive()
        wait_for_events(conn, 6, proc=proc, db=f"{db}_cdc")
        got = events(conn, f"{db}_cdc")
        seen = [(e["row_id"], e["type"], e["data"].get("after", {}).get("name")) for e in got]
        # Staging order: each row's changes in order, the long one's after what committed
        # before it (not necessarily one transaction's events together).
        assert seen[:3] == [
            ("2", "CREATE", "quick"),
            ("2", "UPDATE", "quick+"),
            ("1", "CREATE", "long"),
        ]
        assert [s for s in seen if s[0] == "1"] == [
            ("1", "CREATE", "long"),
            ("1", "UPDATE", "long+"),
        ]
        assert [s[2] for s in seen if s[0] == "2"] == ["quick", "quick+", "first", "second"]
        assert [e["id"] for e in got] == [1, 2, 3, 4, 5, 6]
        assert _staged(conn, db) == 0
    finally:
        for c in (long_, other, third):
            c.close()
        code, log = stop_daemon(proc)
    assert code == 0, log[-3000:]


def test_outbox_events_in_trigger_mode(app: tuple[MariaDB, str, Any]) -> None:
    """A LOGIN inserted and deleted in its own transaction is one event; a rolled-back
    one none; @cdc_user_id is the user when the row names none."""
    server, db, conn = app
    proc = _daemon(server, db)
    wait_ready(conn, proc, f"{db}_cdc")
    outbox = f"`{db}_cdc`.cdc_outbox"
    try:
        with conn.cursor() as cur:
            cur.execute("SET @cdc_user_id = 'u-7'")
            cur.execute("BEGIN")
            cur.execute(f"INSERT INTO {outbox} (type, data) VALUES ('LOGIN', '{{\"ip\": \"a\"}}')")
            cur.execute(f"DELETE FROM {outbox} WHERE id = LAST_INSERT_ID()")
            cur.execute(f"INSERT INTO `{db}`.patient (id, name) VALUES (1, 'p')")
            cur.execute("COMMIT")
            cur.execute("BEGIN")
            cur.execute(f"INSERT INTO {outbox} (type, user_id) VALUES ('LOGOUT', 'never')")
            cur.execute("ROLLBACK")
            cur.execute(f"INSERT INTO {outbox} (type, user_id) VALUES ('LOGOUT', 'u-8')")
            cur.execute("SET @cdc_user_id = NULL")
        wait_for_events(conn, 3, proc=proc, db=f"{db}_cdc")
        got = events(conn, f"{db}_cdc")
        assert [(e["type"], e["user_id"], e["schema_name"]) for e in got] == [
            ("LOGIN", "u-7", None),
            ("CREATE", "u-7", db),
            ("LOGOUT", "u-8", None),
        ]
        assert got[0]["data"] == {"ip": "a"}
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {outbox}")
            assert cur.fetchone()[0] == 0  # the daemon keeps the outbox empty
    finally:
        code, log = stop_daemon(proc)
    assert code == 0, log[-3000:]


def test_lost_connections_are_retried(app: tuple[MariaDB, str, Any]) -> None:
    server, db, conn = app
    work = Workload(server, db, seed=21)
    proc = _daemon(server, db)
    try:
        wait_ready(conn, proc, f"{db}_cdc")
        for _ in range(100):
            work.step()
        with conn.cursor() as cur:  # the daemon's connections, killed by the server
            cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s", (f"{db}_cdc",)
            )
            for (thread,) in cur.fetchall():
                cur.execute(f"KILL CONNECTION {int(thread)}")
        for _ in range(100):
            work.step()
        finish(server, db, conn, proc)
        assert "capture_reconnect" in proc.log()
    finally:
        code, log = stop_daemon(proc)
    assert code == 0, log[-3000:]
    assert_ids_gapless(conn, db)
    assert_replay_matches(conn, captured(db), f"{db}_cdc")
    assert _staged(conn, db) == 0


@pytest.mark.timeout(900)
def test_sigkill_at_any_moment_in_trigger_mode(app: tuple[MariaDB, str, Any]) -> None:
    """Random writes (multi-table transactions, rollbacks, a 100,000-row transaction)
    while the daemon is SIGKILLed again and again: replay rebuilds every table, every
    staging row was moved once."""
    server, db, conn = app
    work = Workload(server, db, seed=31)
    stop = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for step in range(1500):
                if stop.is_set():
                    return
                work.step()
                if step == 900:
                    work.conn.begin()
                    with work.conn.cursor() as cur:
                        cur.execute("SET SESSION max_recursive_iterations = 200000")
                        cur.execute(
                            "INSERT INTO bulk WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL"
                            " SELECT n + 1 FROM s WHERE n < 100000)"
                            " SELECT n, CONCAT('line ', n), n / 100 FROM s"
                        )
                    work.conn.commit()
        except BaseException as error:
            failures.append(error)

    proc = _daemon(server, db)
    wait_ready(conn, proc, f"{db}_cdc")
    writer = threading.Thread(target=write)
    writer.start()
    rng = random.Random(7)
    kills = 0
    try:
        while writer.is_alive() or kills < 6:
            time.sleep(rng.uniform(0.3, 2.5))
            proc.kill()
            proc.wait()
            kills += 1
            proc = _daemon(server, db)
        writer.join()
        assert not failures, failures
        finish(server, db, conn, proc)
    finally:
        stop.set()
        code, log = stop_daemon(proc)
    assert code == 0, log[-3000:]
    assert_ids_gapless(conn, db)
    assert_replay_matches(conn, captured(db), f"{db}_cdc")
    assert _staged(conn, db) == 0
    assert event_count(conn, f"{db}_cdc") > 100_000
    print(f"daemon SIGKILLed {kills} times")

"""Exactly once, in commit order, through SIGKILLs, a lost connection and a server restart:
the event table, replayed onto empty copies, rebuilds every captured table value for value."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import psutil
import pytest

from cdc._testing.mariadb import MariaDB
from tests.support import (
    assert_replay_matches,
    events,
    fresh_schema,
    start_daemon,
    stop_daemon,
    wait_for_events,
    wait_ready,
)

TABLES = (
    """CREATE TABLE {db}.patient (id INT PRIMARY KEY, name VARCHAR(60), weight DECIMAL(6,2),
        born DATE, seen DATETIME(3), user_id INT)""",
    """CREATE TABLE {db}.item (invoice INT, line SMALLINT, label VARCHAR(40) CHARACTER SET latin1,
        price DECIMAL(19,4), PRIMARY KEY (invoice, line))""",
    "CREATE TABLE {db}.journal (at TIMESTAMP(6) NULL, message TEXT, flags SET('a','b','c'))",
    """CREATE TABLE {db}.doc (uuid BINARY(16) PRIMARY KEY, body JSON, kind ENUM('x','y'),
        raw VARBINARY(20), score DOUBLE, ratio FLOAT, bits BIT(5), y YEAR, t TIME(2))""",
    "CREATE TABLE {db}.sentinel (id INT PRIMARY KEY)",
    "CREATE TABLE {db}.bulk (id INT PRIMARY KEY, label VARCHAR(20), amount DECIMAL(12,2))",
)


class Workload:
    """Random application writes: single statements, multi-table transactions, rollbacks."""

    opened: ClassVar[list[Workload]] = []

    def __init__(self, server: MariaDB, db: str, seed: int) -> None:
        self.conn = server.connect(db)
        Workload.opened.append(self)
        self.rng = random.Random(seed)
        self.db = db
        self.next_patient = 0
        self.next_invoice = 0
        self.docs: list[bytes] = []

    def step(self) -> None:
        rng, cur = self.rng, self.conn.cursor()
        roll = rng.random()
        if roll < 0.3:
            self.next_patient += 1
            cur.execute(
                "INSERT INTO patient (id, name, weight, born, seen, user_id) VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    self.next_patient,
                    f"p{self.next_patient} é",
                    f"{rng.randint(0, 99999) / 100:.2f}",
                    f"19{rng.randint(10, 99)}-0{rng.randint(1, 9)}-2{rng.randint(0, 8)}",
                    f"2026-05-{rng.randint(10, 28)} 12:{rng.randint(10, 59)}:40.{rng.randint(100, 999)}",
                    rng.randint(1, 9),
                ),
            )
        elif roll < 0.45 and self.next_patient:
            cur.execute(
                "UPDATE patient SET name = CONCAT(name, '+'), user_id = %s WHERE id = %s",
                (rng.randint(1, 9), rng.randint(1, self.next_patient)),
            )
        elif roll < 0.55:
            self.conn.begin()
            self.next_invoice += 1
            for line in range(rng.randint(1, 4)):
                cur.execute(
                    "INSERT INTO item VALUES (%s, %s, %s, %s)",
                    (
                        self.next_invoice,
                        line,
                        rng.choice(("quinine", "x-ray", "café")),
                        f"{rng.randint(1, 10**6) / 10**4}",
                    ),
                )
            cur.execute(
                "INSERT INTO journal (at, message, flags) VALUES (NOW(6), %s, %s)",
                (f"invoice {self.next_invoice}", rng.choice(("", "a", "a,c", "b,c"))),
            )
            if self.next_patient:
                cur.execute(
                    "UPDATE patient SET weight = weight + 1 WHERE id = %s",
                    (rng.randint(1, self.next_patient),),
                )
            self.conn.commit()
        elif roll < 0.62:
            self.conn.begin()
            cur.execute("INSERT INTO journal (message) VALUES ('never')")
            cur.execute("DELETE FROM patient ORDER BY id LIMIT 1")
            self.conn.rollback()
        elif roll < 0.75:
            uid = rng.randbytes(15) + b"\x00"  # trailing zero byte: the library drops it
            self.docs.append(uid)
            cur.execute(
                "INSERT INTO doc VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    uid,
                    '{"a": [1, 2.5, null], "b": {"c": "\\u00e9"}}',
                    rng.choice("xy"),
                    rng.randbytes(rng.randint(0, 20)),
                    rng.random() * 1e6,
                    rng.choice((1.1, 0.1, -3.5)),
                    rng.randint(0, 31),
                    rng.choice((0, 1999, 2155)),
                    rng.choice(("-00:00:01.25", "838:59:59.00", "-12:30:00.5", "00:00:00.01")),
                ),
            )
        elif roll < 0.85 and self.docs:
            cur.execute(
                "UPDATE doc SET score = score / 3, kind = 'y' WHERE uuid = %s",
                (rng.choice(self.docs),),
            )
        elif roll < 0.92:
            cur.execute("DELETE FROM item ORDER BY invoice, line LIMIT 2")
        else:
            cur.execute("DELETE FROM journal ORDER BY at LIMIT 1")
        cur.close()


def captured(db: str) -> list[tuple[str, str]]:
    return [(db, t) for t in ("patient", "item", "journal", "doc", "bulk")]


def finish(server: MariaDB, db: str, conn: Any, proc: Any) -> None:
    """Writes a sentinel and waits for its event: every earlier change is then stored."""
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO `{db}`.sentinel VALUES (1)")
    deadline = time.monotonic() + 600
    while True:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM `{db}_cdc`.event WHERE table_name = 'sentinel'")
            if cur.fetchone()[0]:
                return
        if time.monotonic() > deadline or proc.poll() is not None:
            _, err = stop_daemon(proc)
            raise AssertionError(f"the sentinel event never arrived; daemon log:\n{err[-5000:]}")
        time.sleep(0.2)


def assert_ids_gapless(conn: Any, db: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"SELECT MIN(id), MAX(id), COUNT(*) FROM `{db}_cdc`.event")
        low, high, count = cur.fetchone()
    assert (low, high) == (1, count)


@pytest.fixture
def app(mariadb: MariaDB, request: pytest.FixtureRequest) -> Iterator[tuple[MariaDB, str, Any]]:
    db = request.node.name[:30]
    conn = fresh_schema(mariadb, db, *TABLES)
    yield mariadb, db, conn
    for opened in [conn, *(w.conn for w in Workload.opened)]:
        if opened.open:
            opened.close()
    Workload.opened.clear()


@pytest.mark.timeout(900)
def test_sigkill_at_any_moment_loses_and_repeats_nothing(app: tuple[MariaDB, str, Any]) -> None:
    """The issue's acceptance run: inserts, updates, deletes, rollbacks, multi-table
    transactions, an ALTER TABLE and a 1,000,000-row transaction, with the daemon
    SIGKILLed and restarted many times in the middle; replay must rebuild every table."""
    server, db, conn = app
    work = Workload(server, db, seed=11)
    stop = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            steps = 0
            while not stop.is_set() and steps < 2500:
                work.step()
                steps += 1
                if steps == 1200:
                    with work.conn.cursor() as cur:  # schema change while capture runs
                        cur.execute(
                            "ALTER TABLE patient ADD COLUMN ward VARCHAR(10) NOT NULL DEFAULT 'A' AFTER name"
                        )
                        cur.execute("UPDATE patient SET ward = 'B' WHERE id % 3 = 0")
                if steps == 1800:  # one transaction of 1,000,000 row changes, two tables
                    work.conn.begin()
                    with work.conn.cursor() as cur:
                        cur.execute("SET SESSION max_recursive_iterations = 2000000")
                        cur.execute(
                            "INSERT INTO bulk WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL"
                            " SELECT n + 1 FROM s WHERE n < 999999)"
                            " SELECT n, CONCAT('line ', n), n / 100 FROM s"
                        )
                        cur.execute("UPDATE patient SET user_id = 0 WHERE id = 1")
                    work.conn.commit()
        except BaseException as error:
            failures.append(error)

    proc = start_daemon(server, db=f"{db}_cdc")
    wait_ready(conn, proc, f"{db}_cdc")
    writer = threading.Thread(target=write)
    writer.start()
    rng = random.Random(5)
    kills = 0
    try:
        # Kills land during the writes and while the big transaction is being captured.
        while writer.is_alive() or kills < 7:
            time.sleep(rng.uniform(0.3, 3.0))
            proc.kill()  # SIGKILL: no chance to commit or clean up
            proc.wait()
            kills += 1
            proc = start_daemon(server, db=f"{db}_cdc")
        writer.join()
        assert not failures, failures
        finish(server, db, conn, proc)
    finally:
        stop.set()
        code, err = stop_daemon(proc)
    assert code == 0, err
    assert kills >= 7
    assert_ids_gapless(conn, db)
    assert_replay_matches(conn, captured(db), f"{db}_cdc")
    with conn.cursor() as cur:
        cur.execute(f"SELECT data FROM `{db}_cdc`.event WHERE table_name = 'patient'")
        patient = [json.loads(row[0]) for row in cur.fetchall()]
        cur.execute(f"SELECT COUNT(*) FROM `{db}_cdc`.event WHERE data LIKE '%never%'")
        assert cur.fetchone()[0] == 0  # rolled back work never appears
        cur.execute(f"SELECT COUNT(DISTINCT txn) FROM `{db}_cdc`.event WHERE table_name = 'bulk'")
        assert cur.fetchone()[0] == 1
    # Every event carries the columns true when its row was written.
    assert any("ward" not in (e.get("after") or e["before"]) for e in patient)
    assert any("ward" in (e.get("after") or e["before"]) for e in patient)
    print(f"daemon SIGKILLed {kills} times")


def test_lost_connection_and_server_restart(app: tuple[MariaDB, str, Any]) -> None:
    server, db, conn = app
    work = Workload(server, db, seed=12)
    proc = start_daemon(server, db=f"{db}_cdc")
    try:
        wait_ready(conn, proc, f"{db}_cdc")
        for _ in range(150):
            work.step()
        # Kill the replica connection from the server side.
        deadline = time.monotonic() + 30
        with conn.cursor() as cur:
            while True:
                cur.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'"
                )
                dumps = [row[0] for row in cur.fetchall()]
                if dumps or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert dumps, "no binlog dump thread: the daemon is not connected"
            for thread_id in dumps:
                cur.execute(f"KILL {thread_id}")
        for _ in range(150):
            work.step()
        conn.close()
        work.conn.close()
        server.restart()  # the server goes away and comes back (binlog rotates)
        conn = server.connect()
        work.conn = server.connect(db)
        for _ in range(150):
            work.step()
        finish(server, db, conn, proc)
    finally:
        code, err = stop_daemon(proc)
    assert code == 0, err
    assert "capture_reconnect" in err
    # The reconnect names the position the next read really starts from.
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    for i, line in enumerate(lines):
        if line["event"] == "capture_reconnect":
            start = next(later for later in lines[i:] if later["event"] == "capture_start")
            assert line["resume"] == start["position"], (line, start)
    assert_ids_gapless(conn, db)
    assert_replay_matches(conn, captured(db), f"{db}_cdc")


def test_alter_table_while_stopped_with_a_backlog(app: tuple[MariaDB, str, Any]) -> None:
    server, db, conn = app
    proc = start_daemon(server, db=f"{db}_cdc")
    wait_ready(conn, proc, f"{db}_cdc")
    code, err = stop_daemon(proc)
    assert code == 0, err
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO `{db}`.patient (id, name, user_id) VALUES (1, 'a', 1)")
        cur.execute(f"ALTER TABLE `{db}`.patient CHANGE name full_name VARCHAR(60)")
        cur.execute(f"INSERT INTO `{db}`.patient (id, full_name, user_id) VALUES (2, 'b', 2)")
        cur.execute(f"ALTER TABLE `{db}`.patient DROP COLUMN weight, ADD COLUMN w INT FIRST")
        cur.execute(f"INSERT INTO `{db}`.patient (id, full_name, w) VALUES (3, 'c', 9)")
        cur.execute(f"ALTER TABLE `{db}`.patient MODIFY w INT AFTER seen")
        cur.execute(f"UPDATE `{db}`.patient SET w = 10 WHERE id = 3")
    proc = start_daemon(server, db=f"{db}_cdc")
    try:
        wait_for_events(conn, 4, proc=proc, db=f"{db}_cdc")
    finally:
        code, err = stop_daemon(proc)
    assert code == 0, err
    shapes = [list((e["data"].get("after") or {}).keys()) for e in events(conn, f"{db}_cdc")]
    assert shapes == [
        ["id", "name", "weight", "born", "seen", "user_id"],
        ["id", "full_name", "weight", "born", "seen", "user_id"],
        ["w", "id", "full_name", "born", "seen", "user_id"],
        ["id", "full_name", "born", "seen", "w", "user_id"],
    ]


def test_big_transaction_keeps_memory_flat(mariadb: MariaDB) -> None:
    """One transaction of 1,000,000 row changes: all captured, peak RSS under 300 MB."""
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS big")
        cur.execute("DROP DATABASE IF EXISTS big_cdc")
        cur.execute("CREATE DATABASE big")
        cur.execute("CREATE TABLE big.t (id INT PRIMARY KEY, v VARCHAR(20), n INT, user_id INT)")
    proc = start_daemon(mariadb, db="big_cdc")
    peak = 0
    try:
        wait_ready(conn, proc, "big_cdc")
        with conn.cursor() as cur:
            cur.execute("SET SESSION max_recursive_iterations = 2000000")
            cur.execute(
                "INSERT INTO big.t WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s"
                " WHERE n < 1000000) SELECT n, CONCAT('row ', n), n * 7, n % 13 FROM s"
            )
        watched = psutil.Process(proc.pid)
        deadline = time.monotonic() + 900
        while True:
            peak = max(peak, watched.memory_info().rss)
            with conn.cursor() as cur:
                cur.execute("SELECT last_event_id FROM big_cdc.cdc_checkpoint")
                if cur.fetchone()[0] >= 1_000_000:
                    break
            assert proc.poll() is None, proc.log()
            assert time.monotonic() < deadline, "1M-row transaction not captured in 15 minutes"
            time.sleep(0.25)
    finally:
        code, err = stop_daemon(proc, signal.SIGTERM)
    assert code == 0, err
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*), COUNT(DISTINCT txn), MIN(id), MAX(id) FROM big_cdc.event")
        assert cur.fetchone() == (1_000_000, 1, 1, 1_000_000)
    print(f"peak RSS of the daemon: {peak / 2**20:.0f} MB")
    assert peak < 300 * 2**20

"""Standby failover on a real MariaDB: two `cdc run` daemons, one captures (the lease), the
other waits and takes over when the first is SIGKILLed or frozen, with every change in the
event table exactly once; the fence; roles in /health and `cdc status`."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest

from cdc._testing.mariadb import MariaDB, free_port
from cdc.admin.status import capture_status
from cdc.capture.lease import Lease
from cdc.daemon import Daemon
from cdc.errors import LeaseLost, StartupError
from cdc.models import ChangeRecord, Op, Position
from cdc.settings import CaptureSettings, Dsn, Settings
from cdc.store.registry import Registry
from cdc.store.schema import init_schema
from cdc.store.writer import Store
from tests.support import Daemon as Process
from tests.support import (
    assert_replay_matches,
    cdc_command,
    events,
    fresh_schema,
    start_daemon,
    stop_daemon,
    wait_for_events,
    wait_ready,
)

TABLES = (
    "CREATE TABLE {db}.patient (id INT PRIMARY KEY, name VARCHAR(60), user_id INT)",
    "CREATE TABLE {db}.visit (id INT PRIMARY KEY, patient INT, note VARCHAR(60))",
    "CREATE TABLE {db}.sentinel (id INT PRIMARY KEY)",
)


class Workload(threading.Thread):
    """Application writes until stopped: inserts, updates, deletes, two-table
    transactions and rollbacks; the count of commits is kept."""

    def __init__(self, server: MariaDB, db: str, seed: int) -> None:
        super().__init__(name="workload")
        self.conn = server.connect(db)
        self.rng = random.Random(seed)
        self.halt = threading.Event()
        self.commits = 0
        self.failure: BaseException | None = None
        self._next = 0
        self._visits = 0

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                self.step()
                self.commits += 1
                time.sleep(0.002)
        except BaseException as error:
            self.failure = error
        finally:
            self.conn.close()

    def step(self) -> None:
        roll, cur = self.rng.random(), self.conn.cursor()
        if roll < 0.4 or not self._next:
            self._next += 1
            cur.execute(
                "INSERT INTO patient VALUES (%s, %s, %s)", (self._next, f"p{self._next}", roll)
            )
        elif roll < 0.6:
            cur.execute(
                "UPDATE patient SET name = CONCAT(name, '+') WHERE id = %s",
                (self.rng.randint(1, self._next),),
            )
        elif roll < 0.8:
            self.conn.begin()
            self._visits += 1
            cur.execute("INSERT INTO visit VALUES (%s, %s, 'seen')", (self._visits, self._next))
            cur.execute("UPDATE patient SET user_id = 7 WHERE id = %s", (self._next,))
            self.conn.commit()
        elif roll < 0.9:
            self.conn.begin()
            cur.execute("DELETE FROM patient ORDER BY id LIMIT 1")
            self.conn.rollback()
        else:
            cur.execute("DELETE FROM visit ORDER BY id LIMIT 1")
        cur.close()

    def stop(self) -> None:
        self.halt.set()
        self.join(60)
        assert self.failure is None, self.failure


@pytest.fixture
def app(mariadb: MariaDB, request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    db = request.node.name[:24]
    conn = fresh_schema(mariadb, db, *TABLES)
    yield db, conn
    conn.close()


def daemon(server: MariaDB, db: str, server_id: int, http: int | None = None) -> Process:
    return start_daemon(
        server, "--include", f"{db}.*", "--server-id", str(server_id), db=f"{db}_cdc", http=http
    )


def wait_log(proc: Process, text: str, timeout: float = 60, exits: bool = False) -> None:
    """Waits until the daemon's log holds `text` (`exits`: it may exit meanwhile)."""
    deadline = time.monotonic() + timeout
    while text not in proc.log():
        if proc.poll() is not None and not exits:
            raise AssertionError(f"daemon exited {proc.returncode}:\n{proc.log()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {text} in the log within {timeout} s:\n{proc.log()[-3000:]}")
        time.sleep(0.1)


def health(port: int) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/health"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def get_json(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        body: dict[str, Any] = json.loads(response.read())
    return body


def status(server: MariaDB, db: str) -> str:
    result = subprocess.run(
        cdc_command("status", "--dsn", f"mysql://root@127.0.0.1:{server.port}/{db}_cdc"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def finish(conn: Any, db: str, proc: Process) -> None:
    """A sentinel row, and its event: everything committed before it is captured."""
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO `{db}`.sentinel VALUES (1)")
    deadline = time.monotonic() + 300
    while True:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM `{db}_cdc`.event WHERE table_name = 'sentinel'")
            if cur.fetchone()[0]:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the sentinel was not captured:\n{proc.log()[-4000:]}")
        time.sleep(0.2)


def assert_exactly_once(conn: Any, db: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"SELECT MIN(id), MAX(id), COUNT(*) FROM `{db}_cdc`.event")
        low, high, count = cur.fetchone()
        assert (low, high) == (1, count), "event ids have a gap or a repeat"
    assert_replay_matches(conn, [(db, "patient"), (db, "visit")], f"{db}_cdc")


class StreamReader(threading.Thread):
    """One SSE client of a daemon's /stream from the first event on, as EventSource is:
    it reconnects with the last id it got; `ids` are the event ids it received."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.ids: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            last = self.ids[-1] if self.ids else 0
            url = f"http://127.0.0.1:{self.port}/stream?last_event_id={last}"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    for raw in response:
                        line = raw.decode().rstrip("\n")
                        if line.startswith("id: ") and line[4:].isdigit():
                            self.ids.append(int(line[4:]))
                        if self.done.is_set():
                            return
            except (OSError, ValueError):
                time.sleep(0.2)  # reconnect, as a browser does after its retry hint

    def until(self, last_id: int, timeout: float = 120) -> list[int]:
        deadline = time.monotonic() + timeout
        while not self.ids or self.ids[-1] < last_id:
            got = self.ids[-1] if self.ids else None
            assert time.monotonic() < deadline, f"the stream reached {got}, not {last_id}"
            time.sleep(0.1)
        self.done.set()
        return self.ids


def test_standby_takes_over_after_sigkill_with_nothing_lost_or_doubled(
    mariadb: MariaDB, app: tuple[str, Any]
) -> None:
    db, conn = app
    port_a, port_b = free_port(), free_port()
    a = daemon(mariadb, db, 301, http=port_a)
    wait_ready(conn, a, f"{db}_cdc")
    b = daemon(mariadb, db, 302, http=port_b)
    wait_log(b, '"standby"')
    # A client of the standby: live events while it waits (from the table), then its own.
    reader = StreamReader(port_b)
    reader.start()
    work = Workload(mariadb, db, seed=3)
    work.start()
    try:
        code, body = health(port_b)
        assert (code, body["role"], body["state"]) == (200, "standby", "standby"), body
        code, body = health(port_a)
        assert (code, body["role"]) == (200, "active"), body
        # The standby serves the history while it waits.
        deadline = time.monotonic() + 60
        while not get_json(port_b, "/events?after_id=0&limit=5")["events"]:
            assert time.monotonic() < deadline, "the standby's /events stays empty"
            time.sleep(0.2)
        listed = status(mariadb, db)
        assert "active " in listed and "standby " in listed, listed
        deadline = time.monotonic() + 60
        while work.commits < 300 and time.monotonic() < deadline:
            time.sleep(0.1)
        a.kill()  # SIGKILL: its lock goes with its connection
        a.wait()
        wait_log(b, '"capture_start"', timeout=60)  # the contract is 10 s; the machine is busy
        code, body = health(port_b)
        assert body["role"] == "active", body
        committed = work.commits
        while work.commits < committed + 300 and time.monotonic() < deadline + 60:
            time.sleep(0.1)
    finally:
        work.stop()
    finish(conn, db, b)
    with conn.cursor() as cur:
        cur.execute(f"SELECT MAX(id) FROM `{db}_cdc`.event")
        newest = int(cur.fetchone()[0])
    assert reader.until(newest) == list(range(1, newest + 1)), "the standby's stream has a gap"
    listed = status(mariadb, db)
    assert "active " in listed and "standby " not in listed, listed
    code, log = stop_daemon(b)
    assert code == 0, log
    assert '"lease_acquired"' in log
    assert_exactly_once(conn, db)
    # A clean stop removes its row at once; the killed one's expires (3 heartbeats).
    assert f"pid {b.pid} " not in status(mariadb, db)
    deadline = time.monotonic() + 60
    while "none running" not in (listed := status(mariadb, db)):
        assert time.monotonic() < deadline, listed
        time.sleep(0.5)


def test_a_frozen_active_is_cut_off_and_cannot_commit_after_waking(
    mariadb: MariaDB, app: tuple[str, Any]
) -> None:
    db, conn = app
    a = daemon(mariadb, db, 311)
    wait_ready(conn, a, f"{db}_cdc")
    b = daemon(mariadb, db, 312)
    wait_log(b, '"standby"')
    work = Workload(mariadb, db, seed=4)
    work.start()
    try:
        deadline = time.monotonic() + 60
        while work.commits < 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        a.send_signal(signal.SIGSTOP)  # frozen: its connections stay open
        # Its heartbeat expires: the standby ends its connections and takes over.
        wait_log(b, '"capture_start"', timeout=90)
        assert '"old_holder_connection_ended"' in b.log()
        committed = work.commits
        while work.commits < committed + 200 and time.monotonic() < deadline + 90:
            time.sleep(0.1)
        a.send_signal(signal.SIGCONT)
        try:
            a.wait(60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the woken daemon goes on:\n{a.log()[-3000:]}") from None
        assert a.returncode == 1, a.log()[-3000:]
        assert "lease" in a.log()
        committed = work.commits
        while work.commits < committed + 100 and time.monotonic() < deadline + 150:
            time.sleep(0.1)
    finally:
        if a.poll() is None:
            a.send_signal(signal.SIGCONT)
        work.stop()
    finish(conn, db, b)
    code, log = stop_daemon(b)
    assert code == 0, log
    assert_exactly_once(conn, db)


def records(n: int, first: int = 0) -> list[ChangeRecord]:
    return [
        ChangeRecord(Op.CREATE, "app", "t", i, None, {"after": {"id": i}}, 1_700_000_000.0, "x")
        for i in range(first, first + n)
    ]


def counts(mariadb: MariaDB) -> tuple[int, str | None]:
    conn = mariadb.connect("fence_cdc")
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM event")
        events = int(cur.fetchone()[0])
        cur.execute("SELECT owner FROM cdc_checkpoint")
        owner = cur.fetchone()[0]
    conn.close()
    return events, owner


def test_a_daemon_that_lost_its_lease_cannot_commit(mariadb: MariaDB) -> None:
    dsn = Dsn.parse(f"mysql://root@127.0.0.1:{mariadb.port}/fence_cdc")
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS fence_cdc")
    init_schema(dsn)
    alive = Registry(dsn, "active", name="first").start()
    first, second = Lease(dsn, "first"), Lease(dsn, "second")
    assert first.try_acquire()
    assert not second.try_acquire()  # held, and its holder's heartbeat is recent
    old = Store(dsn, owner=first.owner)
    old.load_checkpoint()
    old.add(records(2))
    old.commit(Position("binlog.000001", 100), None)
    # The first holder's lock connection drops; its writer did not notice. Its writer
    # connection is not recorded here, so the new holder cannot end it: only the fence
    # stands between it and a commit.
    with conn.cursor() as cur:
        cur.execute("UPDATE fence_cdc.cdc_lease SET writer_connection = NULL")
    first._close()
    alive.stop()
    assert second.try_acquire(wait=30)
    old.add(records(3, first=2))
    with pytest.raises(LeaseLost):
        old.commit(Position("binlog.000001", 200), None)
    assert counts(mariadb) == (2, second.owner)
    # The new holder writes on.
    new = Store(dsn, owner=second.owner)
    new.load_checkpoint()
    new.add(records(1, first=2))
    new.commit(Position("binlog.000001", 300), None)
    assert counts(mariadb) == (3, second.owner)
    # A recorded writer is ended by the next takeover; reconnecting, it finds the lease
    # another's and refuses to write.
    assert not first.held()
    third = Lease(dsn, "third")
    second._close()
    assert third.try_acquire(wait=30)
    new.add(records(1, first=3))
    with pytest.raises(pymysql.err.Error):
        new.commit(Position("binlog.000001", 400), None)
    new.close()
    with pytest.raises(LeaseLost):
        new.load_checkpoint()
    assert counts(mariadb) == (3, third.owner)
    for closing in (old, new):
        closing.close()
    third.release()
    conn.close()


def test_a_server_id_in_use_is_named_with_the_fix(mariadb: MariaDB, app: tuple[str, Any]) -> None:
    """Two daemons of different event databases (both active) with one --server-id: the
    binlog connection that fails says the id is in use and how to fix it."""
    db, conn = app
    first = daemon(mariadb, db, 321)
    wait_ready(conn, first, f"{db}_cdc")
    other = f"{db}_b"
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{other}_cdc`")
    second = start_daemon(mariadb, "--include", f"{db}.*", "--server-id", "321", db=f"{other}_cdc")
    try:
        deadline = time.monotonic() + 120
        with conn.cursor() as cur:
            for row in itertools.count(1):
                if first.poll() is not None or second.poll() is not None:
                    break
                cur.execute(f"INSERT INTO `{db}`.patient VALUES (%s, 'x', 1)", (row,))
                assert time.monotonic() < deadline, (first.log()[-2000:], second.log()[-2000:])
                time.sleep(0.2)
        failed = first if first.poll() is not None else second
        assert failed.wait(30) == 1
        assert "another replica connection uses this daemon's server id" in failed.log()
        assert "--server-id" in failed.log()
    finally:
        for proc in (first, second):
            stop_daemon(proc)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{other}_cdc`")


@pytest.fixture
def replicated() -> Iterator[tuple[MariaDB, MariaDB]]:
    """A throwaway primary, and a throwaway GTID replica of it that logs what it applies."""
    primary = MariaDB().start()
    replica = MariaDB(extra=("--server-id=2", "--log-slave-updates=ON")).start()
    try:
        conn = replica.connect()
        with conn.cursor() as cur:
            cur.execute(
                "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = %s,"
                " MASTER_USER = 'root', MASTER_PASSWORD = '', MASTER_USE_GTID = slave_pos",
                (primary.port,),
            )
            cur.execute("START SLAVE")
        conn.close()
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


def caught_up(primary: MariaDB, replica: MariaDB) -> None:
    """Waits until the replica has applied everything the primary has committed."""
    conn = primary.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT @@gtid_binlog_pos")
        position = cur.fetchone()[0]
    conn.close()
    conn = replica.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT MASTER_GTID_WAIT(%s, 60)", (position,))
        assert cur.fetchone()[0] == 0, "the replica did not catch up in 60 s"
    conn.close()


def insert(server: MariaDB, ids: range) -> None:
    conn = server.connect("rep_app")
    with conn.cursor() as cur:
        for i in ids:
            cur.execute("INSERT INTO t VALUES (%s, %s)", (i, f"v{i}"))
    conn.close()


def test_resume_on_a_replica_by_gtid_and_refused_by_file_and_offset(
    replicated: tuple[MariaDB, MariaDB],
) -> None:
    primary, replica = replicated
    conn = primary.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE rep_app")
        cur.execute("CREATE TABLE rep_app.t (id INT PRIMARY KEY, v VARCHAR(20))")
    conn.close()
    on_primary = start_daemon(primary, "--include", "rep_app.*", db="rep_cdc")
    wait_ready(primary.connect(), on_primary, "rep_cdc")
    insert(primary, range(1, 51))
    wait_for_events(primary.connect(), 50, proc=on_primary, db="rep_cdc")
    code, log = stop_daemon(on_primary)
    assert code == 0, log
    insert(primary, range(51, 81))  # not captured yet: the daemon is stopped
    caught_up(primary, replica)
    # The replica holds the event table and checkpoint (replicated); capturing it by
    # binlog file and offset would read its own binlog.000001 at the primary's offset.
    dsn = Dsn.parse(f"mysql://root@127.0.0.1:{replica.port}/rep_cdc")
    by_file = Settings(dsn, CaptureSettings(include=("rep_app.*",), gtid_resume=False), http=None)
    with pytest.raises(StartupError, match="unrelated offset") as refused:
        asyncio.run(Daemon(by_file).serve())
    assert "mariadb:1:0" in refused.value.problem and "mariadb:2:0" in refused.value.problem
    assert "--from-now" in refused.value.fix
    # By GTID it goes on from the checkpoint on the replica: nothing lost, nothing twice.
    on_replica = start_daemon(replica, "--include", "rep_app.*", db="rep_cdc")
    rconn = replica.connect()
    wait_for_events(rconn, 80, proc=on_replica, db="rep_cdc")
    insert(primary, range(81, 91))  # replicated changes are captured on the replica too
    wait_for_events(rconn, 90, proc=on_replica, db="rep_cdc")
    code, log = stop_daemon(on_replica)
    assert code == 0, log
    assert '"captured_server_changed"' in log
    rows = events(rconn, "rep_cdc")
    assert [e["id"] for e in rows] == list(range(1, 91))
    assert [e["row_id"] for e in rows] == [str(i) for i in range(1, 91)]
    with rconn.cursor() as cur:
        cur.execute("SELECT server_uuid FROM rep_cdc.cdc_checkpoint")
        assert cur.fetchone()[0] == "mariadb:2:0"  # from now on, the replica's checkpoint
    rconn.close()


@contextlib.contextmanager
def in_process(settings: Settings) -> Iterator[Daemon]:
    """The daemon in this process (its tuning settings at hand), capturing."""
    daemon = Daemon(settings)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(daemon.serve())
        except BaseException as error:
            failures.append(error)

    thread = threading.Thread(target=run, name="daemon")
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while daemon.status().state != "capturing":
            assert not failures, failures
            assert time.monotonic() < deadline, "the daemon did not start capturing in 60 s"
            time.sleep(0.1)
        yield daemon
    finally:
        daemon.stop()
        thread.join(60)
    assert not failures, failures


def stored_position(conn: Any, db: str) -> tuple[str, int]:
    with conn.cursor() as cur:
        cur.execute(f"SELECT log_file, log_pos FROM `{db}`.cdc_checkpoint")
        log_file, log_pos = cur.fetchone()
    return str(log_file), int(log_pos)


def server_position(conn: Any) -> tuple[str, int]:
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        log_file, log_pos = cur.fetchone()[:2]
    return str(log_file), int(log_pos)


def wait_stored(conn: Any, db: str, done: Callable[[tuple[str, int]], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not done(position := stored_position(conn, db)):
        assert time.monotonic() < deadline, f"{what}: the checkpoint stays at {position}"
        time.sleep(0.2)


def test_an_idle_or_filtered_server_advances_the_checkpoint_and_the_purge_estimate(
    mariadb: MariaDB,
) -> None:
    conn = fresh_schema(mariadb, "idle_app", "CREATE TABLE {db}.t (id INT PRIMARY KEY)")
    dsn = Dsn.parse(f"mysql://root@127.0.0.1:{mariadb.port}/idle_cdc")
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS idle_cdc")
        cur.execute("SET GLOBAL binlog_expire_logs_seconds = 864000")  # 10 days
    capture = CaptureSettings(
        include=("idle_nothing.*",), idle_checkpoint_seconds=0.5, purge_check_seconds=0.5
    )
    try:
        with in_process(Settings(dsn, capture, http=None)) as daemon:
            with conn.cursor() as cur:  # changes of tables that are not captured only
                cur.execute("INSERT INTO idle_app.t VALUES (1), (2)")
            after = server_position(conn)
            wait_stored(conn, "idle_cdc", lambda p: p >= after, "filtered changes")
            with conn.cursor() as cur:
                cur.execute("FLUSH BINARY LOGS")  # a new file; only the daemon's own writes
            newest = server_position(conn)[0]
            wait_stored(conn, "idle_cdc", lambda p: p[0] == newest, "own writes after a rotation")
            deadline = time.monotonic() + 60
            while daemon.status().binlog_purge_in_seconds != 864000:
                assert time.monotonic() < deadline, daemon.status()
                time.sleep(0.2)
            assert capture_status(dsn)["binlog purge in (s)"] == 864000
        # Stopped; the binlog moves on to another file: the stored one ages.
        with conn.cursor() as cur:
            cur.execute("FLUSH BINARY LOGS")
        left = capture_status(dsn)["binlog purge in (s)"]
        assert 0 < left < 864000, left
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL binlog_expire_logs_seconds = 0")
        assert capture_status(dsn)["binlog purge in (s)"] is None  # kept for ever
    finally:
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL binlog_expire_logs_seconds = 0")
            cur.execute("DROP DATABASE IF EXISTS idle_cdc")
            cur.execute("DROP DATABASE IF EXISTS idle_app")
        conn.close()


def test_the_least_privileged_user_ends_a_frozen_holder_s_connections(mariadb: MariaDB) -> None:
    """No privilege beyond the event database's: a user sees and ends its own connections."""
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS lease_cdc")
        cur.execute("DROP USER IF EXISTS 'lease_user'@'%'")
        cur.execute("CREATE USER 'lease_user'@'%' IDENTIFIED BY 'pw'")
        cur.execute(
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'lease_user'@'%'"
        )
        cur.execute(
            "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON `lease_cdc`.*"
            " TO 'lease_user'@'%'"
        )
    dsn = Dsn.parse(f"mysql://lease_user:pw@127.0.0.1:{mariadb.port}/lease_cdc")
    init_schema(dsn)
    frozen, standby = Lease(dsn, "frozen"), Lease(dsn, "standby")
    try:
        assert frozen.try_acquire()
        # "frozen" has no live registry row: its heartbeat is as good as expired.
        deadline = time.monotonic() + 60
        while not standby.try_acquire(wait=1):
            assert time.monotonic() < deadline, "the standby never got the lease"
        assert not frozen.held()  # its connection was ended, and the lease is another's
    finally:
        frozen.release()
        standby.release()
        with conn.cursor() as cur:
            cur.execute("DROP USER IF EXISTS 'lease_user'@'%'")
            cur.execute("DROP DATABASE IF EXISTS lease_cdc")
        conn.close()

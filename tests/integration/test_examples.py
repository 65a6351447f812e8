"""The attribution examples (examples/) against the real daemon: the Node workload's event
table is exactly its manifest, in commit order; the SQLAlchemy and Django examples'
events carry their users, and no user outlives its transaction on a pooled connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cdc._testing.mariadb import MariaDB, free_port
from cdc.wire import key_value
from tests.http_support import stream
from tests.support import (
    ROOT,
    Daemon,
    cdc_command,
    events,
    fresh_schema,
    schema_snapshot,
    start_daemon,
    stop_daemon,
    wait_ready,
)

EXAMPLES = ROOT / "examples"
NODE = EXAMPLES / "node-mysql2"
ROW_TYPES = ("CREATE", "UPDATE", "DELETE", "CASCADE")
DONE = "done"  # a table whose one row, written last, says every change before it is in


@pytest.fixture(scope="session")
def node_workload() -> Path:
    """examples/node-mysql2 with its packages (scripts/install.sh --test runs `npm ci`;
    here it runs only when they are missing)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed: bash scripts/install.sh --test installs them")
    if not (NODE / "node_modules" / "mysql2" / "package.json").is_file():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode:
            pytest.fail(f"npm ci in {NODE} failed:\n{done.stdout}\n{done.stderr}")
    return NODE


@contextlib.contextmanager
def captured(mariadb: MariaDB, app: str, *args: str) -> Iterator[tuple[Any, Daemon]]:
    """A fresh schema `app` captured by `cdc run` into `app`_cdc, ready."""
    conn = fresh_schema(mariadb, app, f"CREATE TABLE {{db}}.{DONE} (id INT PRIMARY KEY)")
    proc = start_daemon(mariadb, "--include", f"{app}.*", *args, db=f"{app}_cdc")
    try:
        wait_ready(conn, proc, f"{app}_cdc")
        yield conn, proc
    finally:
        conn.close()


def all_events(conn: Any, proc: Daemon, app: str, timeout: float = 180) -> list[dict[str, Any]]:
    """Commits the `done` row and waits for its event: then every change committed
    before it is stored. Stops the daemon; returns the events before `done`'s."""
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO `{app}`.{DONE} VALUES (1)")
    deadline = time.monotonic() + timeout
    while True:
        got = events(conn, f"{app}_cdc")
        if any(e["table_name"] == DONE for e in got):
            break
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited {proc.returncode}:\n{proc.log()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(got)} events, not yet the last change, after {timeout} s")
        time.sleep(0.2)
    code, log = stop_daemon(proc)
    assert code == 0, log[-3000:]
    assert [e["table_name"] for e in got].index(DONE) == len(got) - 1
    return got[:-1]


def context(event: dict[str, Any]) -> Any:
    return json.loads(event["context"]) if event["context"] is not None else None


def run_python_example(name: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- the Node workload and its manifest --


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def stored_signature(e: dict[str, Any]) -> tuple[str, ...]:
    """What the manifest says of an event, as stored."""
    data = e["data"] if e["type"] not in ROW_TYPES else None
    return (
        e["type"],
        _canon(e["schema_name"]),
        _canon(e["table_name"]),
        _canon(key_value(e["row_id"])),
        _canon(e["user_id"]),
        _canon(context(e)),
        _canon(data),
    )


def expected_signature(m: dict[str, Any]) -> tuple[str, ...]:
    data = m.get("data") if m["type"] not in ROW_TYPES else None
    return (
        m["type"],
        _canon(m["schema"]),
        _canon(m["table"]),
        _canon(m["row_id"]),
        _canon(m["user_id"]),
        _canon(m["context"]),
        _canon(data),
    )


def by_transaction(got: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The events of each source transaction, transactions in commit (id) order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for e in got:
        groups.setdefault(e["txn"], []).append(e)
    for txn, group in groups.items():
        ids = [e["id"] for e in group]
        assert ids == list(range(ids[0], ids[0] + len(ids))), f"{txn} is not contiguous: {ids}"
    return list(groups.values())


def row_histories(
    sequences: list[list[tuple[str, ...]]], changes_only: bool = False
) -> dict[tuple[str, ...], list[tuple[str, ...]]]:
    """Each row's events (schema, table, row_id), in the order given; `changes_only`:
    its row changes alone (an application event about a row takes no lock on it, so in
    trigger mode its place among another transaction's changes of that row is the
    staging order, not the commit order)."""
    rows: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
    for sequence in sequences:
        for sig in sequence:
            if sig[3] != "null" and (not changes_only or sig[0] in ROW_TYPES):
                rows[sig[1:4]].append(sig)
    return dict(rows)


def run_workload(node_workload: Path, dsn: str, events_db: str, out: Path, count: int) -> None:
    done = subprocess.run(
        [
            "node", "workload.js",
            "--dsn", dsn,
            "--events-db", events_db,
            "--transactions", str(count), "--seed", "11", "--workers", "4",
            "--long-ms", "600", "--app-triggers",
            "--out", str(out),
        ],
        cwd=node_workload,
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, f"workload exited {done.returncode}:\n{done.stderr}"


@pytest.fixture(scope="module")
def binlog_run(
    mariadb: MariaDB, node_workload: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The Node workload captured from the binlog: (its manifest, the events)."""
    app = "ex_node"
    manifest_path = tmp_path_factory.mktemp("binlog") / "manifest.json"
    with captured(
        mariadb, app, "--user-column", "updated_by", "--context-tags", "route,request_id"
    ) as (conn, proc):
        dsn = f"mysql://root@127.0.0.1:{mariadb.port}/{app}"
        run_workload(node_workload, dsn, f"{app}_cdc", manifest_path, WORKLOAD_TRANSACTIONS)
        got = all_events(conn, proc, app)
    return json.loads(manifest_path.read_text()), got


WORKLOAD_TRANSACTIONS = 160


def test_node_workload_events_are_exactly_its_manifest(
    binlog_run: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    """Concurrent pooled transactions (short, long, multi-statement, rolled back, failing;
    an application trigger; LOGIN events through the outbox) each attributed to its user
    by the tag: every committed change and event once, none of the rolled-back ones, in
    commit order."""
    manifest, got = binlog_run
    transactions = manifest["transactions"]
    assert manifest["leaked_user_variables"] == 0

    # Each committed transaction once, with exactly its events, in statement order.
    stored = [tuple(stored_signature(e) for e in group) for group in by_transaction(got)]
    expected = [tuple(expected_signature(m) for m in t["events"]) for t in transactions]
    missing = Counter(expected) - Counter(stored)
    extra = Counter(stored) - Counter(expected)
    assert not missing and not extra, (
        f"{sum(missing.values())} transactions missing, e.g. {list(missing)[:2]}; "
        f"{sum(extra.values())} not in the manifest, e.g. {list(extra)[:2]}"
    )
    assert len(got) == manifest["event_count"]

    # None of the rolled-back work: no event holds a value they wrote.
    kinds = Counter(r["kind"] for r in manifest["rolled_back"] if r["expected"])
    assert kinds["rollback"] and kinds["long_rollback"] and kinds["fail_midway"], kinds
    text = "\n".join(json.dumps(e["data"], ensure_ascii=False) for e in got)
    for rolled_back in manifest["rolled_back"]:
        for marker in rolled_back["markers"]:
            assert marker not in text, f"{rolled_back['kind']} left events"

    # The tags: the user of every event of a tagged request, its route in the context.
    for t, group in zip(transactions, expected, strict=True):
        for sig in group:
            if t["route"] is None:  # the script: no tag, the row's updated_by
                assert json.loads(sig[5]) is None and json.loads(sig[4]) == "script:nightly"
            else:
                assert json.loads(sig[5])["route"] == t["route"]
                assert json.loads(sig[4]) == t["user_id"]
    assert any(e["table_name"] == "patient_audit" for e in got)  # the application's trigger
    assert {e["type"] for e in got} >= {"CREATE", "UPDATE", "DELETE", "CASCADE", "LOGIN"}

    # Commit order: each row's history as the manifest has it (each worker changes its
    # own rows, one transaction after another) ...
    assert row_histories(stored, changes_only=True) == row_histories(
        [list(s) for s in expected],  # manifest: transactions by commit time
        changes_only=True,
    )
    # ... and a transaction whose COMMIT returned before another's COMMIT was sent
    # comes first (for the transactions the manifest tells apart).
    unique = {sig for sig, n in Counter(expected).items() if n == 1}
    position = {sig: i for i, sig in enumerate(stored) if sig in unique}
    timed = [
        (t, position[sig]) for t, sig in zip(transactions, expected, strict=True) if sig in unique
    ]
    for a, a_pos in timed:
        for b, b_pos in timed:
            if a["commit_done_ms"] < b["last_statement_ms"]:
                assert a_pos < b_pos, (
                    f"{a['request_id']} committed before {b['request_id']} sent COMMIT, "
                    "but its events come after"
                )
    # Long transactions were held open across other workers' commits (and so come after).
    assert any(
        long_["kind"] == "long_visit"
        and other["worker"] != long_["worker"]
        and long_["begin_ms"] < other["begin_ms"]
        and other["commit_done_ms"] < long_["last_statement_ms"]
        for long_, _ in timed
        for other, _ in timed
    )


# -- the Python examples --


def test_sqlalchemy_example_tags_statements_and_clears_the_user(mariadb: MariaDB) -> None:
    app = "ex_sqla"
    with captured(mariadb, app, "--user-column", "updated_by", "--context-tags", "route") as (
        conn,
        proc,
    ):
        result = run_python_example(
            "sqlalchemy_attribution.py",
            "--dsn", f"mysql://root@127.0.0.1:{mariadb.port}/{app}",
            "--events-db", f"{app}_cdc",
        )  # fmt: skip
        got = all_events(conn, proc, app)
    assert result["user_after_each"] == [None] * 4  # nothing left on the pooled connection
    row = result["appointment_id"]
    assert [
        (e["type"], e["table_name"], key_value(e["row_id"]), e["user_id"], context(e)) for e in got
    ] == [
        ("CREATE", "appointment", row, "7", {"route": "/appointments/new"}),
        ("LOGIN", None, None, "o'neil", {"route": "/appointments/1/confirm"}),
        ("UPDATE", "appointment", row, "o'neil", {"route": "/appointments/1/confirm"}),
        ("UPDATE", "appointment", row, "job:reminders", None),  # no tag: the row's column
        ("DELETE", "appointment", row, "12", {"route": "/appointments/1/cancel"}),
    ]
    assert got[1]["data"] == {"ip": "10.0.0.8"}
    assert got[1]["txn"] == got[2]["txn"]  # the LOGIN in the change's transaction


def test_django_example_tags_statements_and_clears_the_user(mariadb: MariaDB) -> None:
    app = "ex_django"
    with captured(mariadb, app, "--user-column", "updated_by", "--context-tags", "route") as (
        conn,
        proc,
    ):
        result = run_python_example(
            "django_attribution.py",
            "--dsn", f"mysql://root@127.0.0.1:{mariadb.port}/{app}",
            "--events-db", f"{app}_cdc",
        )  # fmt: skip
        got = all_events(conn, proc, app)
    assert result["user_after_each"] == [None] * 4  # nothing left on the persistent connection
    row = result["lab_result_id"]
    assert [
        (e["type"], e["table_name"], key_value(e["row_id"]), e["user_id"], context(e)) for e in got
    ] == [
        ("CREATE", "lab_result", row, "7", {"route": "/lab/orders/"}),
        ("LOGIN", None, None, "o'neil", {"route": "/lab/results/1/"}),
        ("UPDATE", "lab_result", row, "o'neil", {"route": "/lab/results/1/"}),
        ("UPDATE", "lab_result", row, "job:qc", None),  # no tag: the row's column
        ("DELETE", "lab_result", row, "12", {"route": "/lab/results/1/delete/"}),
    ]
    assert got[1]["txn"] == got[2]["txn"]


# -- the same workload in trigger mode, on a server without a binlog --


@pytest.fixture(scope="module")
def unlogged() -> Iterator[MariaDB]:
    """A throwaway MariaDB started without a binary log (no replication possible)."""
    server = MariaDB(capture=False).start()
    try:
        yield server
    finally:
        server.stop()


def _triggers_cli(server: MariaDB, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cdc_command("triggers", *args),
        env=dict(os.environ, CDC_DSN=f"mysql://root@127.0.0.1:{server.port}/{db}"),
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _stream_until_done(url: str, count: int) -> list[dict[str, Any]]:
    """Every event of the stream from the start, up to the `done` table's."""
    async with aiohttp.ClientSession() as session, stream(session, url, last_event_id=0) as sse:
        got: list[dict[str, Any]] = []
        while not got or got[-1]["table"] != DONE:
            got += await asyncio.wait_for(sse.events(1), timeout=180)
            assert len(got) <= count, "the stream sent more events than the table holds"
        return got


def test_node_workload_in_trigger_mode_gives_the_binlog_events(
    unlogged: MariaDB,
    node_workload: Path,
    binlog_run: tuple[dict[str, Any], list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    """On a server without a binlog, next to the application's own trigger: the Node
    app's every committed change and LOGIN once, with the users @cdc_user_id (or the row)
    gives, in each row's order; the same events and users as binlog capture of the same
    workload; and `cdc triggers remove` leaves the schema as it was."""
    app, db = "ex_trig", "ex_trig_cdc"
    conn = fresh_schema(unlogged, app, f"CREATE TABLE {{db}}.{DONE} (id INT PRIMARY KEY)")
    dsn = f"mysql://root@127.0.0.1:{unlogged.port}/{app}"
    run_workload(node_workload, dsn, db, tmp_path / "schema.json", 0)  # the schema alone
    before = schema_snapshot(conn, app)
    check = subprocess.run(
        cdc_command("check", "--capture", "triggers"),
        env=dict(os.environ, CDC_DSN=f"mysql://root@127.0.0.1:{unlogged.port}/{db}"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 1 and "[FAIL] capture triggers: none installed" in check.stdout
    done = _triggers_cli(unlogged, db, "install", "--include", f"{app}.*")
    assert done.returncode == 0, done.stderr
    check = subprocess.run(
        cdc_command("check", "--capture", "triggers"),
        env=dict(os.environ, CDC_DSN=f"mysql://root@127.0.0.1:{unlogged.port}/{db}"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout
    port = free_port()
    proc = start_daemon(
        unlogged,
        "--capture", "triggers", "--include", f"{app}.*", "--user-column", "updated_by",
        db=db,
        http=port,
    )  # fmt: skip
    wait_ready(conn, proc, db)
    manifest_path = tmp_path / "manifest.json"
    run_workload(node_workload, dsn, db, manifest_path, WORKLOAD_TRANSACTIONS)
    manifest = json.loads(manifest_path.read_text())
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO `{app}`.{DONE} VALUES (1)")
    streamed = asyncio.run(_stream_until_done(f"http://127.0.0.1:{port}", 10_000))
    code, log = stop_daemon(proc)
    assert code == 0, log[-3000:]
    got = events(conn, db)
    assert [e["id"] for e in got] == list(range(1, len(got) + 1))  # gapless
    assert [e["id"] for e in streamed] == [e["id"] for e in got]
    assert [(e["type"], e["table"], e["user_id"]) for e in streamed] == [
        (e["type"], e["table_name"], key_value(e["user_id"])) for e in got
    ]
    got = got[:-1]  # the `done` row's

    # Every committed change and event once, none of the rolled-back ones. Trigger mode
    # reads no statement tags: the users come from @cdc_user_id, there is no context.
    stored = [stored_signature(e) for e in got]
    expected = [
        expected_signature({**m, "context": None})
        for t in manifest["transactions"]
        for m in t["events"]
    ]
    missing, extra = Counter(expected) - Counter(stored), Counter(stored) - Counter(expected)
    assert not missing and not extra, (
        f"{sum(missing.values())} events missing, e.g. {list(missing)[:2]}; "
        f"{sum(extra.values())} not in the manifest, e.g. {list(extra)[:2]}"
    )
    text = "\n".join(json.dumps(e["data"], ensure_ascii=False) for e in got)
    for rolled_back in manifest["rolled_back"]:
        for marker in rolled_back["markers"]:
            assert marker not in text, f"{rolled_back['kind']} left events"
    assert {e["type"] for e in got} >= {"CREATE", "UPDATE", "DELETE", "CASCADE", "LOGIN"}
    assert any(e["table_name"] == "patient_audit" for e in got)  # the application's trigger
    # Each row's changes in the order they were made (its application events are in
    # the multiset above).
    assert row_histories([stored], changes_only=True) == row_histories(
        [[expected_signature({**m, "context": None}) for m in t["events"]]
         for t in manifest["transactions"]],
        changes_only=True,
    )  # fmt: skip

    # The same events and users as binlog capture of the same workload (row ids aside:
    # AUTO_INCREMENT follows the interleaving).
    def shape(e: dict[str, Any]) -> tuple[Any, ...]:
        data = None if e["type"] in ROW_TYPES else _canon(e["data"])
        return (e["type"], e["table_name"], e["user_id"], data)

    binlog_manifest, binlog_events = binlog_run
    assert len(binlog_manifest["transactions"]) == len(manifest["transactions"])
    assert Counter(map(shape, got)) == Counter(map(shape, binlog_events))

    removed = _triggers_cli(unlogged, db, "remove")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert schema_snapshot(conn, app) == before
    conn.close()

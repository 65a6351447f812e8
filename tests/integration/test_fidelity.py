"""Values and changes capture must not lose or get wrong, end to end through `cdc run`:
bytes not valid in their character set, column facts as of each row's position."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

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


@pytest.fixture
def app(mariadb: MariaDB, request: pytest.FixtureRequest) -> Iterator[tuple[MariaDB, str, Any]]:
    db = "f_" + request.node.name[5:30]
    conn = fresh_schema(mariadb, db)
    yield mariadb, db, conn
    conn.close()


def run(conn: Any, *statements: str) -> None:
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def log_lines(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def test_bytes_not_valid_utf8_are_kept_and_capture_goes_on(app: tuple[MariaDB, str, Any]) -> None:
    server, db, conn = app
    run(
        conn,
        f"CREATE TABLE `{db}`.p (id INT PRIMARY KEY, name VARCHAR(20), note TEXT) CHARACTER SET utf8mb4",
    )
    proc = start_daemon(server, db=f"{db}_cdc")
    try:
        wait_ready(conn, proc, f"{db}_cdc")
        run(
            conn,
            f"INSERT INTO `{db}`.p VALUES (1, x'416eeda0bd', 'ok')",  # a UTF-16 surrogate
            f"INSERT INTO `{db}`.p VALUES (2, x'eda080', x'edb080')",
            f"UPDATE `{db}`.p SET name = 'Ann' WHERE id = 1",
            f"INSERT INTO `{db}`.p VALUES (3, 'after', 'all well')",
        )
        wait_for_events(conn, 4, proc=proc, db=f"{db}_cdc")
    finally:
        code, log = stop_daemon(proc)
    # A restart reads them again without a fault (nothing is left to stop on).
    proc = start_daemon(server, db=f"{db}_cdc")
    try:
        wait_ready(conn, proc, f"{db}_cdc")
        run(conn, f"INSERT INTO `{db}`.p VALUES (4, x'edbfbf', 'x')")
        wait_for_events(conn, 5, proc=proc, db=f"{db}_cdc")
    finally:
        code2, log2 = stop_daemon(proc)
    assert code == code2 == 0, log + log2
    got = [e["data"] for e in events(conn, f"{db}_cdc")]
    bad = {"charset": "utf8mb4", "hex": "416eeda0bd"}
    assert got[0]["after"]["name"] == bad
    assert got[1]["after"] == {
        "id": 2,
        "name": {"charset": "utf8mb4", "hex": "eda080"},
        "note": {"charset": "utf8mb4", "hex": "edb080"},
    }
    assert got[2]["before"]["name"] == bad and got[2]["after"]["name"] == "Ann"
    assert got[2]["changed"] == ["name"]
    assert got[3]["after"]["name"] == "after"
    assert got[4]["after"]["name"] == {"charset": "utf8mb4", "hex": "edbfbf"}
    # Logged once per column, with the position, never the value.
    noticed = [e for e in log_lines(log) if e["event"] == "text_not_valid_in_charset"]
    assert [(e["table"], e["column"], e["charset"]) for e in noticed] == [
        ("p", "name", "utf8mb4"),
        ("p", "note", "utf8mb4"),
    ]
    assert all(e["position"].startswith("binlog.") for e in noticed)
    assert "416eeda0bd" not in log and "eda0bd" not in log


def test_column_facts_belong_to_each_rows_position(app: tuple[MariaDB, str, Any]) -> None:
    """JSON, UUID and their changes, written while the daemon is down and read later: each
    row is shown as its table was when the row was written, across a restart too."""
    server, db, conn = app
    t = f"`{db}`.t"
    run(conn, f"CREATE TABLE {t} (id INT PRIMARY KEY, j JSON, u UUID)")
    proc = start_daemon(server, "--include", f"{db}.*", db=f"{db}_cdc")
    wait_ready(conn, proc, f"{db}_cdc")
    assert stop_daemon(proc)[0] == 0
    uuid = "123e4567-e89b-12d3-a456-426614174000"
    run(
        conn,
        f"INSERT INTO {t} VALUES (1, '{{\"foo\": false}}', '{uuid}')",
        f"ALTER TABLE {t} MODIFY j TEXT",
        f"INSERT INTO {t} VALUES (2, '{{\"foo\": false}}', '{uuid}')",
        f"ALTER TABLE {t} MODIFY j JSON",
        f"INSERT INTO {t} VALUES (3, 'false', '{uuid}')",
    )
    proc = start_daemon(server, "--include", f"{db}.*", db=f"{db}_cdc")
    try:
        wait_for_events(conn, 3, proc=proc, db=f"{db}_cdc")
    finally:
        assert stop_daemon(proc)[0] == 0
    # The stored facts, not today's information_schema, carry on from the checkpoint.
    run(
        conn,
        f"DROP TABLE {t}",
        f"CREATE TABLE {t} (id INT PRIMARY KEY, j LONGTEXT, u BINARY(16))",
        f"INSERT INTO {t} VALUES (4, 'false', x'0102030405060708090a0b0c0d0e0f10')",
        f"DROP TABLE {t}",
        f"CREATE TABLE {t} (id INT PRIMARY KEY, j JSON, u UUID)",
        f"INSERT INTO {t} VALUES (5, '[1]', '{uuid}')",
        f"ALTER TABLE {t} CHANGE u u BINARY(16)",
        f"INSERT INTO {t} VALUES (6, '[2]', x'0102030405060708090a0b0c0d0e0f10')",
    )
    proc = start_daemon(server, "--include", f"{db}.*", db=f"{db}_cdc")
    try:
        wait_for_events(conn, 6, proc=proc, db=f"{db}_cdc")
    finally:
        code, log = stop_daemon(proc)
    assert code == 0, log
    rows = [e["data"]["after"] for e in events(conn, f"{db}_cdc")]
    raw = "0102030405060708090a0b0c0d0e0f10"
    assert [(r["j"], r["u"]) for r in rows] == [
        ({"foo": False}, uuid),
        ('{"foo": false}', uuid),
        (False, uuid),
        ("false", raw),
        ([1], uuid),
        ([2], raw),
    ]
    assert "column_facts_unknown" not in log


CASCADING_SCHEMA = (
    "CREATE TABLE {db}.patient (id INT PRIMARY KEY, name VARCHAR(20)) ENGINE=InnoDB",
    "CREATE TABLE {db}.visit (id INT PRIMARY KEY, patient_id INT, note VARCHAR(20),"
    " FOREIGN KEY (patient_id) REFERENCES {db}.patient (id) ON DELETE CASCADE ON UPDATE CASCADE)",
    "CREATE TABLE {db}.visit_item (id INT PRIMARY KEY, visit_id INT NOT NULL, what VARCHAR(20),"
    " FOREIGN KEY (visit_id) REFERENCES {db}.visit (id) ON DELETE CASCADE)",
    "CREATE TABLE {db}.invoice (id INT PRIMARY KEY, patient_id INT, amount DECIMAL(8,2),"
    " FOREIGN KEY (patient_id) REFERENCES {db}.patient (id) ON DELETE SET NULL ON UPDATE SET NULL)",
    "CREATE TABLE {db}.employee (id INT PRIMARY KEY, manager_id INT,"
    " FOREIGN KEY (manager_id) REFERENCES {db}.employee (id) ON DELETE CASCADE)",
)


def test_foreign_key_cascades_become_events_a_replay_applies(mariadb: MariaDB) -> None:
    db = "f_cascades"
    conn = fresh_schema(mariadb, db, *CASCADING_SCHEMA)
    tables = [(db, t) for t in ("patient", "visit", "visit_item", "invoice", "employee")]
    proc = start_daemon(mariadb, "--include", f"{db}.*", db=f"{db}_cdc")
    try:
        wait_ready(conn, proc, f"{db}_cdc")
        run(
            conn,
            f"INSERT INTO `{db}`.patient VALUES (1, 'Ann'), (2, 'Bob'), (3, 'Cy')",
            f"INSERT INTO `{db}`.visit VALUES (10, 1, 'a'), (11, 1, 'b'), (12, 2, 'c'), (13, 3, 'd')",
            f"INSERT INTO `{db}`.visit_item VALUES (100, 10, 'x'), (101, 10, 'y'), (102, 11, 'z'),"
            " (103, 12, 'w')",
            f"INSERT INTO `{db}`.invoice VALUES (1000, 1, 5.00), (1001, 2, 7.50), (1002, NULL, 1)",
            f"INSERT INTO `{db}`.employee VALUES (1, NULL), (2, 1), (3, 1)",
            f"DELETE FROM `{db}`.patient WHERE id = 1",  # two levels deep, and SET NULL
            f"UPDATE `{db}`.patient SET id = 20 WHERE id = 2",  # ON UPDATE CASCADE
            f"UPDATE `{db}`.patient SET name = 'Cyd' WHERE id = 3",  # no key change: none
            f"DELETE FROM `{db}`.employee WHERE id = 1",  # a table referring to itself
        )
        wait_for_events(conn, 23, proc=proc, db=f"{db}_cdc")
    finally:
        code, log = stop_daemon(proc)
    assert code == 0, log
    got = events(conn, f"{db}_cdc")
    cascades = [(e["table_name"], e["data"]) for e in got if e["type"] == "CASCADE"]
    delete = next(e["id"] for e in got if e["type"] == "DELETE" and e["table_name"] == "patient")
    update = next(e["id"] for e in got if e["type"] == "UPDATE" and e["row_id"] == "20")
    visits = {"in": {"schema": db, "table": "visit", "column": "id", "where": {"patient_id": 1}}}
    assert cascades[:3] == [  # each right after its cause, a cascade's own cascades first
        ("visit_item", {"action": "DELETE", "where": {"visit_id": visits}, "cause": delete}),
        ("visit", {"action": "DELETE", "where": {"patient_id": 1}, "cause": delete}),
        ("invoice", {"action": "SET NULL", "where": {"patient_id": 1}, "set": {"patient_id": None},
                     "cause": delete}),
    ]  # fmt: skip
    assert cascades[3:5] == [
        ("visit", {"action": "UPDATE", "where": {"patient_id": 2}, "set": {"patient_id": 20},
                   "cause": update}),
        ("invoice", {"action": "SET NULL", "where": {"patient_id": 2}, "set": {"patient_id": None},
                     "cause": update}),
    ]  # fmt: skip
    assert [t for t, _ in cascades[5:]] == ["employee"]
    assert all(e["row_id"] is None for e in got if e["type"] == "CASCADE")
    assert [e["id"] for e in got] == list(range(1, len(got) + 1))
    assert "cascade_cycle_not_followed" in log
    assert_replay_matches(conn, tables, f"{db}_cdc")
    conn.close()


def test_strange_data_is_captured_whole(app: tuple[MariaDB, str, Any]) -> None:
    """Names with spaces, quotes, backticks and non-ASCII letters, a 16 MB blob, JSON
    nested as deep as MariaDB allows, every byte of latin1: captured, and replayed."""
    server, db, conn = app
    table = 'we ird`tab "ü"'
    quoted = "`" + table.replace("`", "``") + "`"
    run(
        conn,
        f'CREATE TABLE `{db}`.{quoted} (`id col` INT PRIMARY KEY, `quo"te` LONGBLOB,'
        " `back``tick` JSON, `naïve` VARCHAR(300) CHARACTER SET latin1) CHARACTER SET utf8mb4",
    )
    deep = "[" * 31 + "]" * 31  # as deep as MariaDB's json_valid allows
    proc = start_daemon(server, db=f"{db}_cdc")
    try:
        wait_ready(conn, proc, f"{db}_cdc")
        with conn.cursor() as cur:
            cur.execute(
                f"INSERT INTO `{db}`.{quoted} VALUES (1, %s, %s, UNHEX(%s))",
                (bytes(range(256)) * 65536, deep, bytes(range(1, 256)).hex()),
            )
        wait_for_events(conn, 1, proc=proc, db=f"{db}_cdc")
    finally:
        code, log = stop_daemon(proc)
    assert code == 0, log
    (event,) = events(conn, f"{db}_cdc")
    assert event["table_name"] == table
    after = event["data"]["after"]
    assert list(after) == ["id col", 'quo"te', "back`tick", "naïve"]
    assert len(after['quo"te']) == 2 * 16 * 1024 * 1024
    # Deeper than an event's data may hold in MariaDB (32 levels): kept as its JSON text.
    assert after["back`tick"] == deep
    assert_replay_matches(conn, [(db, table)], f"{db}_cdc")

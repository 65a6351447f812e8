"""Trigger mode against binlog capture, on the same writes: every value of every type.

Capture triggers are installed on tables of every captured type (one of 300 columns, one
without a key), then one workload of inserts, updates (random columns, NULLs) and deletes
runs once. The binlog of that range is read by the compiled decoder, the staging table by
the mover, and the two event lists must be equal: same events in the same order, same
`data` to the value and its type, same `row_id` and `user_id`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import random
import threading
from typing import Any

import pytest

from cdc._testing.mariadb import MariaDB
from cdc.capture.binlog.source import BinlogSource
from cdc.capture.triggers.install import Triggers
from cdc.capture.triggers.mover import TriggerSource
from cdc.capture.triggers.spec import key_id, key_pads
from cdc.models import ChangeRecord, Changes, Position
from cdc.settings import CaptureSettings, Dsn
from tests.column_types import TYPES, Type

DB = "trigger_diff"
WIDE = {f"w{i}": t for i, t in zip(range(300), itertools.cycle(TYPES.values()), strict=False)}
_server_ids = itertools.count(4300)


def _dsn(server: MariaDB) -> Dsn:
    return Dsn.parse(f"mysql://root@127.0.0.1:{server.port}/cdc")


def _ddl(table: str, columns: dict[str, Type], key: bool = True) -> str:
    body = [f"`{name}` {t.ddl}" for name, t in columns.items()]
    if key:
        body.insert(0, "id INT PRIMARY KEY")
    return f"CREATE TABLE {DB}.{table} ({', '.join(body)}) CHARACTER SET utf8mb4"


def _values(rng: random.Random, columns: dict[str, Type], null_rate: float) -> list[str]:
    return ["NULL" if rng.random() < null_rate else rng.choice(t.values) for t in columns.values()]


def _write(cur: Any) -> None:
    rng = random.Random(11)
    names = ", ".join(f"`{n}`" for n in TYPES)
    for n in range(60):
        values = [t.values[n % len(t.values)] for t in TYPES.values()]
        if n >= 10:
            values = _values(rng, TYPES, 0.3)
        cur.execute(f"INSERT INTO {DB}.types (id, {names}) VALUES ({n}, {', '.join(values)})")
    cur.execute(f"INSERT INTO {DB}.types (id) VALUES (60)")  # every column NULL
    wide = ", ".join(f"`{n}`" for n in WIDE)
    for n in range(8):
        row = ", ".join(_values(rng, WIDE, n / 8))
        cur.execute(f"INSERT INTO {DB}.wide (id, {wide}) VALUES ({n}, {row})")
    cur.execute(f"INSERT INTO {DB}.one VALUES (1), (NULL), (-7)")
    for n in range(0, 60, 3):
        changes = rng.sample(sorted(TYPES), 4)
        sets = ", ".join(f"`{c}` = {rng.choice((*TYPES[c].values, 'NULL'))}" for c in changes)
        cur.execute(f"UPDATE {DB}.types SET {sets} WHERE id BETWEEN {n} AND {n + 1}")
    cur.execute(f"UPDATE {DB}.types SET i = i WHERE id < 5")  # changes nothing: no event
    cur.execute(f"UPDATE {DB}.wide SET w0 = -w0, w7 = NULL WHERE id % 2 = 0")
    cur.execute(f"UPDATE {DB}.one SET v = 2 WHERE v IS NULL")
    cur.execute(f"DELETE FROM {DB}.types WHERE id % 5 = 4")
    cur.execute(f"DELETE FROM {DB}.wide WHERE id > 5")
    cur.execute(f"DELETE FROM {DB}.one WHERE v = -7")


@pytest.fixture(scope="module")
def captured(mariadb: MariaDB) -> tuple[list[ChangeRecord], list[ChangeRecord]]:
    """(binlog records, trigger records) of the same workload."""
    conn = mariadb.connect()
    settings = CaptureSettings(server_id=next(_server_ids), include=(f"{DB}.*",))
    triggers = Triggers(_dsn(mariadb), settings, None)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")
            cur.execute(f"CREATE DATABASE {DB}")
            cur.execute(_ddl("types", TYPES))
            cur.execute(_ddl("wide", WIDE))
            cur.execute(f"CREATE TABLE {DB}.one (v INT)")
            assert len(triggers.install()) >= 3
            cur.execute("SHOW MASTER STATUS")
            file, pos = cur.fetchone()[:2]
            _write(cur)
        binlog = BinlogSource(_dsn(mariadb), settings, is_mariadb=True, blocking=False)
        from_binlog = _records(binlog.read(Position(file, int(pos)), threading.Event()))
        mover = TriggerSource(_dsn(mariadb), settings, None, blocking=False)
        from_triggers = _records(mover.read(mover.current(), threading.Event()))
        yield from_binlog, from_triggers
    finally:
        triggers.remove(force=True)
        conn.close()


def _records(items: Any) -> list[ChangeRecord]:
    return [r for item in items if isinstance(item, Changes) for r in item.records]


def test_every_change_becomes_the_same_event(
    captured: tuple[list[ChangeRecord], list[ChangeRecord]],
) -> None:
    binlog, triggers = captured
    assert len(binlog) > 120
    assert [(r.type, r.table, r.row_id) for r in triggers] == [
        (r.type, r.table, r.row_id) for r in binlog
    ]


def test_values_are_equal_to_the_value_and_its_type(
    captured: tuple[list[ChangeRecord], list[ChangeRecord]],
) -> None:
    """Text in every character set, bytes invalid in theirs, labels outside UTF-8,
    invalid dates, FLOAT, DECIMAL, TIMESTAMP, BIT, JSON, UUID, INET: as from the binlog."""
    for ours, theirs in zip(*reversed(captured), strict=True):
        for side in ("before", "after"):
            if side not in theirs.data:
                assert side not in ours.data
                continue
            mine, expected = ours.data[side], theirs.data[side]
            assert list(mine) == list(expected), "column names and order"
            for name, value in mine.items():
                want = expected[name]
                assert value == want and type(value) is type(want), (
                    f"{ours.table}.{name} ({side}, row {ours.row_id}): "
                    f"triggers {value!r}, binlog {want!r}"
                )
        assert ours.data == theirs.data
        assert (ours.row_id, ours.user_id) == (theirs.row_id, theirs.user_id)


def test_the_triggers_hash_as_hmac_sha256(mariadb: MariaDB) -> None:
    """The SQL HMAC from the stored pads is RFC 2104's: keys shorter and longer than a
    block, and messages of any bytes."""
    conn = mariadb.connect()
    try:
        with conn.cursor() as cur:
            for key in (b"k", b"x" * 64, bytes(range(256)) * 2):
                ipad, opad = key_pads(key)
                for message in (b"", b"null", b"0123ABCD" * 100):
                    cur.execute(
                        "SELECT SHA2(CONCAT(%s, UNHEX(SHA2(CONCAT(%s, %s), 256))), 256)",
                        (opad, ipad, message),
                    )
                    expected = hmac.new(key, message, hashlib.sha256).hexdigest()
                    assert cur.fetchone()[0] == expected
            assert key_id(b"k") != key_id(b"x" * 64)
    finally:
        conn.close()

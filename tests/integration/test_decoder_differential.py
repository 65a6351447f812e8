"""The compiled decoder against the library's, and against the server, on one real binlog.

A throwaway MariaDB gets tables of every captured type (1, 63 and 300 columns), rows
with NULL patterns, updates, deletes and an ALTER TABLE in the middle. The same binlog
range is read by `BinlogReader` twice, `decoder="library"` and `decoder="fast"`, and the
events are compared value for value. They may differ only where the library is known to
be wrong (zero and partial dates, which it gives as None); there, and for every table's
final state, the fast decoder must agree with what the server shows to a SELECT.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from structlog.testing import capture_logs

from cdc._testing.mariadb import MariaDB
from cdc.capture.binlog import library as binlog_library
from cdc.capture.binlog.source import BinlogSource
from cdc.errors import DecodeError
from cdc.models import ChangeRecord, Changes, Op, Position
from cdc.settings import CaptureSettings, Decoder, Dsn
from tests.column_types import DATETIME, TEXT, TIMESTAMP, TYPES, Type

DB = "decoder_diff"
_server_ids = itertools.count(4100)


def _ddl(table: str, columns: dict[str, Type], key: bool = True) -> str:
    body = [f"`{name}` {t.ddl}" for name, t in columns.items()]
    if key:
        body.insert(0, "id INT PRIMARY KEY")
    return f"CREATE TABLE {DB}.{table} ({', '.join(body)}) CHARACTER SET utf8mb4"


def _row(rng: random.Random, columns: dict[str, Type], null_rate: float) -> list[str]:
    return ["NULL" if rng.random() < null_rate else rng.choice(t.values) for t in columns.values()]


def _insert(cur: Any, table: str, rows: list[list[str]], names: list[str]) -> None:
    cols = ", ".join(f"`{n}`" for n in names)
    for chunk in range(0, len(rows), 20):
        values = ", ".join(f"({', '.join(r)})" for r in rows[chunk : chunk + 20])
        cur.execute(f"INSERT INTO {DB}.{table} ({cols}) VALUES {values}")


WIDE = {f"w{i}": t for i, t in zip(range(300), itertools.cycle(TYPES.values()), strict=False)}


@dataclass
class Workload:
    start: Position
    tables: dict[str, dict[str, Type]]


def _write(server: MariaDB) -> Workload:
    rng = random.Random(4)
    conn = server.connect()
    with conn.cursor() as cur:
        # Zero, partial and invalid dates, invalid ENUM values.
        cur.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
        cur.execute(_ddl("types", TYPES))
        cur.execute(_ddl("wide", WIDE))
        cur.execute(f"CREATE TABLE {DB}.one (v INT)")
        # Every value of every type at least once, in rows of random NULL patterns.
        names = ["id", *TYPES]
        rows = []
        for n in range(120):
            values = [t.values[n % len(t.values)] for t in TYPES.values()]
            if n >= 10:
                values = _row(rng, TYPES, 0.3 if n < 100 else 0.9)
            rows.append([str(n), *values])
        rows.append([str(len(rows)), *["NULL"] * len(TYPES)])
        _insert(cur, "types", rows, names)
        wide = [[str(n), *_row(rng, WIDE, n / 30)] for n in range(31)]
        _insert(cur, "wide", wide, ["id", *WIDE])
        cur.execute(f"INSERT INTO {DB}.one VALUES (1), (NULL), (-7)")
        # Updates touching random columns, deletes, then an ALTER and more changes.
        for n in range(0, 120, 3):
            changes = rng.sample(sorted(TYPES), 4)
            sets = ", ".join(f"`{c}` = {rng.choice((*TYPES[c].values, 'NULL'))}" for c in changes)
            cur.execute(f"UPDATE {DB}.types SET {sets} WHERE id BETWEEN {n} AND {n + 1}")
        cur.execute(f"UPDATE {DB}.wide SET w0 = -w0, w7 = NULL WHERE id % 2 = 0")
        cur.execute(f"UPDATE {DB}.one SET v = 2 WHERE v IS NULL")
        cur.execute(f"DELETE FROM {DB}.types WHERE id % 5 = 4")
        cur.execute(f"DELETE FROM {DB}.wide WHERE id > 25")
        cur.execute(f"DELETE FROM {DB}.one WHERE v = -7")
        cur.execute(f"ALTER TABLE {DB}.types ADD COLUMN extra VARCHAR(5) DEFAULT 'new' AFTER id")
        cur.execute(f"UPDATE {DB}.types SET extra = 'upd', dt = '2026-02-00' WHERE id < 12")
        cur.execute(
            f"INSERT INTO {DB}.types (id, extra, u, dtm6) VALUES (1000, NULL, "
            "'00000000-0000-0000-0000-000000000001', '2026-00-00 00:00:00.000001')"
        )
        # One big transaction: a rows event of many rows, split over several events.
        cur.execute("BEGIN")
        cur.execute(f"UPDATE {DB}.types SET i = 1 WHERE id < 1000")
        cur.execute(f"DELETE FROM {DB}.types WHERE id >= 100")
        cur.execute("COMMIT")
    conn.close()
    tables = {"types": {"extra": Type("VARCHAR(5)", ()), **TYPES}, "wide": WIDE}
    tables["one"] = {"v": Type("INT", ())}
    return Workload(Position(file, int(pos)), tables)


WORKLOAD_TABLES = ("types", "wide", "one")


def read(
    server: MariaDB, start: Position, decoder: str, tables: tuple[str, ...] = WORKLOAD_TABLES
) -> list[ChangeRecord]:
    """The records of a binlog range; the fast path must not have handed a table back."""
    with capture_logs() as logs:
        records = _read(server, start, decoder, tables)
    assert [e for e in logs if e["event"] == "fast_decoder_fallback"] == []
    return records


def _read(
    server: MariaDB, start: Position, decoder: str, tables: tuple[str, ...]
) -> list[ChangeRecord]:
    settings = CaptureSettings(
        server_id=next(_server_ids),
        include=tuple(f"{DB}.{table}" for table in tables),
        decoder=Decoder(decoder),
    )
    dsn = Dsn.parse(f"mysql://root@127.0.0.1:{server.port}/cdc")
    source = BinlogSource(dsn, settings, is_mariadb=True, blocking=False)
    records: list[ChangeRecord] = []
    for item in source.read(start, threading.Event()):
        if isinstance(item, Changes):
            records.extend(item.records)
    return records


@pytest.fixture(scope="module")
def workload(mariadb: MariaDB) -> Workload:
    return _write(mariadb)


@pytest.fixture(scope="module")
def library(mariadb: MariaDB, workload: Workload) -> list[ChangeRecord]:
    return read(mariadb, workload.start, "library")


@pytest.fixture(scope="module")
def fast(mariadb: MariaDB, workload: Workload) -> list[ChangeRecord]:
    return read(mariadb, workload.start, "fast")


def _images(record: ChangeRecord) -> Iterator[tuple[str, dict[str, Any]]]:
    for side in ("before", "after"):
        if side in record.data:
            yield side, record.data[side]


def test_every_change_is_read_by_both(
    library: list[ChangeRecord], fast: list[ChangeRecord]
) -> None:
    assert len(fast) == len(library) > 350
    kinds = {(r.table, r.type) for r in fast}
    for table in WORKLOAD_TABLES:
        assert {(table, op) for op in Op} <= kinds


def test_fast_and_library_agree_value_for_value(
    library: list[ChangeRecord], fast: list[ChangeRecord]
) -> None:
    """Equal everywhere, to the value and its type: invalid and partial dates, text in
    every character set, bytes not valid in theirs, labels outside UTF-8 included."""
    for lib, ours in zip(library, fast, strict=True):
        assert (ours.type, ours.schema, ours.table, ours.txn) == (
            lib.type,
            lib.schema,
            lib.table,
            lib.txn,
        )
        assert ours.timestamp == lib.timestamp
        for (side, lib_image), (_, our_image) in zip(_images(lib), _images(ours), strict=True):
            assert list(our_image) == list(lib_image), "column names and order"
            for name, value in our_image.items():
                expected = lib_image[name]
                assert value == expected and type(value) is type(expected), (
                    f"{ours.table}.{name} ({side}): fast {value!r}, library {expected!r}"
                )
        assert ours.data == lib.data
        assert ours.row_id == lib.row_id and ours.user_id == lib.user_id


def _final_state(records: list[ChangeRecord], table: str) -> dict[Any, dict[str, Any]]:
    """The rows left by the events of a table with an `id` key, by id."""
    rows: dict[Any, dict[str, Any]] = {}
    for record in records:
        if record.table == table:
            if record.type is Op.DELETE:
                del rows[record.row_id]
            else:
                rows[record.row_id] = record.data["after"]
    return rows


def _final_rows(records: list[ChangeRecord], table: str) -> list[dict[str, Any]]:
    """The rows left by the events of a table without a key."""
    rows: list[dict[str, Any]] = []
    for record in records:
        if record.table == table:
            if record.type is not Op.CREATE:
                rows.remove(record.data["before"])
            if record.type is not Op.DELETE:
                rows.append(record.data["after"])
    return rows


def _select(server: MariaDB, table: str, columns: dict[str, Type]) -> list[dict[str, Any]]:
    conn = server.connect(DB)
    try:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            names = list(columns)
            exprs = ", ".join(columns[n].select.format(c=f"`{n}`") for n in names)
            key = "id, " if table != "one" else ""
            cur.execute(f"SELECT {key}{exprs} FROM {DB}.{table}")
            rows = []
            for found in cur.fetchall():
                row = dict(zip(["id"] if key else [], found[:1] if key else (), strict=True))
                for name, value in zip(names, found[1:] if key else found, strict=True):
                    convert = columns[name].convert
                    if isinstance(value, bytes):
                        value = value.decode()
                    row[name] = convert(value) if convert and value is not None else value
                rows.append(row)
            return rows
    finally:
        conn.close()


def _expected_float(value: Any) -> Any:
    from cdc.values import format_float32

    return None if value is None else format_float32(value)


@pytest.mark.parametrize("table", ["types", "wide", "one"])
def test_fast_decoder_shows_what_the_server_shows(
    mariadb: MariaDB, workload: Workload, fast: list[ChangeRecord], table: str
) -> None:
    """The final state rebuilt from the fast decoder's events equals a SELECT, per value."""
    columns = workload.tables[table]
    selected = _select(mariadb, table, columns)
    if table == "one":
        assert sorted(map(repr, _final_rows(fast, table))) == sorted(map(repr, selected))
        return
    state = _final_state(fast, table)
    assert len(state) == len(selected) > 0
    for row in selected:
        ours = state[row["id"]]
        for name, value in row.items():
            if columns.get(name) and columns[name].ddl == "FLOAT":
                value = _expected_float(value)  # the server rounds FLOAT to 6 digits
            assert ours[name] == value and type(ours[name]) is type(value), (
                f"{table}.{name} of row {row['id']}: decoded {ours[name]!r}, server {value!r}"
            )


def test_old_temporal_formats(mariadb: MariaDB) -> None:
    """TIME, DATETIME and TIMESTAMP in the pre-5.6 storage, negative TIME included."""
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {DB}")
        cur.execute("SET GLOBAL mysql56_temporal_format = OFF")
        try:
            cur.execute(
                f"CREATE TABLE {DB}.old (id INT PRIMARY KEY, t TIME, d DATETIME, s TIMESTAMP NULL)"
            )
        finally:
            cur.execute("SET GLOBAL mysql56_temporal_format = ON")
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
        cur.execute(
            f"INSERT INTO {DB}.old VALUES"
            " (1, '838:59:59', '2026-05-12 12:19:40', '2026-05-12 12:19:40'),"
            " (2, '00:00:00', '0000-00-00 00:00:00', '0000-00-00 00:00:00'),"
            " (3, '12:00:01', '2026-00-12 01:02:03', NULL)"
        )
        start = Position(file, int(pos))
        cur.execute(
            f"INSERT INTO {DB}.old VALUES (4, '-12:34:56', NULL, NULL),"
            " (5, '-838:59:59', NULL, NULL)"
        )
    conn.close()
    columns = {
        "t": Type("TIME", (), TEXT),
        "d": Type("DATETIME", (), DATETIME),
        "s": Type("TIMESTAMP", (), TIMESTAMP),
    }
    fast = read(mariadb, start, "fast", ("old",))
    state = _final_state(fast, "old")
    for row in _select(mariadb, "old", columns):
        assert state[row["id"]] == {"id": row["id"], **{n: row[n] for n in columns}}
    # The library path shows them alike (the library alone reads a negative one wrong).
    assert [r.data for r in read(mariadb, start, "library", ("old",))] == [r.data for r in fast]


def test_a_row_image_without_every_column_falls_back_to_the_library(mariadb: MariaDB) -> None:
    """binlog_row_image=MINIMAL: the fast path hands the table to the library, which refuses."""
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {DB}")
        cur.execute(f"CREATE TABLE {DB}.minimal (id INT PRIMARY KEY, a INT, b VARCHAR(5))")
        cur.execute(f"INSERT INTO {DB}.minimal VALUES (1, 2, 'x')")
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
        cur.execute("SET SESSION binlog_row_image = MINIMAL")
        cur.execute(f"UPDATE {DB}.minimal SET a = 3 WHERE id = 1")
    conn.close()
    with capture_logs() as logs, pytest.raises(DecodeError, match="binlog_row_image"):
        _read(mariadb, Position(file, int(pos)), "fast", ("minimal",))
    assert [(e["event"], e["table"]) for e in logs if e["log_level"] == "warning"] == [
        ("fast_decoder_fallback", "minimal")
    ]
    with pytest.raises(DecodeError, match="binlog_row_image"):
        _read(mariadb, Position(file, int(pos)), "library", ("minimal",))


def test_repeated_table_maps_are_parsed_once(
    mariadb: MariaDB, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every rows event comes with its TableMap; the same bytes are parsed only once.

    The hook that does it is in place only while a stream is open."""
    parsed: list[int] = []
    original = binlog_library._library_table_map_init

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        parsed.append(self.table_id)

    monkeypatch.setattr(binlog_library, "_library_table_map_init", counting)
    assert not binlog_library.hook_installed()
    records = read(mariadb, workload.start, "fast")
    assert not binlog_library.hook_installed()
    # One parse per table id (a table version), plus the TableMaps read before the cache
    # is in place (up to the first captured rows event).
    assert len(records) > 350
    assert max(Counter(parsed).values()) <= 2
    parsed.clear()
    assert len(read(mariadb, workload.start, "library")) == len(records)
    assert len(parsed) > 50  # the library decoder keeps the library's own parsing

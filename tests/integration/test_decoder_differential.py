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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from cdc._testing.mariadb import MariaDB
from cdc.capture.binlog import library as binlog_library
from cdc.capture.binlog.source import BinlogSource
from cdc.errors import DecodeError
from cdc.models import ChangeRecord, Changes, Op, Position
from cdc.settings import CaptureSettings, Decoder, Dsn
from cdc.values import undecodable_text

DB = "decoder_diff"
_server_ids = itertools.count(4100)


@dataclass(frozen=True)
class Type:
    """A column type, SQL literals of its values, and how a SELECT renders it (`{c}`)."""

    ddl: str
    values: tuple[str, ...]
    select: str = "{c}"
    convert: Callable[[Any], Any] | None = None


def _set_list(text: str) -> list[str]:
    return text.split(",") if text else []


def _text_or_bytes(hex_text: str) -> Any:
    """A utf8mb4 column's value from its HEX(): the text, or the lossless form of bytes
    that are not valid UTF-8."""
    raw = bytes.fromhex(hex_text)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return undecodable_text(raw, "utf8mb4")


TEXT = "CAST({c} AS CHAR)"
DATETIME = "REPLACE(CAST({c} AS CHAR), ' ', 'T')"
TIMESTAMP = "CONCAT(REPLACE(CAST({c} AS CHAR), ' ', 'T'), 'Z')"
HEX = "LOWER(HEX({c}))"
ENUM_300 = ", ".join(f"'v{i}'" for i in range(300))
SET_64 = ", ".join(f"'m{i}'" for i in range(64))

TYPES: dict[str, Type] = {
    "ti": Type("TINYINT", ("-128", "127", "0", "-1")),
    "tiu": Type("TINYINT UNSIGNED", ("0", "255", "128")),
    "si": Type("SMALLINT", ("-32768", "32767", "-2")),
    "siu": Type("SMALLINT UNSIGNED", ("65535", "1")),
    "mi": Type("MEDIUMINT", ("-8388608", "8388607", "-1")),
    "miu": Type("MEDIUMINT UNSIGNED", ("16777215", "8388608")),
    "i": Type("INT", ("-2147483648", "2147483647", "42")),
    "iu": Type("INT UNSIGNED", ("4294967295", "2147483648")),
    "bi": Type("BIGINT", ("-9223372036854775808", "9223372036854775807", "-5")),
    "biu": Type("BIGINT UNSIGNED", ("18446744073709551615", "9223372036854775808")),
    "f": Type("FLOAT", ("1.1", "-0.5", "3.4e38", "1e-10", "0", "123.456")),
    "d": Type("DOUBLE", ("0.1", "-1e300", "2.2250738585072014e-308", "123456789.12345679")),
    "dec": Type("DECIMAL(10,2)", ("12.34", "-99999999.99", "0", "-0.01", "5"), TEXT),
    "dec0": Type("DECIMAL(20,0)", ("-12345678901234567890", "0", "7"), TEXT),
    "dec65": Type(
        "DECIMAL(65,30)",
        ("-12345678901234567890123456789012345.123456789012345678901234567890", "0.000000001"),
        TEXT,
    ),
    "decf": Type("DECIMAL(5,5)", ("0.12345", "-0.99999", "0"), TEXT),
    "decm": Type("DECIMAL(19,9)", ("-1234567890.123456789", "0.5"), TEXT),
    "dt": Type(
        "DATE",
        ("'2026-05-12'", "'0000-00-00'", "'2026-00-00'", "'2026-05-00'", "'9999-12-31'"),
        TEXT,
    ),
    "dtm": Type(
        "DATETIME",
        ("'2026-05-12 12:19:40'", "'0000-00-00 00:00:00'", "'2026-00-01 10:00:00'"),
        DATETIME,
    ),
    "dtm1": Type("DATETIME(1)", ("'2026-05-12 12:19:40.1'", "'1000-01-01 00:00:00'"), DATETIME),
    "dtm3": Type("DATETIME(3)", ("'2026-05-12 12:19:40.123'", "'0000-00-00 00:00:00'"), DATETIME),
    "dtm6": Type(
        "DATETIME(6)", ("'9999-12-31 23:59:59.999999'", "'2026-05-00 01:02:03.000004'"), DATETIME
    ),
    "ts": Type(
        "TIMESTAMP NULL",
        (
            "'2026-05-12 12:19:40'",
            "'1970-01-01 00:00:01'",
            "'2038-01-19 03:14:07'",
            "'0000-00-00 00:00:00'",
        ),
        TIMESTAMP,
    ),
    "ts3": Type(
        "TIMESTAMP(3) NULL", ("'2026-05-12 12:19:40.5'", "'0000-00-00 00:00:00'"), TIMESTAMP
    ),
    "ts6": Type("TIMESTAMP(6) NULL", ("'2001-02-03 04:05:06.000007'",), TIMESTAMP),
    "tm": Type("TIME", ("'-838:59:59'", "'838:59:59'", "'00:00:00'", "'-00:00:01'"), TEXT),
    "tm1": Type("TIME(1)", ("'-00:00:00.1'", "'-12:00:00.5'"), TEXT),
    "tm2": Type("TIME(2)", ("'-00:00:01.25'", "'-00:00:00.01'", "'12:34:56.78'"), TEXT),
    "tm4": Type("TIME(4)", ("'-00:00:01.0001'", "'-100:00:00.9999'"), TEXT),
    "tm6": Type("TIME(6)", ("'-00:00:01.000001'", "'-838:59:58.999999'", "'00:00:00.5'"), TEXT),
    "y": Type("YEAR", ("0", "1901", "2155", "2026"), "{c} + 0"),
    "e": Type("ENUM('a','b','ç')", ("'a'", "'ç'", "''"), TEXT),
    "e2": Type(f"ENUM({ENUM_300})", ("'v0'", "'v299'", "''"), TEXT),
    "s": Type("SET('x','y','z')", ("'x,z'", "''", "'x,y,z'"), TEXT, _set_list),
    "s64": Type(f"SET({SET_64})", ("'m0,m63'", "'m7,m8,m9'", "''"), TEXT, _set_list),
    "b1": Type("BIT(1)", ("b'0'", "b'1'"), "{c} + 0"),
    "b10": Type("BIT(10)", ("b'1111111111'", "b'1000000001'"), "{c} + 0"),
    "b64": Type("BIT(64)", ("18446744073709551615", "1"), "{c} + 0"),
    "c": Type("CHAR(10)", ("'ab'", "''", "'é  '", "'😀x'")),
    "c255": Type("CHAR(255)", ("REPEAT('é', 255)", "'z'")),
    "vc": Type("VARCHAR(300)", ("'😀 emoji'", "''", "REPEAT('x', 300)")),
    "vcl": Type("VARCHAR(20) CHARACTER SET latin1", ("'é€'", "''")),
    "vcl2": Type("VARCHAR(10) CHARACTER SET latin2", ("'ő'",)),
    "vcgbk": Type("VARCHAR(10) CHARACTER SET gbk", ("'中文'",)),
    "tt": Type("TINYTEXT", ("'t'",)),
    "tx": Type("TEXT", ("'some text'", "''")),
    "mt": Type("MEDIUMTEXT", ("REPEAT('m', 70000)",)),
    "lt": Type("LONGTEXT", ("'long'",)),
    "bin": Type("BINARY(4)", ("x'61000000'", "x'00000000'", "x'00000001'"), HEX),
    "bin16": Type("BINARY(16)", ("x'0102030405060708090a0b0c0d0e0f00'", "x'ff'"), HEX),
    "vb": Type("VARBINARY(300)", ("x'00'", "x''", "x'ff00ff00'"), HEX),
    "tb": Type("TINYBLOB", ("x'00ff'",), HEX),
    "bl": Type("BLOB", ("x'deadbeef00'", "x''"), HEX),
    "mb": Type("MEDIUMBLOB", ("REPEAT(x'00', 70000)",), HEX),
    "lb": Type("LONGBLOB", ("x'01'",), HEX),
    "g": Type(
        "GEOMETRY",
        ("ST_GeomFromText('POINT(1 2)')", "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')"),
        HEX,
    ),
    "j": Type("JSON", ('\'{"a": [1, 2.5, null, "é"]}\'', "'[]'", "'\"s\"'"), "{c}", orjson.loads),
    "u": Type(
        "UUID",
        (
            "'123e4567-e89b-12d3-a456-426614174000'",
            "'ffffffff-ffff-ffff-ffff-ffffffff0000'",
            "'00000000-0000-0000-0000-000000000000'",
        ),
        TEXT,
    ),
    "i4": Type("INET4", ("'1.2.3.4'", "'0.0.0.0'", "'10.0.0.0'"), TEXT),
    "i6": Type(
        "INET6", ("'::1'", "'::'", "'2001:db8::'", "'::ffff:1.2.3.4'", "'fe80::1:0:0:0'"), TEXT
    ),
    # Invalid and partial dates (ALLOW_INVALID_DATES), as the server shows them.
    "dtinv": Type("DATE", ("'2026-02-31'", "'2015-00-21'", "'0000-01-21'"), TEXT),
    "dtminv": Type("DATETIME(3)", ("'2026-02-31 23:59:59.999'", "'2015-00-21 00:00:00'"), DATETIME),
    # ENUM and SET labels outside UTF-8, decoded with the column's own character set.
    "esj": Type("ENUM('鉄','都') CHARACTER SET sjis", ("'鉄'", "'都'", "''"), TEXT),
    "ecp": Type("ENUM('ж','я') CHARACTER SET cp1251", ("'ж'", "'я'"), TEXT),
    "ekoi": Type("ENUM('ж','ы') CHARACTER SET koi8r", ("'ы'", "'ж'"), TEXT),
    "elat": Type("ENUM('é','ü') CHARACTER SET latin1", ("'ü'", "'é'"), TEXT),
    "eucs": Type("ENUM('Ω','ĉ') CHARACTER SET ucs2", ("'ĉ'", "'Ω'"), TEXT),
    "ssj": Type("SET('鉄','都') CHARACTER SET sjis", ("'鉄,都'", "'都'", "''"), TEXT, _set_list),
    "s16": Type("SET('Ω','ĉ') CHARACTER SET utf16", ("'Ω,ĉ'", "'ĉ'"), TEXT, _set_list),
    # Text in other character sets (latin1's C1 controls, the big-endian UTF-16/32).
    "vcl1": Type("VARCHAR(20) CHARACTER SET latin1", ("x'81908d8f9d'", "'é€'")),
    "vc16": Type("VARCHAR(10) CHARACTER SET utf16", ("'abc'", "'😀'", "''")),
    "vcucs": Type("VARCHAR(10) CHARACTER SET ucs2", ("'ĉu'", "'Ω'")),
    "vc32": Type("VARCHAR(10) CHARACTER SET utf32", ("'z😀'", "'a'")),
    "vc16le": Type("VARCHAR(10) CHARACTER SET utf16le", ("'le😀'",)),
    "tucs": Type("TEXT CHARACTER SET ucs2", ("'ĉu text'", "''")),
    # Bytes that are not valid UTF-8 in utf8mb4 columns (a UTF-16 surrogate, a lone 0xff).
    "vinv": Type("VARCHAR(20)", ("x'6f6beda0bd'", "'fine'"), HEX, _text_or_bytes),
    "tinv": Type("TEXT", ("x'ff'", "'ok'"), HEX, _text_or_bytes),
}


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

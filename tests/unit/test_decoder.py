"""The compiled row decoder against a test-only encoder of the binlog row format.

Each column type has a hypothesis strategy giving a value's binlog bytes (written here
the way MySQL writes them, independently of the compiled decoder) and the rendering the
capture issue asks for. Rows of random tables, with random NULLs, are encoded, decoded
and compared value for value.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdc import values as rendering
from cdc.capture.binlog.rows import compiled as decoder
from cdc.capture.binlog.rows import conversions
from cdc.capture.binlog.rows import types as T
from cdc.capture.binlog.rows.binary_json import mysql_json
from cdc.models import Column, Table
from tests.binlog_encoding import encode_time2, fraction_bytes, truncate

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Case:
    """A column, and a strategy of (binlog bytes of a non-NULL value, expected rendering)."""

    column: Column
    values: st.SearchStrategy[tuple[bytes, Any]]


def fixed(encode: Callable[[Any], bytes], render: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: (encode(v), render(v))


# -- integers, floats, YEAR, BIT ---------------------------------------------------------

INT_SIZES = {T.TINY: 1, T.SHORT: 2, T.INT24: 3, T.LONG: 4, T.LONGLONG: 8}


@st.composite
def integer_case(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(sorted(INT_SIZES)))
    unsigned = draw(st.booleans())
    size = INT_SIZES[kind]
    bits = 8 * size
    low, high = (0, (1 << bits) - 1) if unsigned else (-(1 << bits - 1), (1 << bits - 1) - 1)
    edges = st.sampled_from([low, high, 0, 1, -1 if not unsigned else 2])
    values = st.one_of(edges, st.integers(low, high))
    return Case(
        Column("c", kind, unsigned=unsigned),
        values.map(lambda v: (v.to_bytes(size, "little", signed=not unsigned), v)),
    )


def float_case() -> st.SearchStrategy[Case]:
    values = st.floats(width=32, allow_nan=False, allow_infinity=False)
    return st.just(
        Case(
            Column("c", T.FLOAT),
            values.map(lambda v: (struct.pack("<f", v), rendering.format_float32(v))),
        )
    )


def double_case() -> st.SearchStrategy[Case]:
    values = st.floats(allow_nan=False, allow_infinity=False)
    return st.just(Case(Column("c", T.DOUBLE), values.map(lambda v: (struct.pack("<d", v), v))))


def year_case() -> st.SearchStrategy[Case]:
    years = st.one_of(st.just(0), st.integers(1901, 2155))
    return st.just(
        Case(Column("c", T.YEAR), years.map(lambda y: (bytes([y - 1900 if y else 0]), y)))
    )


@st.composite
def bit_case(draw: st.DrawFn) -> Case:
    bits = draw(st.integers(1, 64))
    size = (bits + 7) // 8
    values = st.integers(0, (1 << bits) - 1)
    return Case(Column("c", T.BIT, bits=bits), values.map(lambda v: (v.to_bytes(size, "big"), v)))


# -- DECIMAL -----------------------------------------------------------------------------

DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)


def encode_decimal(
    digits_int: str, digits_frac: str, negative: bool, precision: int, scale: int
) -> bytes:
    """MySQL's decimal2bin: groups of 9 digits big-endian, sign bit, complement if negative."""
    intg = precision - scale
    digits_int = digits_int.rjust(intg, "0")
    digits_frac = digits_frac.ljust(scale, "0")
    out = b""
    lead = intg % 9
    if lead:
        out += int(digits_int[:lead]).to_bytes(DIG2BYTES[lead], "big")
    for k in range(lead, intg, 9):
        out += int(digits_int[k : k + 9]).to_bytes(4, "big")
    for k in range(0, scale - scale % 9, 9):
        out += int(digits_frac[k : k + 9]).to_bytes(4, "big")
    if scale % 9:
        out += int(digits_frac[scale - scale % 9 :]).to_bytes(DIG2BYTES[scale % 9], "big")
    raw = bytearray(out)
    if negative:
        raw = bytearray(b ^ 0xFF for b in raw)
    raw[0] ^= 0x80
    return bytes(raw)


@st.composite
def decimal_case(draw: st.DrawFn) -> Case:
    precision = draw(st.integers(1, 65))
    scale = draw(st.integers(0, min(precision, 30)))
    intg = precision - scale

    @st.composite
    def value(draw: st.DrawFn) -> tuple[bytes, str]:
        whole = draw(st.text("0123456789", max_size=intg))
        frac = draw(st.text("0123456789", max_size=scale))
        negative = draw(st.booleans())
        text = ("-" if negative else "") + (whole or "0") + ("." + frac if scale else "")
        expected = rendering.format_decimal(Decimal(text), scale)
        if expected.strip("-0.") == "":
            negative = False  # MySQL stores zero positive
        return encode_decimal(whole, frac, negative, precision, scale), expected

    return Case(Column("c", T.NEWDECIMAL, precision=precision, decimals=scale), value())


# -- dates and times ---------------------------------------------------------------------


def date_case() -> st.SearchStrategy[Case]:
    parts = st.tuples(st.integers(0, 9999), st.integers(0, 12), st.integers(0, 31))
    return st.just(
        Case(
            Column("c", T.DATE),
            parts.map(
                lambda p: (
                    (p[0] << 9 | p[1] << 5 | p[2]).to_bytes(3, "little"),
                    f"{p[0]:04d}-{p[1]:02d}-{p[2]:02d}",
                )
            ),
        )
    )


@st.composite
def datetime2_case(draw: st.DrawFn) -> Case:
    fsp = draw(st.integers(0, 6))

    @st.composite
    def value(draw: st.DrawFn) -> tuple[bytes, str]:
        y, mo, d = draw(st.integers(0, 9999)), draw(st.integers(0, 12)), draw(st.integers(0, 31))
        h, mi, s = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
        micro = truncate(draw(st.integers(0, 999_999)), fsp)
        packed = ((y * 13 + mo) << 5 | d) << 17 | h << 12 | mi << 6 | s
        raw = (packed + 0x8000000000).to_bytes(5, "big") + fraction_bytes(micro, fsp)
        return raw, rendering.format_datetime(y, mo, d, h, mi, s, micro, fsp)

    return Case(Column("c", T.DATETIME2, fsp=fsp), value())


@st.composite
def timestamp2_case(draw: st.DrawFn) -> Case:
    fsp = draw(st.integers(0, 6))

    @st.composite
    def value(draw: st.DrawFn) -> tuple[bytes, str]:
        seconds = draw(st.one_of(st.just(0), st.integers(1, (1 << 32) - 1)))
        micro = truncate(draw(st.integers(0, 999_999)), fsp) if seconds else 0
        raw = seconds.to_bytes(4, "big") + fraction_bytes(micro, fsp)
        if not seconds:
            return raw, rendering.zero_datetime(fsp) + "Z"
        at = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)
        text = rendering.format_datetime(
            at.year, at.month, at.day, at.hour, at.minute, at.second, micro, fsp
        )
        return raw, text + "Z"

    return Case(Column("c", T.TIMESTAMP2, fsp=fsp), value())


@st.composite
def time2_case(draw: st.DrawFn) -> Case:
    fsp = draw(st.integers(0, 6))

    @st.composite
    def value(draw: st.DrawFn) -> tuple[bytes, str]:
        h, mi, s = draw(st.integers(0, 838)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
        micro = truncate(draw(st.integers(0, 999_999)), fsp)
        negative = draw(st.booleans()) and (h or mi or s or micro) > 0
        packed = (h << 12 | mi << 6 | s) << 24 | micro
        raw = encode_time2(-packed if negative else packed, fsp)
        return raw, rendering.format_time(negative, h, mi, s, micro, fsp)

    return Case(Column("c", T.TIME2, fsp=fsp), value())


def old_temporal_cases() -> st.SearchStrategy[Case]:
    """The pre-5.6 DATETIME (digits as an integer), TIME (signed digits) and TIMESTAMP."""

    @st.composite
    def datetime_value(draw: st.DrawFn) -> tuple[bytes, str]:
        y, mo, d = draw(st.integers(0, 9999)), draw(st.integers(0, 12)), draw(st.integers(0, 31))
        h, mi, s = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
        digits = ((y * 100 + mo) * 100 + d) * 1_000_000 + (h * 100 + mi) * 100 + s
        return struct.pack("<Q", digits), rendering.format_datetime(y, mo, d, h, mi, s, 0, 0)

    @st.composite
    def time_value(draw: st.DrawFn) -> tuple[bytes, str]:
        h, mi, s = draw(st.integers(0, 838)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
        negative = draw(st.booleans()) and (h or mi or s) > 0
        digits = (h * 100 + mi) * 100 + s
        raw = (-digits if negative else digits).to_bytes(3, "little", signed=True)
        return raw, rendering.format_time(negative, h, mi, s, 0, 0)

    def timestamp_value(seconds: int) -> tuple[bytes, str]:
        return struct.pack("<I", seconds), rendering.format_timestamp(seconds, 0, 0)

    return st.sampled_from(
        [
            Case(Column("c", T.DATETIME), datetime_value()),
            Case(Column("c", T.TIME), time_value()),
            Case(Column("c", T.TIMESTAMP), st.integers(0, (1 << 32) - 1).map(timestamp_value)),
        ]
    )


# -- ENUM, SET ---------------------------------------------------------------------------

member_names = st.lists(
    st.text(st.characters(codec="utf-8", exclude_characters=","), min_size=1, max_size=8),
    min_size=1,
    max_size=64,
    unique=True,
)


@st.composite
def enum_case(draw: st.DrawFn) -> Case:
    names = tuple(draw(member_names))
    size = draw(st.sampled_from([1, 2]))
    values = st.integers(0, len(names)).map(lambda i: (i.to_bytes(size, "little"), ("", *names)[i]))
    return Case(Column("c", T.ENUM, size=size, enum_values=names, charset="utf8"), values)


@st.composite
def set_case(draw: st.DrawFn) -> Case:
    names = tuple(draw(member_names))
    size = (len(names) + 7) // 8
    masks = st.integers(0, (1 << len(names)) - 1)
    values = masks.map(
        lambda m: (m.to_bytes(size, "little"), [n for i, n in enumerate(names) if m >> i & 1])
    )
    return Case(Column("c", T.SET, size=size, set_values=names, charset="utf8"), values)


# -- strings and binaries ----------------------------------------------------------------


def length_prefixed(data: bytes, size: int) -> bytes:
    return len(data).to_bytes(size, "little") + data


TEXT_CODECS = {"utf8": "utf-8", "cp1252": "cp1252", "utf16": "utf-16-be", "latin2": "latin2"}


@st.composite
def text_case(draw: st.DrawFn) -> Case:
    charset = draw(st.sampled_from(sorted(TEXT_CODECS)))
    codec = TEXT_CODECS[charset]
    kind = draw(st.sampled_from([T.VARCHAR, T.STRING, T.BLOB]))
    if kind == T.BLOB:
        size = draw(st.integers(1, 4))
        column = Column("c", kind, charset=charset, length_size=size)
    else:
        max_length = draw(st.sampled_from([1, 10, 255, 256, 1020, 65535]))
        size = 1 if max_length <= 255 else 2
        column = Column("c", kind, charset=charset, max_length=max_length)
    limit = min(60, (1 << 8 * size) - 1, column.max_length or 60)
    texts = st.text(st.characters(codec=codec), max_size=limit).filter(
        lambda s: len(s.encode(codec)) <= limit
    )
    if kind == T.STRING:
        texts = texts.map(lambda s: s.rstrip(" "))  # CHAR: MySQL drops trailing spaces
    return Case(column, texts.map(lambda s: (length_prefixed(s.encode(codec), size), s)))


def latin1_case() -> st.SearchStrategy[Case]:
    """MySQL's latin1 is cp1252 with its five holes as C1 controls: every byte decodes."""
    column = Column("c", T.VARCHAR, charset="cp1252", max_length=255)
    data = st.binary(max_size=40)
    expected = {0x81: "\x81", 0x8D: "\x8d", 0x8F: "\x8f", 0x90: "\x90", 0x9D: "\x9d"}

    def render(raw: bytes) -> str:
        return "".join(expected.get(b) or bytes([b]).decode("cp1252") for b in raw)

    return st.just(Case(column, data.map(lambda b: (length_prefixed(b, 1), render(b)))))


@st.composite
def binary_case(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from([T.VARCHAR, T.STRING, T.BLOB, T.GEOMETRY]))
    if kind in (T.BLOB, T.GEOMETRY):
        size = draw(st.integers(1, 4))
        column = Column("c", kind, charset="binary", length_size=size)
        data = st.binary(max_size=80)
        return Case(column, data.map(lambda b: (length_prefixed(b, size), b.hex())))
    max_length = draw(st.sampled_from([1, 4, 16, 255, 256, 3000]))
    size = 1 if max_length <= 255 else 2
    column = Column("c", kind, charset="binary", max_length=max_length)
    if kind == T.VARCHAR:
        data = st.binary(max_size=min(max_length, 80))
        return Case(column, data.map(lambda b: (length_prefixed(b, size), b.hex())))
    # BINARY(n): always n bytes; the binlog drops the trailing zero bytes.
    width = min(max_length, 80)
    data = st.binary(max_size=width).map(lambda b: b + b"\0" * (max_length - len(b)))
    return Case(column, data.map(lambda b: (length_prefixed(b.rstrip(b"\0"), size), b.hex())))


@st.composite
def logical_case(draw: st.DrawFn) -> Case:
    logical = draw(st.sampled_from(["uuid", "inet4", "inet6"]))
    width = 4 if logical == "inet4" else 16
    column = Column("c", T.STRING, charset="binary", max_length=width, logical=logical)
    fmt = {
        "uuid": rendering.format_uuid,
        "inet4": rendering.format_inet4,
        "inet6": rendering.format_inet6,
    }
    zero_tail = st.integers(0, width).flatmap(
        lambda n: st.binary(min_size=width - n, max_size=width - n).map(lambda b: b + bytes(n))
    )
    return Case(
        column, zero_tail.map(lambda b: (length_prefixed(b.rstrip(b"\0"), 1), fmt[logical](b)))
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), (1 << 64) - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=12,
)


def mariadb_json_case() -> st.SearchStrategy[Case]:
    column = Column("c", T.BLOB, charset="utf8", length_size=4, logical="json")
    return st.just(
        Case(
            column,
            json_values.map(
                lambda v: (length_prefixed(orjson.dumps(v), 4), orjson.loads(orjson.dumps(v)))
            ),
        )
    )


# -- MySQL binary JSON (a test encoder of MySQL's json_binary format) ------------------


def jsonb(value: Any) -> bytes:
    """A whole MySQL JSON column value: the type byte, then the value."""
    kind, body = _jsonb(value, large=False)
    return bytes([kind]) + body


def _varlen(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _jsonb(value: Any, large: bool) -> tuple[int, bytes]:
    if value is None or value is True or value is False:
        return 4, bytes([{None: 0, True: 1, False: 2}[value]])
    if isinstance(value, int):
        if -(1 << 15) <= value < 1 << 15:
            return 5, struct.pack("<h", value)
        if -(1 << 31) <= value < 1 << 31:
            return 7, struct.pack("<i", value)
        if -(1 << 63) <= value < 1 << 63:
            return 9, struct.pack("<q", value)
        return 10, struct.pack("<Q", value)
    if isinstance(value, float):
        return 11, struct.pack("<d", value)
    if isinstance(value, str):
        data = value.encode()
        return 12, _varlen(len(data)) + data
    if isinstance(value, list | dict):
        for large_container in (False, True):
            encoded = _container(value, large_container)
            if encoded is not None:
                return encoded
    raise TypeError(value)


def _container(value: list[Any] | dict[str, Any], large: bool) -> tuple[int, bytes] | None:
    is_object = isinstance(value, dict)
    width = 4 if large else 2
    off = "<I" if large else "<H"
    limit = (1 << 8 * width) - 1
    keys = [k.encode() for k in value] if is_object else []
    items = list(value.values()) if isinstance(value, dict) else list(value)
    count = len(items)
    header = 2 * width + count * (1 + width) + (count * (width + 2) if is_object else 0)
    key_blob = b"".join(keys)
    offset = header + len(key_blob)
    entries = b""
    values = b""
    inline = {4, 5, 6} | ({7, 8} if large else set())
    for item in items:
        kind, body = _jsonb(item, large)
        if kind in inline:
            entries += bytes([kind]) + body.ljust(width, b"\0")
        else:
            entries += bytes([kind]) + struct.pack(off, offset + len(values))
            values += body
    key_entries = b""
    key_offset = header
    for key in keys:
        if key_offset > limit:
            return None
        key_entries += struct.pack(off, key_offset) + struct.pack("<H", len(key))
        key_offset += len(key)
    size = offset + len(values)
    if size > limit:
        return None
    kind = (1 if large else 0) if is_object else (3 if large else 2)
    body = (
        struct.pack(off, count) + struct.pack(off, size) + key_entries + entries + key_blob + values
    )
    return kind, body


def mysql_json_case() -> st.SearchStrategy[Case]:
    column = Column("c", T.JSON, length_size=4)
    return st.just(Case(column, json_values.map(lambda v: (length_prefixed(jsonb(v), 4), v))))


# -- rows --------------------------------------------------------------------------------

any_case = st.one_of(
    integer_case(),
    float_case(),
    double_case(),
    year_case(),
    bit_case(),
    decimal_case(),
    date_case(),
    datetime2_case(),
    timestamp2_case(),
    time2_case(),
    old_temporal_cases(),
    enum_case(),
    set_case(),
    text_case(),
    latin1_case(),
    binary_case(),
    logical_case(),
    mariadb_json_case(),
    mysql_json_case(),
)


def encode_row(values: list[tuple[bytes, Any] | None]) -> bytes:
    """A row image with every column present: the NULL bitmap, then the non-NULL values.

    As MariaDB writes it, the bitmap's bits past the last column are set.
    """
    size = (len(values) + 7) // 8
    nulls = sum(1 << i for i, v in enumerate(values) if v is None)
    nulls |= (1 << 8 * size) - (1 << len(values))
    out = nulls.to_bytes(size, "little")
    return out + b"".join(v[0] for v in values if v is not None)


def check(table: Table, rows: list[list[tuple[bytes, Any] | None]]) -> None:
    data = b"junk" + b"".join(encode_row(r) for r in rows)
    end = len(data)
    data += b"\x01\x02\x03\x04"  # the checksum follows the body in the packet
    decoded = decoder.decoder_for(table).decode(data, 4, end)
    expected = [
        {c.name: (None if v is None else v[1]) for c, v in zip(table.columns, r, strict=True)}
        for r in rows
    ]
    assert decoded == expected
    for got, want in zip(decoded, expected, strict=True):
        for name in want:  # same classes too: 1 is not 1.0, nor True
            assert type(got[name]) is type(want[name]), name


@SETTINGS
@given(case=any_case, data=st.data())
def test_each_type_decodes_as_the_rules_say(case: Case, data: st.DataObject) -> None:
    table = Table("s", "t", (case.column,))
    rows = [[data.draw(case.values)] for _ in range(3)] + [[None]]
    check(table, rows)


@SETTINGS
@given(cases=st.lists(any_case, min_size=1, max_size=40), data=st.data())
def test_rows_of_mixed_columns_with_nulls(cases: list[Case], data: st.DataObject) -> None:
    columns = tuple(
        Column(f"c{i}", **{k: getattr(c.column, k) for k in Column.__slots__ if k != "name"})
        for i, c in enumerate(cases)
    )
    table = Table("s", "t", columns, ("c0",))
    rows = []
    for _ in range(data.draw(st.integers(1, 4))):
        nulls = data.draw(st.lists(st.booleans(), min_size=len(cases), max_size=len(cases)))
        rows.append(
            [None if null else data.draw(c.values) for c, null in zip(cases, nulls, strict=True)]
        )
    check(table, rows)


def test_a_wide_table_of_300_columns() -> None:
    columns = tuple(Column(f"c{i}", T.LONG) for i in range(300))
    table = Table("s", "wide", columns)
    full = [(i.to_bytes(4, "little", signed=True), i) for i in range(300)]
    some_null = [None if i % 7 == 0 else v for i, v in enumerate(full)]
    check(table, [full, some_null, [None] * 300])


def test_mysql_json_against_the_library() -> None:
    """The library's binary-JSON parser, rendered by the mapper, agrees where it is right."""
    from pymysqlreplication.json_binary import parse_json

    value = {"a": [1, -2, 70000, 1 << 40, 1.5, "x", None, True, False], "bb": {"c": "é"}}
    raw = jsonb(value)
    assert mysql_json(raw) == rendering.json_value(parse_json(raw[0], raw[1:])) == value


def test_mysql_json_opaque_scalars() -> None:
    """DECIMAL, DATE, DATETIME and TIME inside MySQL JSON, as MySQL prints them."""
    dec = bytes([5, 2]) + encode_decimal("123", "45", False, 5, 2)
    day = ((2026 * 13 + 5) << 5 | 12) << 17 << 24
    moment = (((2026 * 13 + 5) << 5 | 12) << 17 | 12 << 12 | 19 << 6 | 40) << 24 | 123000
    when = -((1 << 12 | 2 << 6 | 3) << 24 | 500000)

    def opaque(field_type: int, payload: bytes) -> bytes:
        return bytes([15, field_type]) + _varlen(len(payload)) + payload

    assert mysql_json(opaque(T.NEWDECIMAL, dec)) == 123.45
    assert mysql_json(opaque(T.DATE, struct.pack("<q", day))) == "2026-05-12"
    assert mysql_json(opaque(T.DATETIME, struct.pack("<q", moment))) == "2026-05-12 12:19:40.123000"
    assert mysql_json(opaque(T.TIME, struct.pack("<q", when))) == "-01:02:03.500000"
    assert mysql_json(opaque(T.BLOB, b"\x01\x02")) == "base64:type252:AQI="


@pytest.mark.parametrize(
    ("time_text", "packed"),
    [("-00:00:01.25", -((1 << 24) + 250_000)), ("-838:59:59", -((838 << 12 | 59 << 6 | 59) << 24))],
)
def test_negative_fractional_time_the_library_gets_wrong(time_text: str, packed: int) -> None:
    for fsp in (2, 4, 6):
        table = Table("s", "t", (Column("c", T.TIME2, fsp=fsp),))
        want = time_text + ("." + "0" * fsp if "." not in time_text else "0" * (fsp - 2))
        check(table, [[(encode_time2(packed, fsp), want)]])


def test_base64_binary_rendering() -> None:
    column = Column("c", T.STRING, charset="binary", max_length=4)
    table = Table("s", "t", (column,))
    decoded = decoder.decoder_for(table, "base64").decode(b"\x00\x01a", 0, 3)
    assert decoded == [{"c": rendering.format_binary(b"a\0\0\0", "base64")}]


def test_decoding_faults_are_reported_not_guessed() -> None:
    table = Table(
        "s", "t", (Column("c", T.LONG), Column("d", T.VARCHAR, charset="utf8", max_length=10))
    )
    row = encode_row([(b"\x01\0\0\0", 1), (b"\x02ab", "ab")])
    fast = decoder.decoder_for(table)
    with pytest.raises(struct.error):
        fast.decode(row + b"\0", 0, len(row) + 1)  # a byte more than the images
    with pytest.raises(ValueError, match="end"):
        fast.decode(row + b"\0" * 9, 0, len(row) + 1)  # the same, within the buffer
    with pytest.raises(ValueError, match="end"):
        fast.decode(row[:-3] + b"\x05abcdefgh", 0, len(row))  # a length beyond the event
    # Bytes not valid in the column's character set are no fault: they are kept exactly.
    assert fast.decode(row[:-2] + b"\xff\xfe", 0, len(row)) == [
        {"c": 1, "d": {"charset": "utf8", "hex": "fffe"}}
    ]
    assert fast.noticed == [("d", rendering.UndecodableText)]
    fast.noticed.clear()


@pytest.mark.parametrize(
    ("charset", "raw", "expected"),
    [
        ("utf8", b"ok \xed\xa0\xbd", {"charset": "utf8", "hex": "6f6b20eda0bd"}),  # a surrogate
        ("utf8", "café".encode(), "café"),
        ("cp1252", b"\x81\xe9", "\x81é"),  # MySQL's latin1: 0x81 is the C1 control
        ("sjis", "鉄".encode("shift_jis"), "鉄"),
        ("sjis", b"\x81", {"charset": "sjis", "hex": "81"}),
        ("utf16", "é".encode("utf-16-be"), "é"),
        ("ucs2", b"\x00", {"charset": "ucs2", "hex": "00"}),
        ("swe7", b"abc", {"charset": "swe7", "hex": "616263"}),  # no Python codec: the bytes
    ],
)
def test_text_in_every_character_set(charset: str, raw: bytes, expected: Any) -> None:
    table = Table("s", "t", (Column("c", T.BLOB, charset=charset, length_size=2),))
    fast = decoder.decoder_for(table)
    image = b"\0" + len(raw).to_bytes(2, "little") + raw
    assert fast.decode(image, 0, len(image)) == [{"c": expected}]
    fast.noticed.clear()


def test_mysql_json_deeper_than_an_event_holds_is_kept_as_text() -> None:
    from pymysqlreplication.json_binary import parse_json

    shallow, deep = [[1]] * 2, [1]
    for _ in range(40):
        deep = [deep]
    for value in (shallow, deep):
        raw = jsonb(value)
        assert parse_json(raw[0], raw[1:]) is not None  # what MySQL wrote
        decoded = mysql_json(raw)
        if value is shallow:
            assert decoded == value
        else:
            assert decoded == json.dumps(value).replace(" ", "")
            assert isinstance(decoded, rendering.UnparsedJson)


def test_json_text_that_cannot_be_json_is_kept_as_text() -> None:
    column = Column("j", T.BLOB, charset="utf8mb4", length_size=4, logical="json")
    fast = decoder.decoder_for(Table("s", "t", (column,)))
    deep = "[" * 300 + "]" * 300
    for text, expected in (('{"a": [1]}', {"a": [1]}), ("not json", "not json"), (deep, deep)):
        image = b"\0" + len(text).to_bytes(4, "little") + text.encode()
        assert fast.decode(image, 0, len(image)) == [{"j": expected}]
    assert [kind for _, kind in fast.noticed] == [rendering.UnparsedJson] * 2
    fast.noticed.clear()


@pytest.mark.parametrize(
    "column",
    [
        Column("c", 0),  # the pre-5.0 DECIMAL
        Column("c", T.VAR_STRING, charset="utf8", max_length=10),
        Column("c", 20),  # MySQL's typed array (functional indexes)
        Column("c", T.VARCHAR, charset=None, max_length=10),  # no binlog_row_metadata=FULL
        Column("c", T.ENUM, size=1),  # no ENUM values in the binlog
        Column("c", T.SET, size=1),
        Column("c", T.BLOB, charset="binary", length_size=0),
    ],
)
def test_unknown_types_are_left_to_the_library(column: Column) -> None:
    with pytest.raises(decoder.Unsupported):
        decoder.decoder_for(Table("s", "t", (Column("id", T.LONG), column)))


def test_one_decoder_per_table_version() -> None:
    columns = (Column("id", T.LONG), Column("name", T.VARCHAR, charset="utf8", max_length=40))
    first = decoder.decoder_for(Table("s", "t", columns))
    assert decoder.decoder_for(Table("s", "t", columns)) is first
    assert decoder.decoder_for(Table("s", "t", columns[:1])) is not first


def test_a_negative_zero_decimal_shows_as_zero() -> None:
    for precision, scale, want in ((5, 2, "0.00"), (4, 0, "0"), (30, 20, "0." + "0" * 20)):
        table = Table("s", "t", (Column("c", T.NEWDECIMAL, precision=precision, decimals=scale),))
        check(table, [[(encode_decimal("", "", True, precision, scale), want)]])


def test_memos_stay_bounded() -> None:
    memo = conversions.Memo(lambda key: f"<{key}>", limit=3)
    assert [memo[k] for k in range(10)] == [f"<{k}>" for k in range(10)]
    assert len(memo) <= 3

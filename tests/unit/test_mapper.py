"""The MySQL type -> JSON rules of the library path (rows/render.py), one table per type family, without a server."""

from __future__ import annotations

import datetime as dt
import struct
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdc.capture.binlog.rows.render import render_row, render_value
from cdc.capture.binlog.rows.types import (
    BIT,
    BLOB,
    DATE,
    DATETIME,
    DATETIME2,
    DOUBLE,
    ENUM,
    FLOAT,
    GEOMETRY,
    INT24,
    JSON,
    LONG,
    LONGLONG,
    NEWDECIMAL,
    SET,
    SHORT,
    STRING,
    TIME,
    TIME2,
    TIMESTAMP,
    TIMESTAMP2,
    TINY,
    VARCHAR,
    YEAR,
)
from cdc.capture.records import to_record
from cdc.errors import DecodeError
from cdc.models import ChangeRecord, Column, Op, RowChange, Table
from cdc.values import (
    format_binary,
    format_date,
    format_datetime,
    format_decimal,
    format_float32,
    format_inet4,
    format_inet6,
    format_time,
    format_timestamp,
    format_uuid,
    json_value,
)
from tests.binlog_encoding import encode_time2, fraction_bytes


def col(type_: int, name: str = "c", **kwargs: Any) -> Column:
    return Column(name=name, type=type_, **kwargs)


def render(column: Column, value: Any, source: str | None = None, binary: str = "hex") -> Any:
    if value is None and source is None:
        source = "null"
    return render_value(column, value, source, binary)


# -- integers, YEAR, BIT ------------------------------------------------------------------

INTEGERS = [
    (col(TINY), -128, -128),
    (col(TINY, unsigned=True), 255, 255),
    (col(SHORT), -32768, -32768),
    (col(INT24, unsigned=True), 16777215, 16777215),
    (col(LONG), 0, 0),
    (col(LONGLONG), -(2**63), -(2**63)),
    (col(LONGLONG, unsigned=True), 2**64 - 1, 2**64 - 1),
    (col(YEAR), 1900, 0),  # YEAR 0000 arrives as 1900
    (col(YEAR), 1901, 1901),
    (col(YEAR), 2155, 2155),
    (col(BIT, bits=1), "1", 1),
    (col(BIT, bits=10), "1000000001", 513),
    (col(BIT, bits=64), "1" * 64, 2**64 - 1),
    (col(BIT, bits=8), "00000000", 0),
]


@pytest.mark.parametrize(("column", "value", "expected"), INTEGERS)
def test_integers(column: Column, value: Any, expected: int) -> None:
    rendered = render(column, value)
    assert rendered == expected
    assert type(rendered) is int


# -- DECIMAL --------------------------------------------------------------------------------

DECIMALS = [
    (Decimal("12.34"), 4, "12.3400"),
    (Decimal("12.3400"), 4, "12.3400"),
    (Decimal("0E-10"), 10, "0.0000000000"),  # the library's exponent form of zero
    (Decimal("-1E-10"), 10, "-0.0000000001"),
    (Decimal("1.2E+5"), 2, "120000.00"),
    (Decimal("1.2E+5"), 0, "120000"),
    (Decimal("-0.00"), 2, "0.00"),  # MySQL shows no negative zero
    (Decimal("-0"), 0, "0"),
    (Decimal("-12.5"), 1, "-12.5"),
    (Decimal("0.5"), 3, "0.500"),
    ("-.5", 2, "-0.50"),  # the decoder's text forms
    (".12345", 5, "0.12345"),
    ("00012.", 0, "12"),
    ("-000.000", 3, "0.000"),
    ("+7.1", 1, "7.1"),
    ("1.500", 1, "1.5"),  # extra fraction zeros are dropped, not rounded
    ("9" * 35 + "." + "9" * 30, 30, "9" * 35 + "." + "9" * 30),  # DECIMAL(65,30)
    (Decimal("-" + "9" * 35 + "." + "9" * 30), 30, "-" + "9" * 35 + "." + "9" * 30),
]


@pytest.mark.parametrize(("value", "scale", "expected"), DECIMALS)
def test_format_decimal(value: str | Decimal, scale: int, expected: str) -> None:
    assert format_decimal(value, scale) == expected


@pytest.mark.parametrize("value", ["1.25", "abc", "1e5", "١٢.٣", "NaN", Decimal("NaN"), ""])
def test_format_decimal_refuses(value: str | Decimal) -> None:
    with pytest.raises(ValueError):
        format_decimal(value, 1)


def test_decimal_column_keeps_its_scale() -> None:
    column = col(NEWDECIMAL, precision=10, decimals=10)
    assert render(column, Decimal("0E-10")) == "0.0000000000"
    with pytest.raises(DecodeError, match=r"c \(DECIMAL\).*float"):
        render(column, 0.5)


# -- FLOAT and DOUBLE -----------------------------------------------------------------------


def f32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


FLOATS = [
    (f32(1.1), 1.1, b"1.1"),
    (f32(0.1), 0.1, b"0.1"),
    (f32(0.3), 0.3, b"0.3"),
    (f32(3.4028235e38), 3.4028235e38, b"3.4028235e+38"),
    (f32(-3.4028235e38), -3.4028235e38, b"-3.4028235e+38"),
    (f32(1.17549435e-38), 1.1754944e-38, b"1.1754944e-38"),  # smallest normal
    (f32(1e-45), 1e-45, b"1e-45"),  # smallest subnormal
    (f32(16777217.0), 16777216.0, b"16777216.0"),
    (f32(123456.789), 123456.79, b"123456.79"),
    (2.0**-96, 1.2621775e-29, b"1.2621775e-29"),  # a power of two: shortest is above it
    (0.0, 0.0, b"0.0"),
]


@pytest.mark.parametrize(("value", "expected", "json"), FLOATS)
def test_format_float32(value: float, expected: float, json: bytes) -> None:
    shortest = format_float32(value)
    assert shortest == expected
    assert orjson.dumps(shortest) == json
    assert f32(shortest) == value  # lossless on replay


def test_float_negative_zero_keeps_its_sign() -> None:
    assert orjson.dumps(format_float32(-0.0)) == b"-0.0"
    assert orjson.dumps(render(col(FLOAT), -0.0)) == b"-0.0"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_format_float32_refuses_non_finite(value: float) -> None:
    with pytest.raises(ValueError):
        format_float32(value)


def shortest_reference(value: float) -> Decimal:
    """The closest of the shortest decimals that read back as `value` (slow, obvious)."""
    exact = Decimal(value)
    for digits in range(1, 10):
        found = []
        for rounding in (ROUND_HALF_EVEN, ROUND_CEILING, ROUND_FLOOR):
            candidate = Context(prec=digits, rounding=rounding).plus(exact)
            try:
                if f32(float(candidate)) == value:
                    found.append(candidate)
            except OverflowError:
                pass
        if found:
            return min(found, key=lambda c: abs(c - exact))
    raise AssertionError("nine digits always read back")


@settings(max_examples=2000, deadline=None)
@given(st.integers(min_value=1, max_value=2**32 - 1))
def test_format_float32_is_the_shortest_round_trip(bits: int) -> None:
    value = struct.unpack("<f", struct.pack("<I", bits))[0]
    if value != value or value in (float("inf"), float("-inf")) or value == 0:
        return
    shortest = format_float32(value)
    assert f32(shortest) == value
    assert shortest == float(shortest_reference(value))


def test_double_is_kept() -> None:
    assert render(col(DOUBLE), 0.1) == 0.1
    assert render(col(DOUBLE), -1.7976931348623157e308) == -1.7976931348623157e308


# -- dates, datetimes, timestamps -----------------------------------------------------------


def timestamp2_bits(seconds: int, micro: int = 0, fsp: int = 0) -> str:
    """TIMESTAMP2 as the library gives it for cdc (read as a BIT): its stored bytes' bits."""
    raw = seconds.to_bytes(4, "big") + fraction_bytes(micro, fsp)
    return format(int.from_bytes(raw, "big"), f"0{8 * len(raw)}b")


def time2_bits(negative: bool, seconds: int, micro: int, fsp: int) -> str:
    """TIME2 as the library gives it for cdc (read as a BIT): its stored bytes' bits."""
    hours, rest = divmod(seconds, 3600)
    packed = (hours << 12 | rest // 60 << 6 | rest % 60) << 24 | micro
    raw = encode_time2(-packed if negative else packed, fsp)
    return format(int.from_bytes(raw, "big"), f"0{8 * len(raw)}b")


def packed_date(year: int, month: int, day: int) -> int:
    """DATE as the library gives it for cdc: its 3 stored bytes as an integer."""
    return year << 9 | month << 5 | day


def datetime2_bits(
    year: int, month: int, day: int, h: int, mi: int, sec: int, micro: int = 0, fsp: int = 0
) -> str:
    """DATETIME2 as the library gives it for cdc (read as a BIT): its stored bytes' bits."""
    whole = 1 << 39 | (year * 13 + month) << 22 | day << 17 | h << 12 | mi << 6 | sec
    size = (fsp + 1) // 2
    fraction = micro // 10 ** (6 - 2 * size) if size else 0
    return format(whole << 8 * size | fraction, f"0{8 * (5 + size)}b")


TEMPORALS: list[tuple[Column, Any, str | None, str]] = [
    (col(DATE), packed_date(2026, 5, 12), None, "2026-05-12"),
    (col(DATE), packed_date(1, 1, 1), None, "0001-01-01"),
    (col(DATE), 0, None, "0000-00-00"),
    # Partial and invalid dates, as the server shows them (a permissive sql_mode).
    (col(DATE), packed_date(2015, 0, 21), None, "2015-00-21"),
    (col(DATE), packed_date(0, 1, 21), None, "0000-01-21"),
    (col(DATE), packed_date(2026, 2, 31), None, "2026-02-31"),
    (col(DATE), None, "out of date range", "0000-00-00"),
    (col(DATETIME2), datetime2_bits(2026, 5, 12, 12, 19, 40), None, "2026-05-12T12:19:40"),
    (col(DATETIME2, fsp=3), datetime2_bits(2026, 5, 12, 12, 19, 40, 123000, 3), None,
     "2026-05-12T12:19:40.123"),
    (col(DATETIME2, fsp=3), datetime2_bits(2026, 5, 12, 12, 19, 40, 0, 3), None,
     "2026-05-12T12:19:40.000"),
    (col(DATETIME2, fsp=6), datetime2_bits(9999, 12, 31, 23, 59, 59, 999999, 6), None,
     "9999-12-31T23:59:59.999999"),
    (col(DATETIME2, fsp=1), datetime2_bits(1000, 1, 1, 0, 0, 0, 500000, 1), None,
     "1000-01-01T00:00:00.5"),
    (col(DATETIME2), datetime2_bits(2026, 2, 31, 1, 2, 3), None, "2026-02-31T01:02:03"),
    (col(DATETIME2, fsp=3), datetime2_bits(0, 1, 1, 0, 0, 0, 500000, 3), None,
     "0000-01-01T00:00:00.500"),
    (col(DATETIME2), None, "out of datetime2 range", "0000-00-00T00:00:00"),
    (col(DATETIME2, fsp=2), None, "out of datetime2 range", "0000-00-00T00:00:00.00"),
    (col(DATETIME), 20260512010203, None, "2026-05-12T01:02:03"),
    (col(DATETIME), 20260500010203, None, "2026-05-00T01:02:03"),
    (col(DATETIME), None, "out of datetime range", "0000-00-00T00:00:00"),
    (col(TIMESTAMP2), timestamp2_bits(1778588380), None, "2026-05-12T12:19:40Z"),
    (col(TIMESTAMP2, fsp=3), timestamp2_bits(1778588380, 123000, 3), None,
     "2026-05-12T12:19:40.123Z"),
    (col(TIMESTAMP2), timestamp2_bits(0), None, "0000-00-00T00:00:00Z"),
    (col(TIMESTAMP2, fsp=6), timestamp2_bits(0, 0, 6), None, "0000-00-00T00:00:00.000000Z"),
    (col(TIMESTAMP2), timestamp2_bits(1), None, "1970-01-01T00:00:01Z"),
    (col(TIMESTAMP2), timestamp2_bits(2**31 - 1), None, "2038-01-19T03:14:07Z"),
    # MariaDB 11.5+ stores TIMESTAMP unsigned (to 2106).
    (col(TIMESTAMP2), timestamp2_bits(2**31), None, "2038-01-19T03:14:08Z"),
    (col(TIMESTAMP), 1778544000, None, "2026-05-12T00:00:00Z"),
    (col(TIMESTAMP), 0, None, "0000-00-00T00:00:00Z"),
]  # fmt: skip


@pytest.mark.parametrize(("column", "value", "source", "expected"), TEMPORALS)
def test_dates_and_times(column: Column, value: Any, source: str | None, expected: str) -> None:
    assert render(column, value, source) == expected


FORMATTERS = [
    (format_date(2026, 5, 12), "2026-05-12"),
    (format_date(2026, 0, 0), "2026-00-00"),  # the decoder keeps partial zero dates
    (format_date(0, 0, 0), "0000-00-00"),
    (format_datetime(2026, 5, 12, 12, 19, 40, 123456, 0), "2026-05-12T12:19:40"),
    (format_datetime(2026, 5, 12, 12, 19, 40, 123456, 4), "2026-05-12T12:19:40.1234"),
    (format_datetime(0, 0, 0, 0, 0, 0, 0, 6), "0000-00-00T00:00:00.000000"),
    (format_timestamp(0, 0, 0), "0000-00-00T00:00:00Z"),
    (format_timestamp(0, 0, 3), "0000-00-00T00:00:00.000Z"),
    (format_timestamp(1, 0, 0), "1970-01-01T00:00:01Z"),
    (format_timestamp(1778588380, 123000, 3), "2026-05-12T12:19:40.123Z"),
    (format_timestamp(2**31 - 1, 0, 0), "2038-01-19T03:14:07Z"),
    (format_timestamp(2**32 - 1, 999999, 6), "2106-02-07T06:28:15.999999Z"),
    (format_time(False, 0, 0, 0, 0, 0), "00:00:00"),
    (format_time(True, 838, 59, 59, 0, 0), "-838:59:59"),
    (format_time(False, 838, 59, 59, 0, 6), "838:59:59.000000"),
    (format_time(True, 0, 0, 1, 250000, 2), "-00:00:01.25"),
    (format_time(True, 0, 0, 0, 1, 6), "-00:00:00.000001"),
    (format_time(False, 100, 5, 6, 500000, 1), "100:05:06.5"),
]


@pytest.mark.parametrize(("got", "expected"), FORMATTERS)
def test_formatters(got: str, expected: str) -> None:
    assert got == expected


# -- TIME and the library's negative fractions ----------------------------------------------


TIMES = [
    (False, 0, 0, 0, "00:00:00"),
    (True, 1, 250000, 2, "-00:00:01.25"),
    (True, 0, 10000, 2, "-00:00:00.01"),
    (True, 0, 500000, 1, "-00:00:00.5"),
    (True, 59, 900000, 1, "-00:00:59.9"),
    (True, 3599, 999000, 3, "-00:59:59.999"),
    (True, 86399, 999900, 4, "-23:59:59.9999"),
    (True, 86400, 10, 5, "-24:00:00.00001"),
    (True, 3020398, 999999, 6, "-838:59:58.999999"),
    (True, 3020399, 0, 6, "-838:59:59.000000"),
    (True, 3020399, 0, 0, "-838:59:59"),
    (False, 3020399, 0, 0, "838:59:59"),
    (False, 3020398, 999999, 6, "838:59:58.999999"),
    (True, 45296, 789000, 3, "-12:34:56.789"),
    (True, 1, 0, 3, "-00:00:01.000"),
]


@pytest.mark.parametrize(("negative", "seconds", "micro", "fsp", "expected"), TIMES)
def test_time2(negative: bool, seconds: int, micro: int, fsp: int, expected: str) -> None:
    """Negative fractions included, which the library's own TIME2 reading gets wrong
    (`-00:00:01.25` came back as -1.75 s on MariaDB 10.11)."""
    value = time2_bits(negative, seconds, micro, fsp)
    assert render(col(TIME2, fsp=fsp), value) == expected


def test_old_time_format() -> None:
    """The pre-5.6 TIME: its digits as a signed 3-byte integer (the library, reading it
    unsigned, could not show a negative one)."""
    assert render(col(TIME), 8385959) == "838:59:59"
    assert render(col(TIME), -10203) == "-01:02:03"


# -- text, ENUM, SET ------------------------------------------------------------------------

# Text arrives as its bytes (an empty value as ""), ENUM as the label's index.
TEXTS = [
    (col(VARCHAR, charset="utf8"), "héllo 🎉".encode(), "héllo 🎉"),
    (col(STRING, charset="cp1252", max_length=10), b"\xe9\x80\x81", "é€\x81"),
    (col(BLOB, charset="utf8", length_size=2), "", ""),
    (
        col(BLOB, charset="utf8mb4", length_size=2),
        b"\xed\xa0\xbd",
        {"charset": "utf8mb4", "hex": "eda0bd"},
    ),
    (col(BLOB, charset="ucs2", length_size=2), "é".encode("utf-16-be"), "é"),
    (col(VARCHAR, charset="swe7"), b"x", {"charset": "swe7", "hex": "78"}),  # no Python codec
    (col(ENUM, enum_values=("a", "b"), size=1), 2, "b"),
    (col(ENUM, enum_values=("a", "b"), size=1), 0, ""),  # the invalid-value index 0
]


@pytest.mark.parametrize(("column", "value", "expected"), TEXTS)
def test_texts(column: Column, value: Any, expected: str) -> None:
    assert render(column, value) == expected


# SET members arrive as their indexes.
SETS: list[tuple[Any, str | None, list[str]]] = [
    ({2, 0}, None, ["x", "z"]),  # definition order, not the set's
    ({1}, None, ["y"]),
    ({0, 1, 2}, None, ["x", "y", "z"]),
    (None, "empty set", []),
]


@pytest.mark.parametrize(("value", "source", "expected"), SETS)
def test_sets(value: Any, source: str | None, expected: list[str]) -> None:
    assert render(col(SET, set_values=("x", "y", "z"), size=1), value, source) == expected


def test_set_and_enum_without_metadata_refuse() -> None:
    with pytest.raises(DecodeError, match="binlog_row_metadata=FULL"):
        render(col(SET, size=1), None, "empty set")
    with pytest.raises(DecodeError, match="binlog_row_metadata=FULL"):
        render(col(ENUM, size=1), "a")
    with pytest.raises(DecodeError, match="beyond the 1 labels"):
        render(col(SET, set_values=("x",), size=1), {3})
    with pytest.raises(DecodeError, match="beyond the 2 labels"):
        render(col(ENUM, enum_values=("a", "b"), size=1), 3)


def test_text_column_given_text_refuses() -> None:
    # Text must come as bytes: the library's own decode is not lossless.
    with pytest.raises(DecodeError, match=r"s\.t\.c \(VARCHAR\): a str value"):
        render_row(Table("s", "t", (col(VARCHAR, charset="utf8"),)), {"c": "x"}, {})


# -- binary, UUID, INET, GEOMETRY -----------------------------------------------------------

BINARY = col(STRING, charset="binary", max_length=4)
VARBINARY = col(VARCHAR, charset="binary", max_length=10)
UUID = col(STRING, charset="binary", max_length=16, logical="uuid")
INET4 = col(STRING, charset="binary", max_length=4, logical="inet4")
INET6 = col(STRING, charset="binary", max_length=16, logical="inet6")

BINARIES: list[tuple[Column, bytes, str, str]] = [
    (BINARY, b"a", "hex", "61000000"),  # the library strips trailing zero bytes
    (BINARY, b"", "hex", "00000000"),
    (BINARY, b"\xff\x00\x00\x01", "hex", "ff000001"),
    (BINARY, b"a", "base64", "YQAAAA=="),
    (VARBINARY, b"\x00\x00", "hex", "0000"),  # VARBINARY keeps its length
    (VARBINARY, b"", "base64", ""),
    (col(BLOB, charset="binary", length_size=2), b"\x00\xab\xcd", "hex", "00abcd"),
    (col(BLOB, charset="binary", length_size=4), b"\xfb\xff", "base64", "+/8="),
    (col(GEOMETRY, length_size=4), bytes.fromhex("000000000101000000"), "hex",
     "000000000101000000"),
    (UUID, bytes.fromhex("123e4567e89b12d3a4564266141740"), "hex",
     "123e4567-e89b-12d3-a456-426614174000"),  # 15 bytes: the trailing 00 was stripped
    (UUID, b"", "base64", "00000000-0000-0000-0000-000000000000"),
    (INET4, b"\n\x00\x00\x01", "hex", "10.0.0.1"),
    (INET4, b"\n", "hex", "10.0.0.0"),
    (INET6, bytes(15) + b"\x01", "hex", "::1"),
    (INET6, bytes.fromhex("20010db8"), "hex", "2001:db8::"),
]  # fmt: skip


@pytest.mark.parametrize(("column", "value", "binary", "expected"), BINARIES)
def test_binaries(column: Column, value: bytes, binary: str, expected: str) -> None:
    assert render(column, value, binary=binary) == expected


def test_unknown_binary_encoding_refuses() -> None:
    with pytest.raises(ValueError, match="base32"):
        render(VARBINARY, b"x", binary="base32")
    with pytest.raises(ValueError, match="base32"):
        format_binary(b"x", "base32")


# What MariaDB 10.11 shows for these INET6 values (CAST(CAST(x AS INET6) AS CHAR)).
INET6S = [
    ("00000000000000000000ffff01020304", "::ffff:1.2.3.4"),
    ("00000000000000000000000001020304", "::1.2.3.4"),
    ("00000000000000000000000000000001", "::1"),
    ("00000000000000000000000000000000", "::"),
    ("00010000000000000000000000000000", "1::"),
    ("20010db8000000000001000000000001", "2001:db8::1:0:0:1"),
    ("00010000000000020000000000000003", "1:0:0:2::3"),
    ("fe800000000000000001000000000000", "fe80::1:0:0:0"),
    ("00000002000300040005000600070008", "::2:3:4:5:6:7:8"),
    ("00010002000300040005000600070000", "1:2:3:4:5:6:7::"),
    ("00000000000000000000ffff00000000", "::ffff:0.0.0.0"),
    ("00000000000000000000000000000100", "::100"),
    ("00010000000200000003000000040000", "1::2:0:3:0:4:0"),
    ("00000000000000000000fffe01020304", "::fffe:102:304"),
    ("00000000000000000000000101020304", "::1:102:304"),
    ("abcd00000000000000000000000000ef", "abcd::ef"),
    ("00010002000300040005000600070008", "1:2:3:4:5:6:7:8"),
]


@pytest.mark.parametrize(("hex_", "expected"), INET6S)
def test_format_inet6_as_mariadb(hex_: str, expected: str) -> None:
    assert format_inet6(bytes.fromhex(hex_)) == expected


@pytest.mark.parametrize(
    ("formatter", "size"), [(format_uuid, 16), (format_inet4, 4), (format_inet6, 16)]
)
def test_logical_formatters_check_the_size(formatter: Any, size: int) -> None:
    with pytest.raises(ValueError, match=str(size)):
        formatter(bytes(size - 1))


# -- JSON ---------------------------------------------------------------------------------

MYSQL_JSON = col(JSON, length_size=4)
MARIADB_JSON = col(BLOB, charset="utf8", length_size=4, logical="json")

JSONS: list[tuple[Column, Any, Any]] = [
    (MYSQL_JSON, {b"a": [1, b"x", {b"b": None}], b"c": True, b"d": 1.5},
     {"a": [1, "x", {"b": None}], "c": True, "d": 1.5}),
    (MYSQL_JSON, [b"\xc3\xa9", [], {}, False, -(2**63), 2**64 - 1],
     ["é", [], {}, False, -(2**63), 2**64 - 1]),
    (MYSQL_JSON, {b"k\xc3\xa9": {b"deep": [[{b"x": b"y"}]]}}, {"ké": {"deep": [[{"x": "y"}]]}}),
    (MYSQL_JSON, b"just a string", "just a string"),
    (MYSQL_JSON, 42, 42),
    (MYSQL_JSON, True, True),
    (MYSQL_JSON, "opaque text", "opaque text"),  # top-level opaque scalar: not parsed
    (MYSQL_JSON, [Decimal("1.50"), Decimal("0.1"), Decimal("12345678901234567890.5")],
     [1.5, 0.1, "12345678901234567890.5"]),
    (MYSQL_JSON, {b"t": dt.datetime(2026, 5, 12, 12, 19, 40, 123000)},
     {"t": "2026-05-12 12:19:40.123000"}),
    (MYSQL_JSON, [dt.time(1, 2, 3)], ["01:02:03.000000"]),
    (MARIADB_JSON, b'{"a": [1, 2.50, "x"], "b": null}', {"a": [1, 2.5, "x"], "b": None}),
    (MARIADB_JSON, b'"text"', "text"),
    (MARIADB_JSON, b"[]", []),
    # Text that is not JSON cdc can re-encode is kept as the text (logged, never the value).
    (MARIADB_JSON, b"{not json", "{not json"),
    (MARIADB_JSON, b"[1e400]", "[1e400]"),
    (MARIADB_JSON, b"[" * 300 + b"]" * 300, "[" * 300 + "]" * 300),
    (MARIADB_JSON, b"\xff", {"charset": "utf8", "hex": "ff"}),
]  # fmt: skip


@pytest.mark.parametrize(("column", "value", "expected"), JSONS)
def test_json(column: Column, value: Any, expected: Any) -> None:
    rendered = render(column, value)
    assert rendered == expected
    assert orjson.loads(orjson.dumps(rendered)) == expected


def test_json_value_takes_both_servers_forms() -> None:
    assert json_value({b"a": [b"b"]}) == {"a": ["b"]}
    assert json_value('{"a": ["b"]}') == {"a": ["b"]}


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        (MYSQL_JSON, {b"a": {1, 2}}, "set inside a JSON value"),
        (MYSQL_JSON, [float("nan")], "not finite"),
    ],
)
def test_json_refuses(column: Column, value: Any, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        render(column, value)


# -- NULL, unknown values -----------------------------------------------------------------

ALL_KINDS = [
    col(LONG), col(NEWDECIMAL, decimals=2), col(FLOAT), col(DATE), col(DATETIME2, fsp=3),
    col(TIMESTAMP2), col(TIME2), col(YEAR), col(VARCHAR, charset="utf8"), BINARY, UUID,
    col(ENUM, enum_values=("a",)), col(SET, set_values=("a",)), col(BIT, bits=3),
    MYSQL_JSON, MARIADB_JSON, col(GEOMETRY),
]  # fmt: skip


@pytest.mark.parametrize("column", ALL_KINDS)
def test_null_is_none(column: Column) -> None:
    assert render_value(column, None, "null") is None
    assert render_value(column, None, None) is None


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("cols bitmap", "binlog_row_image=FULL"),
        ("same with before values", "partial JSON"),
        ("out of date range", "no rule for a None"),  # not a DATE column
        ("something new", "no rule for a None"),
    ],
)
def test_unexplained_none_refuses(source: str, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        render_value(col(LONG), None, source)


UNKNOWN_VALUES: list[tuple[Column, Any, str]] = [
    (col(LONG), "5", r"c \(INT\): a str value"),
    (col(LONG), True, r"c \(INT\): a bool value"),
    (col(LONG), 5.0, r"c \(INT\): a float value"),
    (col(DATE), dt.datetime(2026, 1, 1), r"c \(DATE\): a datetime value"),
    (col(DATETIME2), dt.date(2026, 1, 1), r"c \(DATETIME\): a date value"),
    (col(TIME2), 5, r"c \(TIME\): an? int value"),
    (BINARY, "abc", r"c \(BINARY\): a str value"),
    (UUID, "abc", r"c \(UUID \(CHAR\)\): a str value"),
    (col(SET, set_values=("a",)), ["a"], r"c \(SET\): a list value"),
    (col(BIT, bits=3), "12", r"c \(BIT\): a str value"),
    (col(6), 1, r"c \(binlog type 6\): a int value: no rule for this binlog column type"),
]


@pytest.mark.parametrize(("column", "value", "match"), UNKNOWN_VALUES)
def test_unknown_values_refuse(column: Column, value: Any, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        render(column, value)


# -- render_row -----------------------------------------------------------------------------

PATIENT = Table(
    "bhima",
    "patient",
    (
        col(LONG, "id"),
        col(VARCHAR, "display_name", charset="utf8"),
        col(NEWDECIMAL, "balance", precision=10, decimals=2),
        col(SET, "flags", set_values=("vip", "new")),
        col(DATE, "dob"),
        col(LONG, "user_id"),
    ),
    ("id",),
)


def test_render_row_is_in_column_order() -> None:
    values = {
        "user_id": None,
        "dob": None,
        "flags": None,
        "balance": Decimal("0E-2"),
        "display_name": b"Ana",
        "id": 42,
    }
    sources = {"user_id": "null", "dob": "out of date range", "flags": "empty set"}
    row = render_row(PATIENT, values, sources)
    assert list(row) == ["id", "display_name", "balance", "flags", "dob", "user_id"]
    assert row == {
        "id": 42,
        "display_name": "Ana",
        "balance": "0.00",
        "flags": [],
        "dob": "0000-00-00",
        "user_id": None,
    }


def test_render_row_errors_name_the_column() -> None:
    values = {"id": 1, "display_name": b"x", "balance": 1.5, "flags": None, "dob": None}
    with pytest.raises(DecodeError, match=r"bhima\.patient\.balance \(DECIMAL\): a float"):
        render_row(PATIENT, {**values, "user_id": None}, {})
    with pytest.raises(DecodeError, match="no column 'user_id'"):
        render_row(PATIENT, {**values, "balance": Decimal(1)}, {})


def test_render_row_reuses_its_plan_per_table_version() -> None:
    values = {"id": 1, "display_name": b"x", "balance": Decimal(1), "flags": {1}}
    values |= {"dob": packed_date(2000, 1, 2), "user_id": 7}
    first = render_row(PATIENT, values, {})
    assert render_row(PATIENT, values, {}) == first
    wider = Table("bhima", "patient", (*PATIENT.columns[:2], col(LONG, "balance")), ("id",))
    assert render_row(wider, {"id": 1, "display_name": b"x", "balance": 3}, {})["balance"] == 3


# -- to_record ------------------------------------------------------------------------------


def record(op: Op, table: Table, before: Any, after: Any, **kwargs: Any) -> ChangeRecord:
    return to_record(RowChange(op, table, before, after), 1778588380.5, "0-1-5531", **kwargs)


def test_create_record() -> None:
    row = {"id": 42, "display_name": "Ana", "user_id": 7}
    got = record(Op.CREATE, PATIENT, None, row)
    assert got == ChangeRecord(
        type=Op.CREATE,
        schema="bhima",
        table="patient",
        row_id=42,
        user_id=7,
        data={"after": row},
        timestamp=1778588380.5,
        txn="0-1-5531",
        key=("id",),
    )
    assert got.data["after"] is row  # no copy on the hot path


def test_delete_record_takes_key_and_user_from_the_before_image() -> None:
    row = {"id": 42, "display_name": "Ana", "user_id": 9}
    got = record(Op.DELETE, PATIENT, row, None)
    assert (got.type, got.row_id, got.user_id, got.data) == (Op.DELETE, 42, 9, {"before": row})


KEYS = [
    ((), None),
    (("id",), 1),
    (("b", "a"), ["x", 1]),  # key order, not column order
    (("a", "b", "c"), [1, "x", None]),
]


@pytest.mark.parametrize(("key", "row_id"), KEYS)
def test_row_id(key: tuple[str, ...], row_id: Any) -> None:
    table = Table("s", "t", (col(LONG, "a"), col(VARCHAR, "b"), col(LONG, "c")), key)
    row = {"id": 1, "a": 1, "b": "x", "c": None}
    assert record(Op.CREATE, table, None, row).row_id == row_id


def test_binary_uuid_key_is_the_hex_of_the_bytes() -> None:
    table = Table("s", "t", (col(STRING, "id", charset="binary", max_length=16),), ("id",))
    stripped = bytes.fromhex("0f" * 15)  # its last byte, 00, was stripped by the library
    row = render_row(table, {"id": stripped}, {})
    assert record(Op.CREATE, table, None, row).row_id == "0f" * 15 + "00"


def test_user_id() -> None:
    row = {"id": 1, "user_id": 5, "owner": 8}
    assert record(Op.CREATE, PATIENT, None, row).user_id == 5
    assert record(Op.CREATE, PATIENT, None, row, user_column="owner").user_id == 8
    assert record(Op.CREATE, PATIENT, None, {"id": 1}).user_id is None
    assert record(Op.CREATE, PATIENT, None, row, user_column="nope").user_id is None


CHANGES: list[tuple[dict[str, Any], dict[str, Any], list[str]]] = [
    ({"a": 1, "b": "x", "c": None}, {"a": 1, "b": "x", "c": None}, []),
    ({"a": 1, "b": "x", "c": None}, {"a": 2, "b": "y", "c": 0}, ["a", "b", "c"]),
    ({"a": 1, "b": "x", "c": None}, {"a": 1, "b": "x", "c": "0"}, ["c"]),
    ({"j": {"k": 1}}, {"j": {"k": True}}, ["j"]),  # JSON 1 -> true
    ({"j": [1]}, {"j": [1.0]}, ["j"]),
    ({"j": 1}, {"j": 1.0}, ["j"]),
    ({"j": {"a": 1, "b": 2}}, {"j": {"b": 2, "a": 1}}, []),  # same object
    ({"f": 0.0}, {"f": -0.0}, ["f"]),
    ({"f": 1.5}, {"f": 1.5}, []),
    ({"s": ["x"]}, {"s": ["x", "y"]}, ["s"]),
    ({"a": 1}, {"a": 1, "new": 2}, ["new"]),
]


@pytest.mark.parametrize(("before", "after", "changed"), CHANGES)
def test_update_changed_columns(
    before: dict[str, Any], after: dict[str, Any], changed: list[str]
) -> None:
    got = record(Op.UPDATE, Table("s", "t", ()), before, after)
    assert got.data == {"before": before, "after": after, "changed": changed}


def test_update_follows_a_key_change_in_the_after_image() -> None:
    got = record(Op.UPDATE, PATIENT, {"id": 1, "user_id": 3}, {"id": 2, "user_id": 4})
    assert (got.row_id, got.user_id, got.data["changed"]) == (2, 4, ["id", "user_id"])


@pytest.mark.parametrize(
    ("op", "before", "after"),
    [(Op.CREATE, None, None), (Op.DELETE, None, {}), (Op.UPDATE, {}, None)],
)
def test_missing_image_refuses(op: Op, before: Any, after: Any) -> None:
    with pytest.raises(ValueError, match="image"):
        record(op, PATIENT, before, after)

"""Row images to JSON-safe, lossless values and `ChangeRecord`s: the MySQL type -> JSON rules.

Pure functions, no I/O; the `format_*` helpers are shared with the compiled decoder.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import math
import struct
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal
from typing import Any

import orjson

from cdc.errors import DecodeError
from cdc.models import ChangeRecord, Column, Op, Row, RowChange, Table

# Binlog field types (pymysqlreplication.constants.FIELD_TYPE; the mapper does not import it).
TINY, SHORT, LONG, FLOAT, DOUBLE = 1, 2, 3, 4, 5
TIMESTAMP, LONGLONG, INT24, DATE, TIME, DATETIME, YEAR, NEWDATE = 7, 8, 9, 10, 11, 12, 13, 14
VARCHAR, BIT, TIMESTAMP2, DATETIME2, TIME2 = 15, 16, 17, 18, 19
JSON, NEWDECIMAL, ENUM, SET = 245, 246, 247, 248
TINY_BLOB, MEDIUM_BLOB, LONG_BLOB, BLOB, VAR_STRING, STRING, GEOMETRY = range(249, 256)

TYPE_NAMES = {
    TINY: "TINYINT", SHORT: "SMALLINT", LONG: "INT", FLOAT: "FLOAT", DOUBLE: "DOUBLE",
    TIMESTAMP: "TIMESTAMP", LONGLONG: "BIGINT", INT24: "MEDIUMINT", DATE: "DATE", TIME: "TIME",
    DATETIME: "DATETIME", YEAR: "YEAR", NEWDATE: "DATE", VARCHAR: "VARCHAR", BIT: "BIT",
    TIMESTAMP2: "TIMESTAMP", DATETIME2: "DATETIME", TIME2: "TIME", JSON: "JSON",
    NEWDECIMAL: "DECIMAL", ENUM: "ENUM", SET: "SET", TINY_BLOB: "TINYBLOB",
    MEDIUM_BLOB: "MEDIUMBLOB", LONG_BLOB: "LONGBLOB", BLOB: "BLOB", VAR_STRING: "VARCHAR",
    STRING: "CHAR", GEOMETRY: "GEOMETRY",
}  # fmt: skip

_INTEGERS = frozenset({TINY, SHORT, LONG, INT24, LONGLONG})
_STRINGS = frozenset({VARCHAR, VAR_STRING, STRING, TINY_BLOB, MEDIUM_BLOB, LONG_BLOB, BLOB})
_LOGICAL_SIZES = {"uuid": 16, "inet4": 4, "inet6": 16}

# pymysqlreplication's `none_sources` values (constants/NONE_SOURCE.py).
_NULL = "null"
_ZERO_DATE_SOURCES = frozenset({"out of date range"})
_ZERO_DATETIME_SOURCES = frozenset({"out of datetime range", "out of datetime2 range"})
_EMPTY_SET = "empty set"

ZERO_DATE = "0000-00-00"
ZERO_DATETIME = "0000-00-00T00:00:00"
# Longest TIME MySQL accepts, in seconds: 838:59:59.
_TIME_MAX = 838 * 3600 + 59 * 60 + 59
_F32 = struct.Struct("<f")
_U32 = struct.Struct("<I")
_F32_MIN_NORMAL = 1.1754943508222875e-38
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_ORDINAL = _EPOCH.toordinal()
# TIMESTAMP beyond 2038 (MariaDB 11.5+ stores it unsigned) is read as a signed int32.
_TIMESTAMP_WRAP = dt.timedelta(seconds=1 << 32)
_ZERO_FRACTION = tuple(".000000"[: 1 + fsp] for fsp in range(7))


# -- formatting helpers, shared with the compiled decoder ---------------------------------


def format_decimal(value: str | Decimal, scale: int) -> str:
    """DECIMAL text as MySQL shows it: fixed point with exactly `scale` fraction digits.

    `value` is a Decimal (any exponent: `Decimal('0E-10')`, `Decimal('1.2E+5')`) or
    decimal text such as `"-12.34"`, `".5"`, `"007."`. Leading zeros go, fraction zeros
    are added up to `scale`, and a negative zero becomes `0.00` (MySQL never shows
    `-0.00`). Raises ValueError for text that is not a decimal or has non-zero digits
    beyond `scale`.
    """
    text = value if isinstance(value, str) else format(value, "f")
    negative = text[:1] == "-"
    if negative or text[:1] == "+":
        text = text[1:]
    whole, _, fraction = text.partition(".")
    if not whole and not fraction:
        raise ValueError(f"{value!r} is not a decimal number")
    whole = whole.lstrip("0") or "0"
    if len(fraction) != scale:
        if len(fraction) < scale:
            fraction += "0" * (scale - len(fraction))
        elif fraction[scale:].strip("0"):
            raise ValueError(f"{value!r} has more than {scale} fraction digits")
        else:
            fraction = fraction[:scale]
    if not (whole.isascii() and whole.isdigit() and (not fraction or fraction.isdigit())):
        raise ValueError(f"{value!r} is not a decimal number")
    if negative and whole == "0" and not fraction.strip("0"):
        negative = False
    text = f"{whole}.{fraction}" if scale else whole
    return "-" + text if negative else text


def _float32(value: float) -> float:
    try:
        return float(_F32.unpack(_F32.pack(value))[0])
    except OverflowError:  # beyond the float32 range
        return math.copysign(math.inf, value)


def format_float32(f: float) -> float:
    """The shortest decimal that reads back as the same 32-bit float, as a Python float.

    `f` is a FLOAT column's value widened to double (`1.100000023841858` -> `1.1`;
    `3.4028234663852886e38` -> `3.4028235e38`; `-0.0` stays `-0.0`). The result prints
    (repr, orjson) as that shortest decimal, and inserting it back stores the same float.
    Raises ValueError for NaN and infinities (MySQL cannot store them).
    """
    exact = _float32(f)
    if exact != exact or exact in (math.inf, -math.inf):
        raise ValueError(f"{f!r} is not a finite FLOAT")
    if exact == 0.0:
        return exact
    if abs(exact) >= _F32_MIN_NORMAL:
        # A normal float32 has a relative half-gap below 2**-24: if any decimal of six
        # digits or fewer reads back as `exact`, rounding `exact` to six digits finds it.
        short = float(f"{exact:.6g}")
        if _float32(short) == exact:
            return short
        first = 7
    else:
        first = 1  # subnormals: the gap is wide, `1e-45` is enough for the smallest one
    power_of_two = not _U32.unpack(_F32.pack(exact))[0] & 0x7FFFFF
    for digits in range(first, 10):
        short = float(f"{exact:.{digits}g}")
        if _float32(short) == exact:
            return short
        if power_of_two:
            # At a power of two the gap below is half the gap above: the nearest decimal
            # of this length can miss while the next one up (or down) still reads back.
            whole = Decimal(exact)
            for rounding in (ROUND_CEILING, ROUND_FLOOR):
                other = float(Context(prec=digits, rounding=rounding).plus(whole))
                if _float32(other) == exact:
                    return other
    return exact  # nine significant digits always read back; not reached


def format_date(year: int, month: int, day: int) -> str:
    """DATE: `"2026-05-12"`; zero parts are kept as MySQL shows them (`"2026-00-00"`)."""
    return "%04d-%02d-%02d" % (year, month, day)  # noqa: UP031 - faster than an f-string


def format_datetime(
    year: int, month: int, day: int, hour: int, minute: int, second: int, micro: int, fsp: int
) -> str:
    """DATETIME: `"2026-05-12T12:19:40.123"`, with exactly `fsp` fraction digits (none for 0).

    `micro` is in microseconds (0..999999); its first `fsp` digits are shown.
    """
    # %-formatting: about twice as fast as an f-string with format specs.
    if fsp:
        return (
            "%04d-%02d-%02dT%02d:%02d:%02d.%06d"  # noqa: UP031
            % (year, month, day, hour, minute, second, micro)
        )[: 20 + fsp]
    return "%04d-%02d-%02dT%02d:%02d:%02d" % (year, month, day, hour, minute, second)  # noqa: UP031


def zero_datetime(fsp: int) -> str:
    """The zero DATETIME as MySQL shows it: `"0000-00-00T00:00:00"` plus `fsp` zeros."""
    return f"{ZERO_DATETIME}.000000"[: 20 + fsp] if fsp else ZERO_DATETIME


def format_timestamp(seconds: int, micro: int, fsp: int) -> str:
    """TIMESTAMP from seconds since the epoch (as stored: UTC), with a `Z` suffix.

    `seconds == 0` is MySQL's zero timestamp `"0000-00-00T00:00:00Z"`, never 1970.
    """
    if seconds == 0:
        return zero_datetime(fsp) + "Z"
    return _iso(_EPOCH + dt.timedelta(seconds=seconds, microseconds=micro), fsp) + "Z"


def format_time(
    negative: bool, hours: int, minutes: int, seconds: int, micro: int, fsp: int
) -> str:
    """TIME: `[-]HH:MM:SS[.fff]`, at least two hour digits (`"-838:59:59"`), `fsp` digits."""
    if fsp:
        text = "%s%02d:%02d:%02d.%06d" % (  # noqa: UP031
            "-" if negative else "",
            hours,
            minutes,
            seconds,
            micro,
        )
        return text[: len(text) - 6 + fsp]
    return "%s%02d:%02d:%02d" % ("-" if negative else "", hours, minutes, seconds)  # noqa: UP031


def format_binary(data: bytes, binary: str = "hex") -> str:
    """Binary bytes as lowercase hex (`binary="hex"`) or standard padded base64 (`"base64"`)."""
    if binary == "hex":
        return data.hex()
    if binary == "base64":
        return base64.b64encode(data).decode("ascii")
    raise ValueError(f"unknown binary encoding {binary!r}: use 'hex' or 'base64'")


def format_uuid(data: bytes) -> str:
    """MariaDB UUID from its 16 binlog bytes: `"123e4567-e89b-12d3-a456-426614174000"`.

    MariaDB 10.11 writes the bytes in text order to the binlog (its index-friendly
    segment swap stays inside the storage engine; checked by tests/integration/test_types.py).
    """
    if len(data) != 16:
        raise ValueError(f"a UUID has 16 bytes, not {len(data)}")
    h = data.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def format_inet4(data: bytes) -> str:
    """MariaDB INET4 from its 4 bytes (network order): `"10.0.0.1"`."""
    if len(data) != 4:
        raise ValueError(f"an INET4 has 4 bytes, not {len(data)}")
    return f"{data[0]}.{data[1]}.{data[2]}.{data[3]}"


def format_inet6(data: bytes) -> str:
    """MariaDB INET6 from its 16 bytes, exactly as MariaDB prints it (`"::1"`).

    MariaDB's own rule (sql_type_inet.cc), which differs from Python's `ipaddress`: the
    longest run of zero groups is compressed even when it is a single group (first run
    wins a tie), and `::a.b.c.d` / `::ffff:a.b.c.d` are used for IPv4-compatible and
    IPv4-mapped addresses.
    """
    if len(data) != 16:
        raise ValueError(f"an INET6 has 16 bytes, not {len(data)}")
    words = struct.unpack(">8H", data)
    gap_pos, gap_len, run_pos = -1, 0, -1
    for i, word in enumerate((*words, 1)):
        if word == 0:
            if run_pos < 0:
                run_pos = i
        elif run_pos >= 0:
            if i - run_pos > gap_len:
                gap_pos, gap_len = run_pos, i - run_pos
            run_pos = -1
    if gap_pos == 0 and (gap_len == 6 or (gap_len == 5 and words[5] == 0xFFFF)):
        prefix = "::" if gap_len == 6 else "::ffff:"
        return f"{prefix}{data[12]}.{data[13]}.{data[14]}.{data[15]}"
    if gap_pos < 0:
        return ":".join(f"{word:x}" for word in words)
    head = ":".join(f"{word:x}" for word in words[:gap_pos])
    tail = ":".join(f"{word:x}" for word in words[gap_pos + gap_len :])
    return f"{head}::{tail}"


def json_text(text: str | bytes) -> Any:
    """A JSON value from JSON text (MariaDB's JSON is LONGTEXT): the parsed value.

    Numbers follow orjson: integers beyond 64 bits become floats; text that is not JSON,
    or a number beyond the double range, raises ValueError.
    """
    return orjson.loads(text)


def json_value(value: Any) -> Any:
    """A JSON column's value as a plain JSON value (str keys, str strings).

    `value` is either what pymysqlreplication decodes from MySQL's binary JSON (dict/list
    with bytes keys and bytes strings, int, float, bool, None, and for opaque scalars
    Decimal, datetime, time or str), or, as a str, MariaDB's JSON text (parsed). Opaque
    DECIMALs become a number when a double holds them exactly, else decimal text;
    opaque DATETIME/TIME become MySQL's JSON text form `"2026-05-12 12:19:40.000000"`.
    Raises TypeError/ValueError for anything else.
    """
    if value.__class__ is str:
        return orjson.loads(value)
    return _json(value)


def _json(value: Any) -> Any:
    cls = value.__class__
    if cls is dict:
        return {
            (key.decode() if key.__class__ is bytes else _json_key(key)): _json(item)
            for key, item in value.items()
        }
    if cls is list:
        return [_json(item) for item in value]
    if cls is bytes:
        return value.decode()
    if value is None or cls is str or cls is int or cls is bool:
        return value
    if cls is float:
        if value != value or value in (math.inf, -math.inf):
            raise ValueError(f"JSON number {value!r} is not finite")
        return value
    if cls is Decimal:
        as_float = float(value)
        if math.isfinite(as_float) and Decimal(repr(as_float)) == value:
            return as_float
        return format(value, "f")
    if cls is dt.datetime:
        return (
            f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:"
            f"{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
        )
    if cls is dt.time:
        return f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    raise TypeError(f"no JSON rule for a {cls.__name__} inside a JSON value")


def _json_key(key: Any) -> str:
    if key.__class__ is not str:
        raise TypeError(f"no JSON rule for a {key.__class__.__name__} object key")
    return str(key)


# -- per-column rules for the library path -------------------------------------------------


class _Unknown(Exception):
    """A value the rules do not cover; turned into DecodeError with the column's name."""


Converter = Callable[[Any], Any]
# (column name, the exact Python class the library gives or None to always convert,
#  converter or None to keep the value, column)
_Step = tuple[str, type | None, Converter | None, Column]


def _type_name(column: Column) -> str:
    name = TYPE_NAMES.get(column.type, f"binlog type {column.type}")
    if column.logical:
        return f"{column.logical.upper()} ({name})"
    if column.charset == "binary" and column.type in _STRINGS:
        return {STRING: "BINARY", VARCHAR: "VARBINARY", VAR_STRING: "VARBINARY"}.get(
            column.type, "BLOB"
        )
    return name


def _year(value: int) -> int:
    # The library adds 1900 to the stored byte: YEAR 0000 (byte 0) arrives as 1900,
    # which is not a valid YEAR (1901..2155).
    return 0 if value == 1900 else value


def _date(value: dt.date) -> str:
    return value.isoformat()


def _iso(value: dt.datetime, fsp: int) -> str:
    # format_datetime for a datetime; isoformat is C and gives 19 or 26 characters.
    text = value.isoformat()
    if not fsp:
        return text[:19]
    if len(text) == 19:
        return text + _ZERO_FRACTION[fsp]
    return text[: 20 + fsp]


def _datetime(fsp: int) -> Converter:
    def convert(value: dt.datetime) -> str:
        return _iso(value, fsp)

    return convert


def _timestamp(fsp: int) -> Converter:
    zero = zero_datetime(fsp) + "Z"

    def convert(value: dt.datetime) -> str:
        if value <= _EPOCH:
            if value == _EPOCH:
                return zero  # stored 0: MySQL's zero timestamp, not 1970
            value += _TIMESTAMP_WRAP  # MariaDB 11.5+ unsigned TIMESTAMP read as signed
        return _iso(value, fsp) + "Z"

    return convert


def time2_micros(value: dt.timedelta) -> int:
    """Signed microseconds of a TIME2 value as pymysqlreplication decodes it, corrected.

    The library reads a negative TIME2 as `-(int_part + frac)` where, in the stored
    two's-complement form, `int_part` is one second too large and `frac` is the true
    fraction negated: `-00:00:01.25` comes back as -1.75 s. For a negative value with a
    fraction f (0 < f < 1 s) it returns -(S + 1 - f) for the true -(S + f); this undoes it,
    for every fsp (the fraction is exact in microseconds). Values without a fraction
    and non-negative values are right as they come.
    """
    total = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    if total < 0:
        magnitude = -total
        micro = magnitude % 1_000_000
        if micro:
            magnitude += 1_000_000 - 2 * micro
        return -magnitude
    return total


def _time_from_micros(total: int, fsp: int) -> str:
    negative = total < 0
    seconds, micro = divmod(-total if negative else total, 1_000_000)
    if seconds > _TIME_MAX:
        raise _Unknown(f"TIME of {seconds} s is beyond 838:59:59")
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return format_time(negative, hours, minutes, seconds, micro, fsp)


def _time2(fsp: int) -> Converter:
    def convert(value: dt.timedelta) -> str:
        return _time_from_micros(time2_micros(value), fsp)

    return convert


def _time_old(value: dt.timedelta) -> str:
    # The pre-5.6 TIME (binlog type 11) is read as an unsigned int24: a negative value
    # wraps to more than 838:59:59 and cannot be told back (many values share one
    # reading), so it stops capture instead of being rendered wrong.
    total = value.days * 86400 + value.seconds
    if value.microseconds or total > _TIME_MAX or total < 0:
        raise _Unknown(
            "a negative TIME in the pre-MySQL-5.6 storage format, which mysql-replication "
            "decodes wrong; convert the table with ALTER TABLE ... FORCE"
        )
    return _time_from_micros(total * 1_000_000, 0)


def _bit(value: str) -> int:
    return int(value, 2)


def _pad(size: int, then: Converter) -> Converter:
    # The library strips trailing zero bytes of BINARY(n) (and of UUID/INET4/INET6).
    def convert(value: bytes) -> Any:
        if len(value) < size:
            value += b"\0" * (size - len(value))
        return then(value)

    return convert


def _binary(binary: str) -> Converter:
    if binary == "hex":
        return bytes.hex

    def convert(value: bytes) -> str:
        return base64.b64encode(value).decode("ascii")

    return convert


def _set(values: tuple[str, ...]) -> Converter:
    def convert(value: set[str]) -> list[str]:
        if not value <= members:
            raise _Unknown(f"SET members {sorted(value - members)} are not in the definition")
        return [member for member in values if member in value]

    members = frozenset(values)
    return convert


def _missing_metadata(value: Any) -> Any:
    raise _Unknown(
        "the binlog carries no ENUM/SET values for this column: set binlog_row_metadata=FULL"
    )


def _mysql_json(value: Any) -> Any:
    # MySQL's binary JSON, decoded by the library; a top-level str is an opaque scalar.
    return _json(value)


def _unknown_type(value: Any) -> Any:
    raise _Unknown("no rule for this binlog column type")


@functools.lru_cache(maxsize=4096)
def _rule(column: Column, binary: str) -> tuple[type | None, Converter | None]:
    """How to render one column: the class the library gives, and the converter."""
    if binary not in ("hex", "base64"):
        raise ValueError(f"unknown binary encoding {binary!r}: use 'hex' or 'base64'")
    kind = column.type
    if kind in _INTEGERS:
        return int, None
    if kind in _STRINGS:
        if column.charset == "binary":
            encode = _binary(binary)
            if column.logical in _LOGICAL_SIZES:
                formatter = {"uuid": format_uuid, "inet4": format_inet4, "inet6": format_inet6}
                return bytes, _pad(_LOGICAL_SIZES[column.logical], formatter[column.logical])
            if kind == STRING and column.max_length:
                return bytes, _pad(column.max_length, encode)
            return bytes, encode
        if column.logical == "json":
            return str, json_text
        return str, None
    if kind == NEWDECIMAL:
        scale = column.decimals
        return Decimal, lambda value: format_decimal(value, scale)
    if kind == FLOAT:
        return float, format_float32
    if kind == DOUBLE:
        return float, None
    if kind in (DATETIME, DATETIME2):
        return dt.datetime, _datetime(column.fsp)
    if kind in (TIMESTAMP, TIMESTAMP2):
        return dt.datetime, _timestamp(column.fsp)
    if kind in (DATE, NEWDATE):
        return dt.date, _date
    if kind == TIME2:
        return dt.timedelta, _time2(column.fsp)
    if kind == TIME:
        return dt.timedelta, _time_old
    if kind == YEAR:
        return int, _year
    if kind == ENUM:
        return (str, None) if column.enum_values else (None, _missing_metadata)
    if kind == SET:
        return (set, _set(column.set_values)) if column.set_values else (None, _missing_metadata)
    if kind == BIT:
        return str, _bit
    if kind == JSON:
        return None, _mysql_json
    if kind == GEOMETRY:
        return bytes, _binary(binary)
    return None, _unknown_type


def _other(kind: type | None, convert: Converter | None, value: Any) -> Any:
    """A value whose class is not the column's usual one: the few known variants, or refuse."""
    if kind is None and convert is not None:
        return convert(value)
    if kind is bytes and value == "" and convert is not None:
        # An empty binary value arrives as "": the library decodes it with the codec name
        # "binary", and Python decodes b"" without looking the codec up.
        return convert(b"")
    raise _Unknown(f"the library gave a {type(value).__name__}")


def _none_value(column: Column, source: str) -> Any:
    """The value of a None the library gives, by its `none_sources` reason."""
    if source == _NULL:
        return None
    kind = column.type
    if source in _ZERO_DATE_SOURCES and kind in (DATE, NEWDATE):
        return ZERO_DATE
    if source in _ZERO_DATETIME_SOURCES and kind in (DATETIME, DATETIME2):
        return zero_datetime(column.fsp)
    if source == _EMPTY_SET and kind == SET:
        if not column.set_values:
            _missing_metadata(None)
        return []
    if source == "cols bitmap":
        raise _Unknown("the row image lacks this column: set binlog_row_image=FULL")
    if source == "same with before values":
        raise _Unknown("a partial JSON update: set binlog_row_value_options=''")
    raise _Unknown(f"no rule for a None with reason {source!r}")


def _error(table: Table | None, column: Column, value: Any, reason: str) -> DecodeError:
    where = f"{table.qualified}.{column.name}" if table else column.name
    return DecodeError(
        f"cannot render {where} ({_type_name(column)}): a {type(value).__name__} value: {reason}",
        fix="capture stopped without skipping the row; report this column definition and "
        "binlog position as a bug of cdc or mysql-replication",
    )


def render_value(
    column: Column,
    value: Any,
    none_source: str | None,
    binary: str = "hex",
    *,
    table: Table | None = None,
) -> Any:
    """One column value, as pymysqlreplication gives it, as a JSON-safe, lossless value.

    Rules (the capture issue's):
    - Integers: numbers (signed/unsigned as declared). YEAR: a number (0 for YEAR 0000,
      which the library gives as 1900). BIT: a number (from the library's '0101' text).
    - DECIMAL: text with the column's scale (`"12.3400"`), never an exponent, no `-0.00`.
    - FLOAT: the shortest decimal that reads back as the same 32-bit float (`1.1`);
      DOUBLE: the float as is.
    - DATE `"2026-05-12"`; DATETIME `"2026-05-12T12:19:40.123"` with exactly the column's
      fsp digits; TIMESTAMP the same in UTC plus `Z` (stored 0 is
      `"0000-00-00T00:00:00Z"`); TIME `"-838:59:59"`, `[-]HH:MM:SS[.fff]`, the library's
      negative-with-fraction error undone (see `time2_micros`).
    - CHAR/VARCHAR/TEXT: text; ENUM: its string; SET: a list in definition order (`[]`
      for the empty set).
    - BINARY/VARBINARY/BLOB and GEOMETRY: lowercase hex (base64 with `binary="base64"`);
      BINARY(n) keeps its trailing zero bytes. GEOMETRY is MySQL's internal form: a
      4-byte little-endian SRID followed by the WKB.
    - JSON: the embedded JSON value (MySQL's binary JSON, or MariaDB's JSON text when
      `column.logical == "json"`). MariaDB UUID/INET4/INET6 (`column.logical`): their text.
    - NULL: None.

    What the library path cannot recover (the compiled decoder can): a zero or partial
    zero DATE/DATETIME (`'2026-00-00'`, `'0000-01-01'`, or an invalid date such as
    `'2026-02-31'` under ALLOW_INVALID_DATES) all arrive as the same None and are
    rendered as the zero date `"0000-00-00"` / `"0000-00-00T00:00:00[.000]"`. JSON opaque
    DATE values arrive as datetimes (shown with a midnight time) and other opaque JSON
    scalars as text decoded with errors ignored. A negative TIME in the pre-5.6 format
    (binlog type 11) and any value of a class the rules do not cover raise DecodeError,
    never a wrong value.
    """
    kind, convert = _rule(column, binary)
    try:
        if value is None:
            return None if none_source in (None, _NULL) else _none_value(column, none_source)
        if value.__class__ is kind:
            return value if convert is None else convert(value)
        return _other(kind, convert, value)
    except (_Unknown, ValueError, TypeError, ArithmeticError, AttributeError) as error:
        raise _error(table, column, value, str(error)) from error


_PLANS: dict[tuple[int, str], tuple[Table, list[_Step]]] = {}


def _plan(table: Table, binary: str) -> list[_Step]:
    entry = _PLANS.get((id(table), binary))
    if entry is not None and entry[0] is table:
        return entry[1]
    steps: list[_Step] = []
    for column in table.columns:
        kind, convert = _rule(column, binary)
        steps.append((column.name, kind, convert, column))
    if len(_PLANS) >= 4096:
        _PLANS.clear()
    # The entry keeps `table` alive, so its id cannot be reused while it is cached.
    _PLANS[(id(table), binary)] = (table, steps)
    return steps


def render_row(
    table: Table, values: dict[str, Any], none_sources: dict[str, str], binary: str = "hex"
) -> dict[str, Any]:
    """A row image from pymysqlreplication (`row["values"]` and `row["none_sources"]`, or
    the before_/after_ pair) as a new dict in column order, each value by `render_value`.
    """
    steps = _plan(table, binary)
    out: dict[str, Any] = {}
    name = ""
    value: Any = None
    try:
        for name, kind, convert, column in steps:
            value = values[name]
            if value is None:
                source = none_sources.get(name, _NULL)
                out[name] = None if source == _NULL else _none_value(column, source)
            elif value.__class__ is kind:
                out[name] = value if convert is None else convert(value)
            else:
                out[name] = _other(kind, convert, value)
    except KeyError as error:
        raise DecodeError(
            f"the row image of {table.qualified} has no column {name!r}",
            fix="the table map and the row disagree; report this binlog position",
        ) from error
    except (_Unknown, ValueError, TypeError, ArithmeticError, AttributeError) as error:
        column = next(c for c in table.columns if c.name == name)
        raise _error(table, column, value, str(error)) from error
    return out


# -- records ---------------------------------------------------------------------------------

_MISSING: Any = object()
_DEEP = frozenset({list, dict, float})


def _differs(before: Any, after: Any) -> bool:
    # Equal by ==, same class: JSON containers may still differ (1 vs true vs 1.0 inside)
    # and floats may differ in the sign of zero.
    if after.__class__ is float:
        return math.copysign(1.0, before) != math.copysign(1.0, after)
    option = orjson.OPT_SORT_KEYS
    return orjson.dumps(before, option=option) != orjson.dumps(after, option=option)


def changed_columns(before: Row, after: Row) -> list[str]:
    """Names whose values differ between two rendered images, in the after image's order."""
    changed = []
    for name, value in after.items():
        old = before.get(name, _MISSING)
        if (
            value != old
            or value.__class__ is not old.__class__
            or (value.__class__ in _DEEP and _differs(old, value))
        ):
            changed.append(name)
    return changed


def to_record(
    change: RowChange, timestamp: float, txn: str, user_column: str = "user_id"
) -> ChangeRecord:
    """The event of one row change (id assigned later by the store).

    `row_id` and `user_id` come from the after image (the before image for DELETE):
    `row_id` is the key value, a list in key order for a composite key, None without a
    key; `user_id` is the `user_column` value, None when the table has no such column.
    """
    op = change.op
    if op is Op.UPDATE:
        before, row = change.before, change.after
        if before is None or row is None:
            raise ValueError("an UPDATE needs both images")
        data: dict[str, Any] = {
            "before": before,
            "after": row,
            "changed": changed_columns(before, row),
        }
    elif op is Op.CREATE:
        row = change.after
        if row is None:
            raise ValueError("a CREATE needs the after image")
        data = {"after": row}
    else:
        row = change.before
        if row is None:
            raise ValueError("a DELETE needs the before image")
        data = {"before": row}
    table = change.table
    key = table.primary_key
    if not key:
        row_id = None
    elif len(key) == 1:
        row_id = row[key[0]]
    else:
        row_id = [row[name] for name in key]
    return ChangeRecord(
        op, table.schema, table.name, row_id, row.get(user_column), data, timestamp, txn
    )

"""MySQL values as JSON-safe, lossless values: the formatting rules shared by both row
decoders (the library path and the compiled decoder; the type table is rows/types.py).

Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import struct
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal
from typing import Any

import orjson

ZERO_DATE = "0000-00-00"
ZERO_DATETIME = "0000-00-00T00:00:00"
# Longest TIME MySQL accepts, in seconds: 838:59:59.
TIME_MAX = 838 * 3600 + 59 * 60 + 59
_F32 = struct.Struct("<f")
_U32 = struct.Struct("<I")
_F32_MIN_NORMAL = 1.1754943508222875e-38
EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_ORDINAL = EPOCH.toordinal()
# TIMESTAMP beyond 2038 (MariaDB 11.5+ stores it unsigned) is read as a signed int32.
TIMESTAMP_WRAP = dt.timedelta(seconds=1 << 32)
ZERO_FRACTION = tuple(".000000"[: 1 + fsp] for fsp in range(7))


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


def iso_datetime(value: dt.datetime, fsp: int) -> str:
    """format_datetime for a datetime object (isoformat is C: 19 or 26 characters)."""
    text = value.isoformat()
    if not fsp:
        return text[:19]
    if len(text) == 19:
        return text + ZERO_FRACTION[fsp]
    return text[: 20 + fsp]


def format_timestamp(seconds: int, micro: int, fsp: int) -> str:
    """TIMESTAMP from seconds since the epoch (as stored: UTC), with a `Z` suffix.

    `seconds == 0` is MySQL's zero timestamp `"0000-00-00T00:00:00Z"`, never 1970.
    """
    if seconds == 0:
        return zero_datetime(fsp) + "Z"
    return iso_datetime(EPOCH + dt.timedelta(seconds=seconds, microseconds=micro), fsp) + "Z"


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


class UndecodableText(dict[str, str]):
    """Text whose bytes are not valid in its column's character set (or in one Python
    has no codec for), kept exactly: `{"charset": "utf8mb4", "hex": "eda0bd"}` (the key
    is `base64` with `--binary base64`). A dict in the JSON like any other; the class
    lets the decoders notice it (to log once per column, never the value). Hashable, as
    an ENUM or SET label may be one: it is never changed after it is made."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self.items()))


def undecodable_text(data: bytes, charset: str, binary: str = "hex") -> UndecodableText:
    """The lossless form of text that cannot be decoded as `charset`."""
    return UndecodableText(charset=charset, **{str(binary): format_binary(data, binary)})


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


class UnparsedJson(str):
    """A JSON column's text that is not a JSON value cdc can re-encode (not JSON at all,
    or nested deeper than `JSON_DEPTH`), kept as the text itself."""


JSON_DEPTH = 29
"""The deepest JSON value kept as JSON: MariaDB's json_valid (the check of a JSON column,
the event table's `data` included) refuses 32 levels, and an event's `data` wraps a value
in two (`after`, the column). Deeper values are kept as their JSON text."""


def json_text(text: str | bytes) -> Any:
    """A JSON value from JSON text (MariaDB's JSON is LONGTEXT): the parsed value.

    Numbers follow orjson: integers beyond 64 bits become floats; text that is not JSON,
    a number beyond the double range, or a value nested deeper than `JSON_DEPTH` raises
    ValueError.
    """
    value = orjson.loads(text)
    if text.count("[") + text.count("{") > JSON_DEPTH and _depth(value) > JSON_DEPTH:  # type: ignore[arg-type]
        raise ValueError(f"JSON nested deeper than {JSON_DEPTH} levels")
    return value


def within_depth(value: Any) -> Any:
    """A decoded JSON value, or its JSON text (`UnparsedJson`) when nested deeper than
    `JSON_DEPTH`."""
    if isinstance(value, dict | list) and _depth(value) > JSON_DEPTH:
        return UnparsedJson(orjson.dumps(value).decode())
    return value


def _depth(value: Any) -> int:
    """How deep containers nest in a parsed JSON value (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item)
    return deepest


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
    return json_plain(value)


def json_plain(value: Any) -> Any:
    cls = value.__class__
    if cls is dict:
        return {
            (key.decode() if key.__class__ is bytes else _json_key(key)): json_plain(item)
            for key, item in value.items()
        }
    if cls is list:
        return [json_plain(item) for item in value]
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

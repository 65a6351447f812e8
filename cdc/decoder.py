"""Compiled row decoders: one generated Python function per table version.

The library's row reader interprets every column of every row through a chain of type
tests; here the column types of a table are known once, so the loop over a rows event
is written out for that table (fixed-width runs read with one `struct` call, each type
converted inline) and compiled. The values are rendered by the rules of `cdc.mapper`.
Pure: no I/O, no `pymysqlreplication`.
"""

from __future__ import annotations

import codecs
import functools
import struct
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from cdc import values
from cdc.models import Column, Row, Table
from cdc.values import (  # binlog field types
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

# Bytes of a packed decimal group of 0..9 digits.
_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
# Struct codes of little-endian unsigned integers by byte size.
_UINT_LE = {1: "B", 2: "H", 4: "I", 8: "Q"}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

Decode = Callable[[bytes, int, int], list[Row]]


class Unsupported(Exception):
    """The table has a column the compiled decoder does not handle: use the library's."""


class RowDecoder:
    """The compiled decoder of one table version.

    `decode(data, pos, end)` reads the row images of a rows event body from
    `data[pos:end]` (after the columns-present bitmaps, every column present) and returns
    them in order: one image per row for inserts and deletes, before and after
    alternating for updates. Malformed bytes raise (`ValueError` when the images do not
    fill the body exactly, `struct.error`, `IndexError` or `UnicodeDecodeError` on the
    way): the caller then hands the event to the library, never a guessed value on.
    """

    __slots__ = ("decode", "source", "table")

    def __init__(self, table: Table, decode: Decode, source: str) -> None:
        self.table = table
        self.decode = decode
        self.source = source


@functools.lru_cache(maxsize=256)
def decoder_for(table: Table, binary: str = "hex") -> RowDecoder:
    """The decoder of `table`, compiled once per table version and binary rendering.

    Raises `Unsupported` when a column type is not one the fast path knows.
    """
    source, namespace = _Generator(table, binary).source()
    code = compile(source, f"<cdc.decoder {table.qualified}>", "exec")
    exec(code, namespace)
    return RowDecoder(table, namespace["decode"], source)


# -- conversions called from generated code ----------------------------------------------

# Entries a memo keeps before it starts again: days and times of day are shared by every
# table; DECIMAL and TIME memos are one per column type (at most 128 of them).
_SHARED_LIMIT = 1 << 16
_TYPE_LIMIT = 1 << 13


class _Memo(dict[Any, Any]):
    """The results of a pure conversion by its argument, computed on a miss (bounded).

    Formatting a date or a decimal costs far more than a lookup, and the values of a
    column repeat (days, prices, times of day), so the generated code reads `memo[raw]`.
    """

    __slots__ = ("limit", "make")

    def __init__(self, make: Callable[[Any], Any], limit: int = _SHARED_LIMIT) -> None:
        super().__init__()
        self.make = make
        self.limit = limit

    def __missing__(self, key: Any) -> Any:
        if len(self) >= self.limit:
            self.clear()
        value = self[key] = self.make(key)
        return value


def _date_text(packed: int) -> str:
    """DATE's 3 bytes (little-endian): day in bits 0-4, month 5-8, year 9-23."""
    return values.format_date(packed >> 9, packed >> 5 & 15, packed & 31)


def _datetime2_day(packed: int) -> str:
    """The day of a DATETIME2: bits (year * 13 + month) << 5 | day, the sign bit above."""
    year, month = divmod(packed >> 5 & 0x1FFFF, 13)
    return values.format_date(year, month, packed & 31)


def _datetime2_time(packed: int) -> str:
    """'THH:MM:SS' of a DATETIME2: hour << 12 | minute << 6 | second."""
    return f"T{packed >> 12:02d}:{packed >> 6 & 63:02d}:{packed & 63:02d}"


def _epoch_day(days: int) -> str:
    return date.fromordinal(_EPOCH_ORDINAL + days).isoformat()


def _day_second(second: int) -> str:
    return f"T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"


_DATES = _Memo(_date_text)
_DATETIME2_DAYS = _Memo(_datetime2_day)
_DATETIME2_TIMES = _Memo(_datetime2_time)
_EPOCH_DAYS = _Memo(_epoch_day)
_DAY_SECONDS = _Memo(_day_second)


@functools.lru_cache(maxsize=64)
def _fractions(fsp: int, stored_digits: int) -> tuple[str, ...]:
    """'.ddd' for every stored fraction of `stored_digits` digits, shown with `fsp` digits."""
    return tuple(f".{n:0{stored_digits}d}"[: 1 + fsp] for n in range(10**stored_digits))


@functools.lru_cache(maxsize=128)
def _memo_of(lines: tuple[str, ...]) -> _Memo:
    """A memo of the conversion `lines` (code from raw bytes `r` to a value `v`)."""
    namespace: dict[str, Any] = {"format_time": values.format_time}
    body = "".join(f"    {line}\n" for line in lines)
    exec(f"def convert(r):\n{body}    return v\n", namespace)
    return _Memo(namespace["convert"], _TYPE_LIMIT)


def _set_members(values: tuple[str, ...]) -> Callable[[int], list[str]]:
    members = tuple((1 << i, v) for i, v in enumerate(values))

    def render(mask: int) -> list[str]:
        return [v for bit, v in members if mask & bit]

    return render


# -- MySQL binary JSON -------------------------------------------------------------------


def mysql_json(data: bytes) -> Any:
    """A MySQL JSON column's binary value (MySQL's json_binary format) as a plain value."""
    if not data:
        return None
    return _json_value(data[0], data, 1)


_J_SMALL_OBJECT, _J_LARGE_OBJECT, _J_SMALL_ARRAY, _J_LARGE_ARRAY = 0, 1, 2, 3
_J_LITERAL, _J_STRING, _J_OPAQUE = 4, 12, 15
_J_SCALARS = {5: "<h", 6: "<H", 7: "<i", 8: "<I", 9: "<q", 10: "<Q", 11: "<d"}
# Value types stored in the value entry itself rather than at an offset.
_J_INLINE_SMALL = frozenset({_J_LITERAL, 5, 6})
_J_INLINE_LARGE = frozenset({_J_LITERAL, 5, 6, 7, 8})


def _json_value(kind: int, data: bytes, pos: int) -> Any:
    if kind <= _J_LARGE_ARRAY:
        return _json_container(kind, data, pos)
    if kind in _J_SCALARS:
        return struct.unpack_from(_J_SCALARS[kind], data, pos)[0]
    if kind == _J_LITERAL:
        return _json_literal(data[pos])
    if kind == _J_STRING:
        length, pos = _json_varlen(data, pos)
        return data[pos : pos + length].decode("utf-8")
    if kind == _J_OPAQUE:
        field_type = data[pos]
        length, pos = _json_varlen(data, pos + 1)
        return _json_opaque(field_type, data[pos : pos + length])
    raise ValueError(f"unknown JSON value type {kind}")


def _json_literal(code: int) -> Any:
    if code == 0:
        return None
    if code == 1:
        return True
    if code == 2:
        return False
    raise ValueError(f"unknown JSON literal {code}")


def _json_varlen(data: bytes, pos: int) -> tuple[int, int]:
    length = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return length, pos
        shift += 7


def _json_container(kind: int, data: bytes, base: int) -> Any:
    small = kind in (_J_SMALL_OBJECT, _J_SMALL_ARRAY)
    is_object = kind in (_J_SMALL_OBJECT, _J_LARGE_OBJECT)
    off = "<H" if small else "<I"
    width = 2 if small else 4
    inline = _J_INLINE_SMALL if small else _J_INLINE_LARGE
    (count,) = struct.unpack_from(off, data, base)
    entry = base + 2 * width
    keys: list[str] = []
    if is_object:
        for _ in range(count):
            (key_offset,) = struct.unpack_from(off, data, entry)
            (key_length,) = struct.unpack_from("<H", data, entry + width)
            start = base + key_offset
            keys.append(data[start : start + key_length].decode("utf-8"))
            entry += width + 2
    values: list[Any] = []
    for _ in range(count):
        value_kind = data[entry]
        if value_kind in inline:
            values.append(_json_value(value_kind, data, entry + 1))
        else:
            (value_offset,) = struct.unpack_from(off, data, entry + 1)
            values.append(_json_value(value_kind, data, base + value_offset))
        entry += 1 + width
    if is_object:
        return dict(zip(keys, values, strict=True))
    return values


def _json_opaque(field_type: int, raw: bytes) -> Any:
    """Opaque JSON scalars: DECIMAL, dates and times as MySQL's JSON shows them."""
    if field_type == NEWDECIMAL:
        precision, scale = raw[0], raw[1]
        return values.json_value(Decimal(_decimal_text(raw[2:], precision, scale)))
    if field_type in (DATE, DATETIME, DATETIME2, TIMESTAMP, TIMESTAMP2, TIME, TIME2):
        (packed,) = struct.unpack_from("<q", raw, 0)
        return _json_packed_temporal(field_type, packed)
    # As MySQL prints other opaque scalars (a BLOB or BIT inside JSON).
    return f"base64:type{field_type}:{values.format_binary(raw, 'base64')}"


def _json_packed_temporal(field_type: int, packed: int) -> str:
    sign = "-" if packed < 0 else ""
    packed = abs(packed)
    micro = packed & 0xFFFFFF
    value = packed >> 24
    if field_type in (TIME, TIME2):
        hms = value
        return f"{sign}{hms >> 12 & 0x3FF:02d}:{hms >> 6 & 63:02d}:{hms & 63:02d}.{micro:06d}"
    ymd, hms = value >> 17, value & 0x1FFFF
    year, month = divmod(ymd >> 5, 13)
    day_text = f"{year:04d}-{month:02d}-{ymd & 31:02d}"
    if field_type == DATE:
        return day_text
    return f"{day_text} {hms >> 12:02d}:{hms >> 6 & 63:02d}:{hms & 63:02d}.{micro:06d}"


def _decimal_text(raw: bytes, precision: int, scale: int) -> str:
    """A packed binary DECIMAL as text with its scale."""
    memo = _memo_of(tuple(_decimal_lines(precision, scale)))
    return str(memo[raw[: _decimal_size(precision, scale)]])


def _decimal_size(precision: int, scale: int) -> int:
    integral, fraction = divmod(precision - scale, 9), divmod(scale, 9)
    return integral[0] * 4 + _DIG2BYTES[integral[1]] + fraction[0] * 4 + _DIG2BYTES[fraction[1]]


def _decimal_lines(precision: int, scale: int) -> list[str]:
    """Code turning the packed DECIMAL bytes `r` into its text `v`.

    The packed form is big-endian groups of nine digits (a shorter group leads the
    integral part and ends the fraction), the sign in the top bit, negatives stored as
    the complement of every byte.
    """
    int_groups, int_lead = divmod(precision - scale, 9)
    frac_groups, frac_tail = divmod(scale, 9)
    size = _decimal_size(precision, scale)
    top = 1 << (8 * size - 1)
    lines = [
        "x = int.from_bytes(r, 'big')",
        f"if x & {top:#x}:",
        f"    x ^= {top:#x}; sg = ''",
        "else:",
        f"    x ^= {(1 << 8 * size) - 1 - top:#x}; sg = '-'",
    ]
    tail_bits = _DIG2BYTES[frac_tail] * 8
    frac_bits = frac_groups * 32 + tail_bits
    if frac_bits:
        lines.append(f"fr = x & {(1 << frac_bits) - 1:#x}; x >>= {frac_bits}")
    if int_groups:
        terms = [f"(x >> {32 * int_groups}) * {10 ** (9 * int_groups)}"] if int_lead else []
        for k in range(int_groups):
            shift = 32 * (int_groups - 1 - k)
            terms.append(f"(x >> {shift} & 0xffffffff) * {10 ** (9 * (int_groups - 1 - k))}")
        lines.append(f"x = {' + '.join(terms)}")
    if scale:
        if frac_groups:
            terms = []
            for k in range(frac_groups):
                shift = 32 * (frac_groups - 1 - k) + tail_bits
                scale_up = 10 ** (9 * (frac_groups - 1 - k) + frac_tail)
                terms.append(f"(fr >> {shift} & 0xffffffff) * {scale_up}")
            if tail_bits:
                terms.append(f"(fr & {(1 << tail_bits) - 1:#x})")
            lines.append(f"fr = {' + '.join(terms)}")
        lines.append("if sg and not x and not fr: sg = ''")  # MySQL never shows -0.00
        lines.append(f"v = f'{{sg}}{{x}}.{{fr:0{scale}d}}'")
    else:
        lines.append("if sg and not x: sg = ''")
        lines.append("v = f'{sg}{x}'")
    return lines


# -- code generation ---------------------------------------------------------------------

# Turns the raw values a column's struct codes give (names) into code assigning its value.
Lines = Callable[[list[str], str], list[str]]


class _Fixed:
    """A fixed-width column: its struct codes (little-endian) and its conversion.

    Without `lines` the unpacked value is the column's value as it is (integers, DOUBLE).
    """

    __slots__ = ("codes", "count", "lines", "size")

    def __init__(self, codes: str, lines: Lines | None = None) -> None:
        self.codes = codes
        self.size = struct.calcsize("<" + codes)
        self.count = len(struct.unpack("<" + codes, bytes(self.size)))
        self.lines = lines

    def code(self, index: int) -> tuple[list[str], list[str]]:
        """The names to unpack into, and the code turning them into `v{index}`."""
        if self.lines is None:
            return [f"v{index}"], []
        names = [f"r{index}_{k}" for k in range(self.count)]
        return names, self.lines(names, f"v{index}")


class _Variable:
    """A variable-width column: code that reads at `pos` into a target and moves `pos`."""

    __slots__ = ("lines",)

    def __init__(self, lines: Callable[[str], list[str]]) -> None:
        self.lines = lines


_Field = _Fixed | _Variable


class _Generator:
    def __init__(self, table: Table, binary: str) -> None:
        if binary not in ("hex", "base64"):
            raise ValueError(f"unknown binary encoding {binary!r}: use 'hex' or 'base64'")
        self.table = table
        self.binary = binary
        self.namespace: dict[str, Any] = {"__builtins__": __builtins__}
        self.fields = [self._field(col) for col in table.columns]

    def name(self, base: str, value: Any) -> str:
        """Put a constant or helper into the generated module's namespace."""
        for key, known in self.namespace.items():
            if known is value:
                return key
        key = f"_{base}{len(self.namespace)}"
        self.namespace[key] = value
        return key

    # -- the function --------------------------------------------------------------------

    def source(self) -> tuple[str, dict[str, Any]]:
        nbytes = (len(self.fields) + 7) // 8
        keys = ", ".join(f"{col.name!r}: v{i}" for i, col in enumerate(self.table.columns))
        if nbytes <= 4:
            nulls = " | ".join(
                f"data[pos + {k}] << {8 * k}" if k else "data[pos]" for k in range(nbytes)
            )
        else:
            nulls = f"int.from_bytes(data[pos:pos + {nbytes}], 'little')"
        if len(self.fields) % 8:
            # The bits past the last column are not always zero (MariaDB sets them).
            nulls = f"({nulls}) & {(1 << len(self.fields)) - 1:#x}"
        out = [
            "def decode(data, pos, end):",
            "    rows = []",
            "    append = rows.append",
            "    while pos < end:",
            f"        nulls = {nulls}",
            f"        pos += {nbytes}",
            "        if not nulls:",
            *("            " + line for line in self._dense()),
            "        else:",
            *("            " + line for line in self._sparse()),
            f"        append({{{keys}}})",
            "    if pos != end:",
            "        raise ValueError(f'the row images end at {pos}, the event at {end}')",
            "    return rows",
        ]
        return "\n".join(out) + "\n", self.namespace

    def _dense(self) -> list[str]:
        """No column is NULL: each run of fixed-width columns is one unpack."""
        lines: list[str] = []
        run: list[tuple[int, _Fixed]] = []

        def flush() -> None:
            if not run:
                return
            codes = "<" + "".join(f.codes for _, f in run)
            unpack = self.name("run", struct.Struct(codes).unpack_from)
            names: list[str] = []
            body: list[str] = []
            for index, field in run:
                column_names, column_body = field.code(index)
                names += column_names
                body += column_body
            lines.append(f"{', '.join(names)}, = {unpack}(data, pos)")
            lines.append(f"pos += {sum(f.size for _, f in run)}")
            lines.extend(body)
            run.clear()

        for index, field in enumerate(self.fields):
            if isinstance(field, _Fixed):
                run.append((index, field))
            else:
                flush()
                lines.extend(field.lines(f"v{index}"))
        flush()
        return lines or ["pass"]

    def _sparse(self) -> list[str]:
        """Some column is NULL: test each column's bit (it has no bytes when set)."""
        lines: list[str] = []
        for index, field in enumerate(self.fields):
            lines += [f"if nulls & {1 << index:#x}:", f"    v{index} = None", "else:"]
            if isinstance(field, _Fixed):
                unpack = self.name("one", struct.Struct("<" + field.codes).unpack_from)
                names, body = field.code(index)
                lines.append(f"    {', '.join(names)}, = {unpack}(data, pos)")
                lines.append(f"    pos += {field.size}")
            else:
                body = field.lines(f"v{index}")
            lines.extend("    " + line for line in body)
        return lines

    # -- one column ----------------------------------------------------------------------

    def _field(self, col: Column) -> _Field:
        kind = col.type
        if kind in _INTEGER_CODES:
            code = _INTEGER_CODES[kind]
            return _Fixed(code.upper() if col.unsigned else code)
        if kind == INT24:
            return _Fixed(
                "HB" if col.unsigned else "Hb", lambda r, t: [f"{t} = {r[0]} | {r[1]} << 16"]
            )
        if kind == FLOAT:
            fmt = self.name("float32_", values.format_float32)
            return _Fixed("f", lambda r, t: [f"{t} = {fmt}({r[0]})"])
        if kind == DOUBLE:
            return _Fixed("d")
        if kind == YEAR:
            return _Fixed("B", lambda r, t: [f"{t} = {r[0]} + 1900 if {r[0]} else 0"])
        if kind == NEWDECIMAL:
            return self._decimal(col)
        if kind == DATE:
            dates = self.name("dates", _DATES)
            return _Fixed("HB", lambda r, t: [f"{t} = {dates}[{r[0]} | {r[1]} << 16]"])
        if kind == DATETIME2:
            return self._datetime2(col)
        if kind == TIMESTAMP2:
            return self._timestamp2(col)
        if kind == TIME2:
            return self._time2(col)
        if kind == DATETIME:
            return _Fixed("Q", _datetime_lines)
        if kind == TIMESTAMP:
            return self._timestamp(0, 0, big_endian=False)
        if kind == TIME:
            return _Fixed("Hb", _time_lines)
        if kind == BIT:
            nbytes = (col.bits + 7) // 8
            if not 1 <= nbytes <= 8:
                raise Unsupported(f"BIT({col.bits})")
            if nbytes == 1:
                return _Fixed("B")
            return _Fixed(f"{nbytes}s", lambda r, t: [f"{t} = int.from_bytes({r[0]}, 'big')"])
        if kind == ENUM:
            if col.size not in (1, 2) or not col.enum_values:
                raise Unsupported(f"ENUM of {col.size} bytes without its values")
            names = self.name("enum", ("", *col.enum_values))
            return _Fixed(_UINT_LE[col.size], lambda r, t: [f"{t} = {names}[{r[0]}]"])
        if kind == SET:
            if not 1 <= col.size <= 8 or not col.set_values:
                raise Unsupported(f"SET of {col.size} bytes without its values")
            members = self.name("set", _set_members(col.set_values))
            if col.size in _UINT_LE:
                return _Fixed(_UINT_LE[col.size], lambda r, t: [f"{t} = {members}({r[0]})"])
            return _Fixed(
                f"{col.size}s",
                lambda r, t: [f"{t} = {members}(int.from_bytes({r[0]}, 'little'))"],
            )
        if kind in (VARCHAR, STRING):
            prefix = 1 if col.max_length <= 255 else 2
            return self._bytes(col, prefix, pad=col.max_length if kind == STRING else 0)
        if kind in (BLOB, GEOMETRY, JSON) and not 1 <= col.length_size <= 4:
            raise Unsupported(f"a {col.length_size}-byte length of column {col.name!r}")
        if kind == BLOB:
            return self._bytes(col, col.length_size, pad=0)
        if kind == GEOMETRY:
            return self._bytes(col, col.length_size, pad=0, binary=True)
        if kind == JSON:
            parse = self.name("json", mysql_json)
            read = _length_lines(col.length_size)
            return _Variable(lambda t: [*read, f"{t} = {parse}(data[b:pos])"])
        raise Unsupported(f"column {col.name!r} has binlog type {kind}")

    def _bytes(self, col: Column, prefix: int, pad: int, binary: bool = False) -> _Variable:
        """CHAR, VARCHAR, BINARY, VARBINARY, TEXT, BLOB: a length prefix, then the bytes.

        BINARY(n) comes without its trailing zero bytes (as CHAR without its trailing
        spaces, which MySQL does not show either): `pad` puts them back.
        """
        read = _length_lines(prefix)
        value = "data[b:pos]"
        if col.charset == "binary" or binary:
            if col.logical in _LOGICAL:
                fmt = self.name(col.logical, _LOGICAL[col.logical])
                width = pad or _LOGICAL_SIZES[col.logical]
                return _Variable(lambda t: [*read, f"{t} = {fmt}({value}.ljust({width}, b'\\0'))"])
            if self.binary == "hex":
                text = f"{value}.hex().ljust({2 * pad}, '0')" if pad else f"{value}.hex()"
                return _Variable(lambda t: [*read, f"{t} = {text}"])
            b64 = self.name("b64", _base64)
            padded = f"{value}.ljust({pad}, b'\\0')" if pad else value
            return _Variable(lambda t: [*read, f"{t} = {b64}({padded})"])
        codec, errors = _codec(col)
        text = f"{value}.decode({codec!r}, {errors!r})" if errors else f"{value}.decode({codec!r})"
        if col.logical == "json":
            parse = self.name("json_text", values.json_text)
            return _Variable(lambda t: [*read, f"{t} = {parse}({text})"])
        return _Variable(lambda t: [*read, f"{t} = {text}"])

    def _decimal(self, col: Column) -> _Fixed:
        if not 0 < col.precision <= 65 or not 0 <= col.decimals <= min(col.precision, 38):
            raise Unsupported(f"DECIMAL({col.precision},{col.decimals})")
        size = _decimal_size(col.precision, col.decimals)
        memo = self.name("decimal", _memo_of(tuple(_decimal_lines(col.precision, col.decimals))))
        return _Fixed(f"{size}s", lambda r, t: [f"{t} = {memo}[{r[0]}]"])

    def _datetime2(self, col: Column) -> _Fixed:
        """DATETIME2: 5 bytes big-endian (sign, year * 13 + month, day, hour, minute,
        second), then the fraction in (fsp + 1) // 2 bytes big-endian."""
        fsp, frac_bytes = _fsp(col)
        days = self.name("dt_days", _DATETIME2_DAYS)
        times = self.name("dt_times", _DATETIME2_TIMES)
        bits = 8 * frac_bytes
        fraction = self._fraction(fsp, frac_bytes, f"x & {(1 << bits) - 1:#x}") if bits else ""

        def lines(r: list[str], t: str) -> list[str]:
            return [
                f"x = int.from_bytes({r[0]}, 'big')",
                f"{t} = {days}[x >> {17 + bits}] + {times}[x >> {bits} & 0x1ffff]{fraction}",
            ]

        return _Fixed(f"{5 + frac_bytes}s", lines)

    def _timestamp2(self, col: Column) -> _Fixed:
        """TIMESTAMP2: seconds since the epoch in 4 bytes big-endian, then the fraction."""
        fsp, frac_bytes = _fsp(col)
        return self._timestamp(fsp, frac_bytes, big_endian=True)

    def _timestamp(self, fsp: int, frac_bytes: int, big_endian: bool) -> _Fixed:
        """TIMESTAMP in UTC with a Z; the old TIMESTAMP is 4 bytes little-endian."""
        days = self.name("epoch_days", _EPOCH_DAYS)
        seconds = self.name("day_seconds", _DAY_SECONDS)
        zero = values.zero_datetime(fsp) + "Z"
        bits = 8 * frac_bytes
        fraction = self._fraction(fsp, frac_bytes, f"x & {(1 << bits) - 1:#x}") if bits else ""
        codes = f"{4 + frac_bytes}s" if big_endian else "I"

        def lines(r: list[str], t: str) -> list[str]:
            out = [f"x = int.from_bytes({r[0]}, 'big')" if big_endian else f"x = {r[0]}"]
            out.append(f"s = x >> {bits}" if bits else "s = x")
            text = f"{days}[s // 86400] + {seconds}[s % 86400]{fraction} + 'Z'"
            out.append(f"{t} = {text} if s else {zero!r}")
            return out

        return _Fixed(codes, lines)

    def _time2(self, col: Column) -> _Fixed:
        fsp, frac_bytes = _fsp(col)
        memo = self.name("time", _memo_of(tuple(_time2_lines(fsp, frac_bytes))))
        return _Fixed(f"{3 + frac_bytes}s", lambda r, t: [f"{t} = {memo}[{r[0]}]"])

    def _fraction(self, fsp: int, frac_bytes: int, stored: str) -> str:
        """Code appending '.ddd' (fsp digits) for the stored fraction `stored`."""
        if not fsp:
            return ""
        if frac_bytes <= 2:
            table = self.name("fractions", _fractions(fsp, 2 * frac_bytes))
            return f" + {table}[{stored}]"
        drop = 6 - fsp
        value = f"({stored}) // {10**drop}" if drop else f"({stored})"
        return f" + f'.{{{value}:0{fsp}d}}'"


_INTEGER_CODES = {TINY: "b", SHORT: "h", LONG: "i", LONGLONG: "q"}
_LOGICAL: dict[str, Callable[[bytes], str]] = {
    "uuid": values.format_uuid,
    "inet4": values.format_inet4,
    "inet6": values.format_inet6,
}
_LOGICAL_SIZES = {"uuid": 16, "inet4": 4, "inet6": 16}


def _base64(value: bytes) -> str:
    return values.format_binary(value, "base64")


def _datetime_lines(r: list[str], t: str) -> list[str]:
    """The pre-5.6 DATETIME: the digits YYYYMMDDhhmmss as one integer."""
    return [
        f"d, x = divmod({r[0]}, 1000000)",
        f"{t} = f'{{d // 10000:04d}}-{{d // 100 % 100:02d}}-{{d % 100:02d}}"
        "T{x // 10000:02d}:{x // 100 % 100:02d}:{x % 100:02d}'",
    ]


def _time_lines(r: list[str], t: str) -> list[str]:
    """The pre-5.6 TIME: the digits hhmmss as one signed 3-byte integer."""
    return [
        f"x = {r[0]} | {r[1]} << 16",
        "sg = '-' if x < 0 else ''; x = abs(x)",
        f"{t} = f'{{sg}}{{x // 10000:02d}}:{{x // 100 % 100:02d}}:{{x % 100:02d}}'",
    ]


def _time2_lines(fsp: int, frac_bytes: int) -> list[str]:
    """Code from a TIME2's raw bytes `r` to its text `v`.

    3 bytes big-endian, offset by 0x800000: hour << 12 | minute << 6 | second, then the
    fraction. A negative value is stored as the offset two's complement of the whole
    (integer and fraction together), so the fraction is taken back before the split
    (MySQL's my_time_packed_from_binary).
    """
    lines = ["x = int.from_bytes(r, 'big')"]
    if frac_bytes == 3:
        lines.append("x -= 0x800000000000")
    elif frac_bytes:
        bits = 8 * frac_bytes
        lines += [
            f"fr = x & {(1 << bits) - 1:#x}; x = (x >> {bits}) - 0x800000",
            "if x < 0 and fr:",
            f"    x += 1; fr -= {1 << bits:#x}",
            f"x = (x << 24) + fr * {10 ** (6 - 2 * frac_bytes)}",
        ]
    else:
        lines.append("x = (x - 0x800000) << 24")
    lines += [
        "sg = x < 0",
        "if sg: x = -x",
        "h = x >> 24",
        f"v = format_time(sg, h >> 12 & 0x3ff, h >> 6 & 63, h & 63, x & 0xffffff, {fsp})",
    ]
    return lines


def _fsp(col: Column) -> tuple[int, int]:
    if not 0 <= col.fsp <= 6:
        raise Unsupported(f"fractional seconds precision {col.fsp}")
    return col.fsp, (col.fsp + 1) // 2


# MySQL character sets whose Python codec of the same name decodes differently.
_CODECS = {
    "utf8": "utf-8",
    "utf8mb3": "utf-8",
    "utf8mb4": "utf-8",
    "cp1252": "cp1252",  # MySQL's latin1 is cp1252 plus the five C1 controls it leaves undefined
    "latin1": "cp1252",
    "utf16": "utf-16-be",
    "ucs2": "utf-16-be",
    "utf16le": "utf-16-le",
    "utf32": "utf-32-be",
}
_LATIN1_ERRORS = "cdc-latin1"


def _latin1_controls(error: UnicodeError) -> tuple[str, int]:
    """cp1252's five undefined bytes are, in MySQL's latin1, the C1 controls of that code."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    byte = error.object[error.start]
    if byte not in (0x81, 0x8D, 0x8F, 0x90, 0x9D):
        raise error
    return chr(byte), error.start + 1


codecs.register_error(_LATIN1_ERRORS, _latin1_controls)


def _codec(col: Column) -> tuple[str, str | None]:
    """The Python codec (and error handler) decoding a text column's bytes as MySQL does."""
    if col.charset is None:
        raise Unsupported(f"column {col.name!r} has no character set (binlog_row_metadata)")
    codec = _CODECS.get(col.charset, col.charset)
    try:
        codecs.lookup(codec)
    except LookupError:
        raise Unsupported(f"character set {col.charset!r} of column {col.name!r}") from None
    return codec, _LATIN1_ERRORS if codec == "cp1252" else None


def _length_lines(size: int) -> list[str]:
    """Code reading a little-endian length of `size` bytes at `pos`: data[b:pos] is the value."""
    if size == 1:
        return ["b = pos + 1; pos = b + data[pos]"]
    if size == 2:
        return ["b = pos + 2; pos = b + (data[pos] | data[pos + 1] << 8)"]
    return [f"b = pos + {size}; pos = b + int.from_bytes(data[pos:b], 'little')"]

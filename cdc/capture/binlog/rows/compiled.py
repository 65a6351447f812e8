"""Compiled row decoders: one generated Python function per table version.

The library's row reader interprets every column of every row through a chain of type
tests; here the column types of a table are known once, so the loop over a rows event
is written out for that table (fixed-width runs read with one `struct` call, each type
converted inline) and compiled. The values are rendered by the rules of `cdc.values`,
as on the library path.
Pure: no I/O, no `pymysqlreplication`.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from typing import Any

from cdc import values
from cdc.capture import charsets
from cdc.capture.binlog.rows import conversions
from cdc.capture.binlog.rows.binary_json import mysql_json
from cdc.capture.binlog.rows.types import (
    LOGICAL,
    STRING,
    VARCHAR,
    Family,
    require_every_family,
    type_of,
)
from cdc.models import Column, Row, Table

# Struct codes of little-endian unsigned integers by byte size.
_UINT_LE = {1: "B", 2: "H", 4: "I", 8: "Q"}

Decode = Callable[[bytes, int, int], list[Row]]


class Unsupported(Exception):
    """The table has a column the compiled decoder does not handle: use the library's."""


class RowDecoder:
    """The compiled decoder of one table version.

    `decode(data, pos, end)` reads the row images of a rows event body from
    `data[pos:end]` (after the columns-present bitmaps, every column present) and returns
    them in order: one image per row for inserts and deletes, before and after
    alternating for updates. Malformed bytes raise (`ValueError` when the images do not
    fill the body exactly, `struct.error` or `IndexError` on the way): the caller then
    hands the event to the library, never a guessed value on. Text not valid in its
    character set is kept exactly (`values.UndecodableText`), and (column, class) added
    to `noticed`, which the caller reads (to log) and clears.
    """

    __slots__ = ("decode", "noticed", "source", "table")

    def __init__(
        self, table: Table, decode: Decode, source: str, noticed: list[tuple[str, type]]
    ) -> None:
        self.table = table
        self.decode = decode
        self.source = source
        self.noticed = noticed


@functools.lru_cache(maxsize=256)
def decoder_for(table: Table, binary: str = "hex") -> RowDecoder:
    """The decoder of `table`, compiled once per table version and binary rendering.

    Raises `Unsupported` when a column type is not one the fast path knows.
    """
    generator = _Generator(table, binary)
    source, namespace = generator.source()
    code = compile(source, f"<cdc.decoder {table.qualified}>", "exec")
    exec(code, namespace)
    return RowDecoder(table, namespace["decode"], source, generator.noticed)


def _noticing(
    decode: charsets.Decode, column: str, noticed: list[tuple[str, type]]
) -> charsets.Decode:
    """`decode`, adding (`column`, the value's class) to `noticed` for a value to log."""

    def slow(raw: bytes) -> Any:
        value = decode(raw)
        if value.__class__ in charsets.NOTICED:
            noticed.append((column, value.__class__))
        return value

    return slow


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
        self.noticed: list[tuple[str, type]] = []  # (column, class) of values to log
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
        """How the column is read, by its type's family (see `types.TYPES`)."""
        family = type_of(col.type).family
        return getattr(self, _FIELDS[family])(col)  # type: ignore[no-any-return]

    def _integer(self, col: Column) -> _Fixed:
        code = type_of(col.type).struct
        return _Fixed(code.upper() if col.unsigned else code)

    def _int24(self, col: Column) -> _Fixed:
        return _Fixed("HB" if col.unsigned else "Hb", lambda r, t: [f"{t} = {r[0]} | {r[1]} << 16"])

    def _float(self, col: Column) -> _Fixed:
        fmt = self.name("float32_", values.format_float32)
        return _Fixed("f", lambda r, t: [f"{t} = {fmt}({r[0]})"])

    def _double(self, col: Column) -> _Fixed:
        return _Fixed("d")

    def _year(self, col: Column) -> _Fixed:
        return _Fixed("B", lambda r, t: [f"{t} = {r[0]} + 1900 if {r[0]} else 0"])

    def _date(self, col: Column) -> _Fixed:
        dates = self.name("dates", conversions.DATES)
        return _Fixed("HB", lambda r, t: [f"{t} = {dates}[{r[0]} | {r[1]} << 16]"])

    def _datetime(self, col: Column) -> _Fixed:
        return _Fixed("Q", conversions.datetime_lines)

    def _old_timestamp(self, col: Column) -> _Fixed:
        return self._timestamp(0, 0, big_endian=False)

    def _old_time(self, col: Column) -> _Fixed:
        return _Fixed("Hb", conversions.time_lines)

    def _bit(self, col: Column) -> _Fixed:
        nbytes = (col.bits + 7) // 8
        if not 1 <= nbytes <= 8:
            raise Unsupported(f"BIT({col.bits})")
        if nbytes == 1:
            return _Fixed("B")
        return _Fixed(f"{nbytes}s", lambda r, t: [f"{t} = int.from_bytes({r[0]}, 'big')"])

    def _enum(self, col: Column) -> _Fixed:
        if col.size not in (1, 2) or not col.enum_values:
            raise Unsupported(f"ENUM of {col.size} bytes without its values")
        names = self.name("enum", ("", *col.enum_values))
        return _Fixed(_UINT_LE[col.size], lambda r, t: [f"{t} = {names}[{r[0]}]"])

    def _set(self, col: Column) -> _Fixed:
        if not 1 <= col.size <= 8 or not col.set_values:
            raise Unsupported(f"SET of {col.size} bytes without its values")
        members = self.name("set", conversions.set_members(col.set_values))
        if col.size in _UINT_LE:
            return _Fixed(_UINT_LE[col.size], lambda r, t: [f"{t} = {members}({r[0]})"])
        return _Fixed(
            f"{col.size}s", lambda r, t: [f"{t} = {members}(int.from_bytes({r[0]}, 'little'))"]
        )

    def _string(self, col: Column) -> _Variable:
        if col.type not in (VARCHAR, STRING):  # VAR_STRING is not in a binlog's table map
            raise Unsupported(f"column {col.name!r} has binlog type {col.type}")
        prefix = 1 if col.max_length <= 255 else 2
        return self._bytes(col, prefix, pad=col.max_length if col.type == STRING else 0)

    def _length_size(self, col: Column) -> int:
        if not 1 <= col.length_size <= 4:
            raise Unsupported(f"a {col.length_size}-byte length of column {col.name!r}")
        return col.length_size

    def _blob(self, col: Column) -> _Variable:
        return self._bytes(col, self._length_size(col), pad=0)

    def _geometry(self, col: Column) -> _Variable:
        return self._bytes(col, self._length_size(col), pad=0, binary=True)

    def _json(self, col: Column) -> _Variable:
        parse = self.name("json", _noticing(mysql_json, col.name, self.noticed))
        read = _length_lines(self._length_size(col))
        return _Variable(lambda t: [*read, f"{t} = {parse}(data[b:pos])"])

    def _unsupported(self, col: Column) -> _Field:
        raise Unsupported(f"column {col.name!r} has binlog type {col.type}")

    def _bytes(self, col: Column, prefix: int, pad: int, binary: bool = False) -> _Variable:
        """CHAR, VARCHAR, BINARY, VARBINARY, TEXT, BLOB: a length prefix, then the bytes.

        BINARY(n) comes without its trailing zero bytes (as CHAR without its trailing
        spaces, which MySQL does not show either): `pad` puts them back.
        """
        read = _length_lines(prefix)
        value = "data[b:pos]"
        if col.charset == "binary" or binary:
            logical = LOGICAL.get(col.logical or "")
            if logical is not None:
                fmt = self.name(col.logical or "", logical.format)
                width = pad or logical.size
                return _Variable(lambda t: [*read, f"{t} = {fmt}({value}.ljust({width}, b'\\0'))"])
            if self.binary == "hex":
                text = f"{value}.hex().ljust({2 * pad}, '0')" if pad else f"{value}.hex()"
                return _Variable(lambda t: [*read, f"{t} = {text}"])
            b64 = self.name("b64", conversions.base64)
            padded = f"{value}.ljust({pad}, b'\\0')" if pad else value
            return _Variable(lambda t: [*read, f"{t} = {b64}({padded})"])
        if col.charset is None:
            raise Unsupported(f"column {col.name!r} has no character set (binlog_row_metadata)")
        if col.logical == "json":
            slow = charsets.json_column_decoder(col.charset, self.binary, col.charset_name)
        else:
            slow = charsets.text_decoder(col.charset, self.binary, col.charset_name)
        fallback = self.name("text", _noticing(slow, col.name, self.noticed))
        try:
            codec, errors = charsets.codec(col.charset)
        except LookupError:  # no Python codec: always the bytes (see text_decoder)
            return _Variable(lambda t: [*read, f"{t} = {fallback}({value})"])
        text = f"{value}.decode({codec!r}, {errors!r})" if errors else f"{value}.decode({codec!r})"
        if col.logical == "json":
            parse = self.name("json_text", values.json_text)
            text = f"{parse}({text})"
        # The fast line for valid text; anything else (bytes not valid in the character
        # set, JSON that cannot be re-encoded) is rendered by the shared slow path.
        return _Variable(
            lambda t: [
                *read,
                "try:",
                f"    {t} = {text}",
                "except ValueError:",  # UnicodeDecodeError and orjson's error are ValueErrors
                f"    {t} = {fallback}({value})",
            ]
        )

    def _decimal(self, col: Column) -> _Fixed:
        if not 0 < col.precision <= 65 or not 0 <= col.decimals <= min(col.precision, 38):
            raise Unsupported(f"DECIMAL({col.precision},{col.decimals})")
        size = conversions.decimal_size(col.precision, col.decimals)
        memo = self.name(
            "decimal",
            conversions.memo_of(tuple(conversions.decimal_lines(col.precision, col.decimals))),
        )
        return _Fixed(f"{size}s", lambda r, t: [f"{t} = {memo}[{r[0]}]"])

    def _datetime2(self, col: Column) -> _Fixed:
        """DATETIME2: 5 bytes big-endian (sign, year * 13 + month, day, hour, minute,
        second), then the fraction in (fsp + 1) // 2 bytes big-endian."""
        fsp, frac_bytes = _fsp(col)
        days = self.name("dt_days", conversions.DATETIME2_DAYS)
        times = self.name("dt_times", conversions.DATETIME2_TIMES)
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
        days = self.name("epoch_days", conversions.EPOCH_DAYS)
        seconds = self.name("day_seconds", conversions.DAY_SECONDS)
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
        memo = self.name(
            "time", conversions.memo_of(tuple(conversions.time2_lines(fsp, frac_bytes)))
        )
        return _Fixed(f"{3 + frac_bytes}s", lambda r, t: [f"{t} = {memo}[{r[0]}]"])

    def _fraction(self, fsp: int, frac_bytes: int, stored: str) -> str:
        """Code appending '.ddd' (fsp digits) for the stored fraction `stored`."""
        if not fsp:
            return ""
        if frac_bytes <= 2:
            table = self.name("fractions", conversions.fractions(fsp, 2 * frac_bytes))
            return f" + {table}[{stored}]"
        drop = 6 - fsp
        value = f"({stored}) // {10**drop}" if drop else f"({stored})"
        return f" + f'.{{{value}:0{fsp}d}}'"


# The generator's method reading each family.
_FIELDS: dict[Family, str] = {
    Family.INTEGER: "_integer",
    Family.INT24: "_int24",
    Family.FLOAT: "_float",
    Family.DOUBLE: "_double",
    Family.DECIMAL: "_decimal",
    Family.YEAR: "_year",
    Family.DATE: "_date",
    Family.TIME: "_old_time",
    Family.TIME2: "_time2",
    Family.DATETIME: "_datetime",
    Family.DATETIME2: "_datetime2",
    Family.TIMESTAMP: "_old_timestamp",
    Family.TIMESTAMP2: "_timestamp2",
    Family.BIT: "_bit",
    Family.ENUM: "_enum",
    Family.SET: "_set",
    Family.STRING: "_string",
    Family.BLOB: "_blob",
    Family.JSON: "_json",
    Family.GEOMETRY: "_geometry",
    Family.UNSUPPORTED: "_unsupported",
}
require_every_family(_FIELDS, "compiled decoder")


def _fsp(col: Column) -> tuple[int, int]:
    if not 0 <= col.fsp <= 6:
        raise Unsupported(f"fractional seconds precision {col.fsp}")
    return col.fsp, (col.fsp + 1) // 2


def _length_lines(size: int) -> list[str]:
    """Code reading a little-endian length of `size` bytes at `pos`: data[b:pos] is the value."""
    if size == 1:
        return ["b = pos + 1; pos = b + data[pos]"]
    if size == 2:
        return ["b = pos + 2; pos = b + (data[pos] | data[pos + 1] << 8)"]
    return [f"b = pos + {size}; pos = b + int.from_bytes(data[pos:b], 'little')"]

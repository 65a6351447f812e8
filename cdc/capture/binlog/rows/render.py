"""The library path: row images as pymysqlreplication decodes them, to JSON-safe values.

One rule per type family (`types.Family`), correcting the library's known faults; the
value formats themselves are in `cdc.values`. Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from cdc.capture.binlog.rows import compiled
from cdc.capture.binlog.rows.types import (
    LOGICAL,
    STRING,
    VAR_STRING,
    VARCHAR,
    Family,
    require_every_family,
    type_of,
)
from cdc.capture.charsets import json_column_decoder, text_decoder
from cdc.errors import DecodeError
from cdc.models import Column, Table
from cdc.values import (
    ZERO_DATE,
    format_decimal,
    format_float32,
    json_plain,
    within_depth,
    zero_datetime,
)

# pymysqlreplication's `none_sources` values (constants/NONE_SOURCE.py).
_NULL = "null"
_ZERO_DATE_SOURCES = frozenset({"out of date range"})
_ZERO_DATETIME_SOURCES = frozenset({"out of datetime range", "out of datetime2 range"})
_EMPTY_SET = "empty set"

# -- per-column rules for the library path -------------------------------------------------


class _Unknown(Exception):
    """A value the rules do not cover; turned into DecodeError with the column's name."""


Converter = Callable[[Any], Any]
# (column name, the exact Python class the library gives or None to always convert,
#  converter or None to keep the value, column)
_Step = tuple[str, type | None, Converter | None, Column]


def _type_name(column: Column) -> str:
    kind = type_of(column.type)
    name = kind.name
    if column.logical:
        return f"{column.logical.upper()} ({name})"
    if column.charset == "binary" and kind.family in (Family.STRING, Family.BLOB):
        return {STRING: "BINARY", VARCHAR: "VARBINARY", VAR_STRING: "VARBINARY"}.get(
            column.type, "BLOB"
        )
    return name


def _year(value: int) -> int:
    # The library adds 1900 to the stored byte: YEAR 0000 (byte 0) arrives as 1900,
    # which is not a valid YEAR (1901..2155).
    return 0 if value == 1900 else value


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


def _labels(labels: tuple[Any, ...]) -> Converter:
    """ENUM: the library gives the label's index (see library.for_library_decoding)."""
    shown = ("", *labels)  # index 0: the empty string MySQL stores for an invalid value

    def convert(index: int) -> Any:
        if not 0 <= index < len(shown):
            raise _Unknown(f"ENUM index {index} is beyond the {len(labels)} labels")
        return shown[index]

    return convert


def _members(labels: tuple[Any, ...]) -> Converter:
    """SET: the library gives the members' indexes; shown in definition order."""

    def convert(indexes: set[int]) -> list[Any]:
        if max(indexes) >= len(labels):
            raise _Unknown(f"SET member {max(indexes)} is beyond the {len(labels)} labels")
        return [labels[i] for i in sorted(indexes)]

    return convert


def _raw(column: Column, binary: str, to_bytes: Callable[[Any], bytes]) -> Converter:
    """A fixed-width value the library gives as its raw integer or bits (see
    library.for_library_decoding), rendered by the compiled decoder's own conversion:
    the two paths show invalid and partial dates (`2026-02-31`, `2015-00-21`) alike."""
    decode = compiled.decoder_for(Table("", "", (column,)), binary).decode
    name = column.name

    def convert(value: Any) -> Any:
        raw = b"\0" + to_bytes(value)  # no NULL bit set
        return decode(raw, 0, len(raw))[0][name]

    return convert


def _missing_metadata(value: Any) -> Any:
    raise _Unknown(
        "the binlog carries no ENUM/SET values for this column: set binlog_row_metadata=FULL"
    )


def _mysql_json(value: Any) -> Any:
    # MySQL's binary JSON, decoded by the library; a top-level str is an opaque scalar.
    return within_depth(json_plain(value))


def _unknown_type(value: Any) -> Any:
    raise _Unknown("no rule for this binlog column type")


Rule = tuple[type | None, Converter | None]
"""The exact class the library gives (None: always convert), and the converter (None:
the value is right as it comes)."""


def _text_or_binary(column: Column, binary: str) -> Rule:
    """Text arrives as its bytes (see library.for_library_decoding), decoded as on the
    compiled path."""
    if column.charset == "binary":
        encode = _binary(binary)
        logical = LOGICAL.get(column.logical or "")
        if logical is not None:
            return bytes, _pad(logical.size, logical.format)
        if column.type == STRING and column.max_length:
            return bytes, _pad(column.max_length, encode)
        return bytes, encode
    if not column.charset:
        return None, _missing_charset
    if column.logical == "json":
        return bytes, json_column_decoder(column.charset, binary, column.charset_name)
    return bytes, text_decoder(column.charset, binary, column.charset_name)


def _missing_charset(value: Any) -> Any:
    raise _Unknown(
        "the binlog carries no character set for this column: set binlog_row_metadata=FULL"
    )


def _decimal(column: Column, binary: str) -> Rule:
    scale = column.decimals
    return Decimal, lambda value: format_decimal(value, scale)


def _enum(column: Column, binary: str) -> Rule:
    return (int, _labels(column.enum_values)) if column.enum_values else (None, _missing_metadata)


def _set_rule(column: Column, binary: str) -> Rule:
    return (set, _members(column.set_values)) if column.set_values else (None, _missing_metadata)


def _bits(size: int) -> Callable[[str], bytes]:
    return lambda bits: int(bits, 2).to_bytes(size, "big")


_RULES: dict[Family, Callable[[Column, str], Rule]] = {
    Family.INTEGER: lambda c, b: (int, None),
    Family.INT24: lambda c, b: (int, None),
    Family.FLOAT: lambda c, b: (float, format_float32),
    Family.DOUBLE: lambda c, b: (float, None),
    Family.DECIMAL: _decimal,
    Family.YEAR: lambda c, b: (int, _year),
    Family.DATE: lambda c, b: (int, _raw(c, b, lambda v: v.to_bytes(3, "little"))),
    Family.TIME: lambda c, b: (int, _raw(c, b, lambda v: v.to_bytes(3, "little", signed=True))),
    Family.TIME2: lambda c, b: (str, _raw(c, b, _bits(3 + (c.fsp + 1) // 2))),
    Family.DATETIME: lambda c, b: (int, _raw(c, b, lambda v: v.to_bytes(8, "little"))),
    Family.DATETIME2: lambda c, b: (str, _raw(c, b, _bits(5 + (c.fsp + 1) // 2))),
    Family.TIMESTAMP: lambda c, b: (int, _raw(c, b, lambda v: v.to_bytes(4, "little"))),
    Family.TIMESTAMP2: lambda c, b: (str, _raw(c, b, _bits(4 + (c.fsp + 1) // 2))),
    Family.BIT: lambda c, b: (str, _bit),
    Family.ENUM: _enum,
    Family.SET: _set_rule,
    Family.STRING: _text_or_binary,
    Family.BLOB: _text_or_binary,
    Family.JSON: lambda c, b: (None, _mysql_json),
    Family.GEOMETRY: lambda c, b: (bytes, _binary(b)),
    Family.UNSUPPORTED: lambda c, b: (None, _unknown_type),
}
require_every_family(_RULES, "library-path renderer")


@functools.lru_cache(maxsize=4096)
def _rule(column: Column, binary: str) -> Rule:
    """How to render one column: the class the library gives, and the converter."""
    if binary not in ("hex", "base64"):
        raise ValueError(f"unknown binary encoding {binary!r}: use 'hex' or 'base64'")
    return _RULES[type_of(column.type).family](column, binary)


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
    family = type_of(column.type).family
    if source in _ZERO_DATE_SOURCES and family is Family.DATE:
        return ZERO_DATE
    if source in _ZERO_DATETIME_SOURCES and family in (Family.DATETIME, Family.DATETIME2):
        return zero_datetime(column.fsp)
    if source == _EMPTY_SET and family is Family.SET:
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
    """One column value, as pymysqlreplication gives it for a table adapted by
    `library.for_library_decoding`, as a JSON-safe, lossless value.

    Rules (the capture issue's; `cdc.values` holds the formats):
    - Integers: numbers (signed/unsigned as declared). YEAR: a number (0 for YEAR 0000,
      which the library gives as 1900). BIT: a number (from the library's '0101' text).
    - DECIMAL: text with the column's scale (`"12.3400"`), never an exponent, no `-0.00`.
    - FLOAT: the shortest decimal that reads back as the same 32-bit float (`1.1`);
      DOUBLE: the float as is.
    - DATE, DATETIME, TIMESTAMP, TIME: given as their stored integer or bits, shown by
      the compiled decoder's conversions, so both paths agree to the character, invalid
      and partial dates (`"2026-02-31"`, `"2015-00-21"`) included.
    - CHAR/VARCHAR/TEXT: given as bytes, decoded with the column's character set; bytes
      not valid in it are `values.UndecodableText`. ENUM and SET: given as label
      indexes; shown as the labels (decoded with the column's character set), a SET as
      a list in definition order (`[]` for the empty set).
    - BINARY/VARBINARY/BLOB and GEOMETRY: lowercase hex (base64 with `binary="base64"`);
      BINARY(n) keeps its trailing zero bytes. GEOMETRY is MySQL's internal form: a
      4-byte little-endian SRID followed by the WKB.
    - JSON: the embedded JSON value (MySQL's binary JSON, or MariaDB's JSON text when
      `column.logical == "json"`; such text that cannot be re-encoded as JSON is kept
      as `values.UnparsedJson`). MariaDB UUID/INET4/INET6 (`column.logical`): their text.
    - NULL: None.

    JSON opaque DATE values arrive as datetimes (shown with a midnight time) and other
    opaque JSON scalars as text decoded with errors ignored (MySQL only). A value of a
    class the rules do not cover raises DecodeError, never a wrong value.
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

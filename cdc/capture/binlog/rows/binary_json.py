"""MySQL's binary JSON (the json_binary format of a JSON column's value) as a plain value."""

from __future__ import annotations

import struct
from decimal import Decimal
from typing import Any

import orjson

from cdc import values
from cdc.capture.binlog.rows.conversions import decimal_text
from cdc.capture.binlog.rows.types import (
    DATE,
    DATETIME,
    DATETIME2,
    NEWDECIMAL,
    TIME,
    TIME2,
    TIMESTAMP,
    TIMESTAMP2,
)


def mysql_json(data: bytes) -> Any:
    """A MySQL JSON column's binary value (MySQL's json_binary format) as a plain value;
    one nested deeper than `values.JSON_DEPTH` as its JSON text (`values.UnparsedJson`)."""
    if not data:
        return None
    try:
        return _json_value(data[0], data, 1, 0)
    except _TooDeep:
        return values.UnparsedJson(orjson.dumps(_json_value(data[0], data, 1, -(1 << 30))).decode())


class _TooDeep(Exception):
    pass


_J_SMALL_OBJECT, _J_LARGE_OBJECT, _J_SMALL_ARRAY, _J_LARGE_ARRAY = 0, 1, 2, 3
_J_LITERAL, _J_STRING, _J_OPAQUE = 4, 12, 15
_J_SCALARS = {5: "<h", 6: "<H", 7: "<i", 8: "<I", 9: "<q", 10: "<Q", 11: "<d"}
# Value types stored in the value entry itself rather than at an offset.
_J_INLINE_SMALL = frozenset({_J_LITERAL, 5, 6})
_J_INLINE_LARGE = frozenset({_J_LITERAL, 5, 6, 7, 8})


def _json_value(kind: int, data: bytes, pos: int, depth: int) -> Any:
    if kind <= _J_LARGE_ARRAY:
        if depth >= values.JSON_DEPTH:
            raise _TooDeep
        return _json_container(kind, data, pos, depth + 1)
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


def _json_container(kind: int, data: bytes, base: int, depth: int) -> Any:
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
    items: list[Any] = []
    for _ in range(count):
        value_kind = data[entry]
        if value_kind in inline:
            items.append(_json_value(value_kind, data, entry + 1, depth))
        else:
            (value_offset,) = struct.unpack_from(off, data, entry + 1)
            items.append(_json_value(value_kind, data, base + value_offset, depth))
        entry += 1 + width
    if is_object:
        return dict(zip(keys, items, strict=True))
    return items


def _json_opaque(field_type: int, raw: bytes) -> Any:
    """Opaque JSON scalars: DECIMAL, dates and times as MySQL's JSON shows them."""
    if field_type == NEWDECIMAL:
        precision, scale = raw[0], raw[1]
        return values.json_value(Decimal(decimal_text(raw[2:], precision, scale)))
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

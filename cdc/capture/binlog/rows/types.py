"""The one table of MySQL column types, by binlog type code, read by both row decoders.

Each type belongs to a `Family` (how its value is stored and shown). The library path
(`render`) and the compiled decoder (`compiled`) each hold one handler per family and
check at import that they cover every family: a type cannot reach one path and be
missed by the other.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cdc import values

# Binlog field types (pymysqlreplication.constants.FIELD_TYPE; the renderers do not import it).
DECIMAL, TINY, SHORT, LONG, FLOAT, DOUBLE, NULL, TIMESTAMP, LONGLONG, INT24 = range(10)
DATE, TIME, DATETIME, YEAR, NEWDATE, VARCHAR, BIT, TIMESTAMP2, DATETIME2, TIME2 = range(10, 20)
JSON, NEWDECIMAL, ENUM, SET = 245, 246, 247, 248
TINY_BLOB, MEDIUM_BLOB, LONG_BLOB, BLOB, VAR_STRING, STRING, GEOMETRY = range(249, 256)


class Family(enum.Enum):
    """How a column's value is stored in a row image and shown in `data`."""

    INTEGER = "integer"  # TINYINT .. BIGINT: a little-endian integer
    INT24 = "int24"  # MEDIUMINT: three bytes
    FLOAT = "float"  # 4-byte float, shown as the shortest decimal of the 32-bit value
    DOUBLE = "double"
    DECIMAL = "decimal"  # packed decimal, shown as text with its scale
    YEAR = "year"
    DATE = "date"
    TIME = "time"  # the pre-MySQL-5.6 TIME
    TIME2 = "time2"
    DATETIME = "datetime"  # the pre-5.6 DATETIME
    DATETIME2 = "datetime2"
    TIMESTAMP = "timestamp"  # the pre-5.6 TIMESTAMP
    TIMESTAMP2 = "timestamp2"
    BIT = "bit"
    ENUM = "enum"
    SET = "set"
    STRING = "string"  # CHAR, VARCHAR, BINARY, VARBINARY: a 1- or 2-byte length prefix
    BLOB = "blob"  # TEXT and BLOB: a 1- to 4-byte length prefix
    JSON = "json"  # MySQL's binary JSON
    GEOMETRY = "geometry"
    UNSUPPORTED = "unsupported"  # types the binlog does not use (old DECIMAL, NULL)


@dataclass(frozen=True, slots=True)
class MySQLType:
    code: int
    name: str  # as SQL names it, for messages
    family: Family
    struct: str = ""  # struct code (little-endian, signed) of a fixed-width integer


TYPES: Mapping[int, MySQLType] = {
    t.code: t
    for t in (
        MySQLType(TINY, "TINYINT", Family.INTEGER, "b"),
        MySQLType(SHORT, "SMALLINT", Family.INTEGER, "h"),
        MySQLType(LONG, "INT", Family.INTEGER, "i"),
        MySQLType(LONGLONG, "BIGINT", Family.INTEGER, "q"),
        MySQLType(INT24, "MEDIUMINT", Family.INT24),
        MySQLType(FLOAT, "FLOAT", Family.FLOAT),
        MySQLType(DOUBLE, "DOUBLE", Family.DOUBLE),
        MySQLType(NEWDECIMAL, "DECIMAL", Family.DECIMAL),
        MySQLType(YEAR, "YEAR", Family.YEAR),
        MySQLType(DATE, "DATE", Family.DATE),
        MySQLType(NEWDATE, "DATE", Family.DATE),
        MySQLType(TIME, "TIME", Family.TIME),
        MySQLType(TIME2, "TIME", Family.TIME2),
        MySQLType(DATETIME, "DATETIME", Family.DATETIME),
        MySQLType(DATETIME2, "DATETIME", Family.DATETIME2),
        MySQLType(TIMESTAMP, "TIMESTAMP", Family.TIMESTAMP),
        MySQLType(TIMESTAMP2, "TIMESTAMP", Family.TIMESTAMP2),
        MySQLType(BIT, "BIT", Family.BIT),
        MySQLType(ENUM, "ENUM", Family.ENUM),
        MySQLType(SET, "SET", Family.SET),
        MySQLType(VARCHAR, "VARCHAR", Family.STRING),
        MySQLType(VAR_STRING, "VARCHAR", Family.STRING),
        MySQLType(STRING, "CHAR", Family.STRING),
        MySQLType(TINY_BLOB, "TINYBLOB", Family.BLOB),
        MySQLType(MEDIUM_BLOB, "MEDIUMBLOB", Family.BLOB),
        MySQLType(LONG_BLOB, "LONGBLOB", Family.BLOB),
        MySQLType(BLOB, "BLOB", Family.BLOB),
        MySQLType(JSON, "JSON", Family.JSON),
        MySQLType(GEOMETRY, "GEOMETRY", Family.GEOMETRY),
        # In no binlog table map: named by their code, as unknown codes are.
        MySQLType(DECIMAL, f"binlog type {DECIMAL}", Family.UNSUPPORTED),
        MySQLType(NULL, f"binlog type {NULL}", Family.UNSUPPORTED),
    )
}


def type_of(code: int) -> MySQLType:
    """The type of a binlog type code (an unknown code is UNSUPPORTED)."""
    known = TYPES.get(code)
    return (
        known if known is not None else MySQLType(code, f"binlog type {code}", Family.UNSUPPORTED)
    )


@dataclass(frozen=True, slots=True)
class LogicalType:
    """A MariaDB type the binlog shows as BINARY(size): its bytes, formatted as text."""

    size: int
    format: Callable[[bytes], str]


LOGICAL: Mapping[str, LogicalType] = {
    "uuid": LogicalType(16, values.format_uuid),
    "inet4": LogicalType(4, values.format_inet4),
    "inet6": LogicalType(16, values.format_inet6),
}


def require_every_family(handlers: Mapping[Family, Any], path: str) -> None:
    """Refuse, at import, a decoder path without a handler for some family."""
    missing = set(Family) - set(handlers)
    if missing:
        names = ", ".join(sorted(f.name for f in missing))
        raise RuntimeError(f"the {path} has no handler for the type families {names}")

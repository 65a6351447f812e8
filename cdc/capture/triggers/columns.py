"""A captured table's columns as the capture triggers stage them, and back.

Each column gets a `Kind` from information_schema; the trigger writes an SQL expression
of the value (`staged_sql`) that keeps everything the binlog rendering needs (text and
binary as their exact bytes in hex, temporals as the server's own text, TIMESTAMP as
seconds since the epoch), and the mover renders that staged value exactly as binlog
capture does (`renderer`, the formats of `cdc.values`). Redacted columns are redacted in
the expression itself: the clear value never reaches the staging table. Pure.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from cdc.capture.charsets import json_column_decoder, text_decoder
from cdc.errors import CaptureError, ConfigError
from cdc.values import (
    format_binary,
    format_decimal,
    format_float32,
    format_timestamp,
    within_depth,
)

MASK = "***"  # as policy.redaction writes a masked value


class Kind(enum.StrEnum):
    """How a column's value is staged and rendered."""

    INTEGER = "integer"  # TINYINT .. BIGINT: the number
    FLOAT = "float"  # CAST AS DOUBLE (a FLOAT in JSON_OBJECT keeps 6 digits), then float32
    DOUBLE = "double"
    DECIMAL = "decimal"  # the server's text, then with its scale
    YEAR = "year"  # + 0 (JSON_OBJECT writes YEAR 0 as 0000, not JSON)
    DATE = "date"  # the server's text: zero and invalid dates as stored
    DATETIME = "datetime"  # the server's text, 'T' between day and time
    TIMESTAMP = "timestamp"  # UNIX_TIMESTAMP: the stored UTC seconds, whatever the time zone
    TIME = "time"  # the server's text
    BIT = "bit"  # + 0
    ENUM = "enum"  # the label's bytes in hex (the label in the column's character set)
    SET = "set"  # the members' bytes in hex, comma-separated, in definition order
    TEXT = "text"  # the bytes in hex, decoded with the column's character set
    BINARY = "binary"  # BINARY, VARBINARY, BLOB, GEOMETRY: the bytes in hex
    JSON_TEXT = "json_text"  # MariaDB's JSON (LONGTEXT with json_valid): the text's bytes
    JSON = "json"  # MySQL's JSON: embedded as it is
    AS_TEXT = "as_text"  # MariaDB's UUID, INET4, INET6: the server's text


class Redact(enum.StrEnum):
    DROP = "drop"
    MASK = "mask"
    HASH = "hash"


_KINDS = {
    **dict.fromkeys(("tinyint", "smallint", "mediumint", "int", "integer", "bigint"), Kind.INTEGER),
    "float": Kind.FLOAT,
    "double": Kind.DOUBLE,
    "real": Kind.DOUBLE,
    "decimal": Kind.DECIMAL,
    "numeric": Kind.DECIMAL,
    "year": Kind.YEAR,
    "date": Kind.DATE,
    "datetime": Kind.DATETIME,
    "timestamp": Kind.TIMESTAMP,
    "time": Kind.TIME,
    "bit": Kind.BIT,
    "enum": Kind.ENUM,
    "set": Kind.SET,
    **dict.fromkeys(("char", "varchar", "tinytext", "text", "mediumtext", "longtext"), Kind.TEXT),
    **dict.fromkeys(
        (
            "binary",
            "varbinary",
            "tinyblob",
            "blob",
            "mediumblob",
            "longblob",
            "geometry",
            "point",
            "linestring",
            "polygon",
            "multipoint",
            "multilinestring",
            "multipolygon",
            "geometrycollection",
            "geomcollection",
        ),
        Kind.BINARY,
    ),
    "json": Kind.JSON,
    **dict.fromkeys(("uuid", "inet4", "inet6"), Kind.AS_TEXT),
}
_CHARSET_KINDS = frozenset({Kind.TEXT, Kind.JSON_TEXT, Kind.ENUM, Kind.SET})


@dataclass(frozen=True, slots=True)
class StagedColumn:
    """One column as its capture trigger stages it.

    `charset` is the MySQL character set (text, ENUM, SET); `scale` a DECIMAL's, `fsp`
    a TIMESTAMP's fraction digits; `redact` what the trigger does instead of staging the
    value, `key` the id of a hash rule's key in the keys table.
    """

    name: str
    kind: Kind
    charset: str | None = None
    scale: int = 0
    fsp: int = 0
    redact: Redact | None = None
    key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != 0}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StagedColumn:
        return cls(
            name=data["name"],
            kind=Kind(data["kind"]),
            charset=data.get("charset"),
            scale=int(data.get("scale", 0)),
            fsp=int(data.get("fsp", 0)),
            redact=Redact(data["redact"]) if data.get("redact") else None,
            key=data.get("key"),
        )


def column_kind(
    schema: str, table: str, name: str, data_type: str, json_checked: bool, is_mariadb: bool
) -> Kind:
    """The kind of an information_schema column; refuses a type cdc cannot stage."""
    kind = _KINDS.get(data_type.lower())
    if kind is None:
        raise ConfigError(
            f"`{schema}`.`{table}`.`{name}` is of type {data_type}, which the capture "
            "triggers cannot stage",
            fix=f"--exclude {schema}.{table}, or capture this table from the binlog",
        )
    if kind is Kind.TEXT and json_checked and is_mariadb:
        return Kind.JSON_TEXT
    return kind


def staged_column(kind: Kind, name: str, charset: str | None, scale: Any, fsp: Any) -> StagedColumn:
    return StagedColumn(
        name=name,
        kind=kind,
        charset=charset if kind in _CHARSET_KINDS else None,
        scale=int(scale or 0) if kind is Kind.DECIMAL else 0,
        fsp=int(fsp or 0) if kind is Kind.TIMESTAMP else 0,
    )


# -- the trigger's side: SQL -------------------------------------------------------------


def quote_name(name: str) -> str:
    """An identifier, backtick-quoted."""
    return "`" + name.replace("`", "``") + "`"


def quote_text(text: str) -> str:
    """A string literal (the triggers are created with backslash escapes on)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def value_sql(column: StagedColumn, ref: str) -> str:
    """The staged form of `ref` (`NEW.`c``), before redaction."""
    kind = column.kind
    if kind in (Kind.INTEGER, Kind.DOUBLE, Kind.JSON):
        return ref
    if kind is Kind.FLOAT:
        return f"CAST({ref} AS DOUBLE)"
    if kind in (Kind.YEAR, Kind.BIT):
        return f"{ref} + 0"
    if kind is Kind.TIMESTAMP:
        # The zero TIMESTAMP with a fraction has no UNIX_TIMESTAMP (NULL): it is 0 stored.
        return f"IF({ref} IS NULL, NULL, COALESCE(CAST(UNIX_TIMESTAMP({ref}) AS CHAR), '0'))"
    if kind in (Kind.ENUM, Kind.SET, Kind.TEXT, Kind.BINARY, Kind.JSON_TEXT):
        return f"HEX({ref})"
    return f"CAST({ref} AS CHAR)"  # DECIMAL, DATE, DATETIME, TIME, AS_TEXT


def hmac_sql(message: str, key_id: str, keys_table: str) -> str:
    """HMAC-SHA256 in SQL, from the key's stored pads: the key itself is in no trigger."""

    def pad(which: str) -> str:
        return f"(SELECT {which} FROM {keys_table} WHERE id = {quote_text(key_id)})"

    inner = f"UNHEX(SHA2(CONCAT({pad('ipad')}, {message}), 256))"
    return f"SHA2(CONCAT({pad('opad')}, {inner}), 256)"


def staged_sql(column: StagedColumn, ref: str, keys_table: str) -> str | None:
    """What the trigger writes for the column (None: dropped)."""
    if column.redact is Redact.DROP:
        return None
    if column.redact is Redact.MASK:
        return quote_text(MASK)
    value = value_sql(column, ref)
    if column.redact is Redact.HASH:
        assert column.key is not None
        return hmac_sql(f"COALESCE(CAST({value} AS CHAR), 'null')", column.key, keys_table)
    return value


# -- the mover's side: rendering ---------------------------------------------------------

Render = Callable[[Any], Any]


def _timestamp(fsp: int) -> Render:
    def render(text: str) -> str:
        whole, _, fraction = str(text).partition(".")
        micro = int((fraction + "000000")[:6]) if fraction else 0
        return format_timestamp(int(whole), micro, fsp)

    return render


def _hex(then: Render) -> Render:
    return lambda text: then(bytes.fromhex(text))


def _members(decode: Render) -> Render:
    def render(raw: bytes) -> Any:
        text = decode(raw)
        if not isinstance(text, str):  # not valid in its charset: the exact bytes
            return text
        return text.split(",") if text else []

    return render


def _decimal(scale: int) -> Render:
    return lambda text: format_decimal(str(text), scale)


def _renderer(column: StagedColumn, binary: str) -> Render:
    kind = column.kind
    charset = column.charset or "binary"
    if kind is Kind.INTEGER:
        return int
    if kind is Kind.FLOAT:
        return lambda value: format_float32(float(value))
    if kind is Kind.DOUBLE:
        return float
    if kind is Kind.DECIMAL:
        return _decimal(column.scale)
    if kind in (Kind.YEAR, Kind.BIT):
        return int
    if kind in (Kind.DATE, Kind.TIME, Kind.AS_TEXT):
        return str
    if kind is Kind.DATETIME:
        return lambda text: str(text).replace(" ", "T", 1)
    if kind is Kind.TIMESTAMP:
        return _timestamp(column.fsp)
    if kind is Kind.ENUM:
        return _hex(text_decoder(charset, binary))
    if kind is Kind.SET:
        return _hex(_members(text_decoder(charset, binary)))
    if kind is Kind.TEXT:
        return _hex(text_decoder(charset, binary))
    if kind is Kind.JSON_TEXT:
        return _hex(json_column_decoder(charset, binary))
    if kind is Kind.JSON:
        return within_depth
    return _hex(lambda raw: format_binary(raw, binary))  # BINARY


def renderer(column: StagedColumn, binary: str) -> Render:
    """Staged value (as JSON gives it; never None) -> the value binlog capture writes."""
    if column.redact is not None:
        return str  # the mask, or the hash's hex digits
    render = _renderer(column, binary)

    def checked(value: Any) -> Any:
        try:
            return render(value)
        except (ValueError, TypeError, ArithmeticError) as error:
            raise CaptureError(
                f"a staged value of column `{column.name}` ({column.kind}) cannot be read: "
                f"a {type(value).__name__}",
                fix="the staging row was not written by cdc's triggers; run `cdc triggers "
                "status` and `cdc triggers install`, and report the column definition",
            ) from error

    return checked

"""Column types of every family the capture handles, with SQL literals of their values
and how a SELECT shows them: shared by the decoder and trigger-mode differential tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from cdc.values import undecodable_text


@dataclass(frozen=True)
class Type:
    """A column type, SQL literals of its values, and how a SELECT renders it (`{c}`)."""

    ddl: str
    values: tuple[str, ...]
    select: str = "{c}"
    convert: Callable[[Any], Any] | None = None


def _set_list(text: str) -> list[str]:
    return text.split(",") if text else []


def _text_or_bytes(hex_text: str) -> Any:
    """A utf8mb4 column's value from its HEX(): the text, or the lossless form of bytes
    that are not valid UTF-8."""
    raw = bytes.fromhex(hex_text)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return undecodable_text(raw, "utf8mb4")


TEXT = "CAST({c} AS CHAR)"
DATETIME = "REPLACE(CAST({c} AS CHAR), ' ', 'T')"
TIMESTAMP = "CONCAT(REPLACE(CAST({c} AS CHAR), ' ', 'T'), 'Z')"
HEX = "LOWER(HEX({c}))"
ENUM_300 = ", ".join(f"'v{i}'" for i in range(300))
SET_64 = ", ".join(f"'m{i}'" for i in range(64))

TYPES: dict[str, Type] = {
    "ti": Type("TINYINT", ("-128", "127", "0", "-1")),
    "tiu": Type("TINYINT UNSIGNED", ("0", "255", "128")),
    "si": Type("SMALLINT", ("-32768", "32767", "-2")),
    "siu": Type("SMALLINT UNSIGNED", ("65535", "1")),
    "mi": Type("MEDIUMINT", ("-8388608", "8388607", "-1")),
    "miu": Type("MEDIUMINT UNSIGNED", ("16777215", "8388608")),
    "i": Type("INT", ("-2147483648", "2147483647", "42")),
    "iu": Type("INT UNSIGNED", ("4294967295", "2147483648")),
    "bi": Type("BIGINT", ("-9223372036854775808", "9223372036854775807", "-5")),
    "biu": Type("BIGINT UNSIGNED", ("18446744073709551615", "9223372036854775808")),
    "f": Type("FLOAT", ("1.1", "-0.5", "3.4e38", "1e-10", "0", "123.456")),
    "d": Type("DOUBLE", ("0.1", "-1e300", "2.2250738585072014e-308", "123456789.12345679")),
    "dec": Type("DECIMAL(10,2)", ("12.34", "-99999999.99", "0", "-0.01", "5"), TEXT),
    "dec0": Type("DECIMAL(20,0)", ("-12345678901234567890", "0", "7"), TEXT),
    "dec65": Type(
        "DECIMAL(65,30)",
        ("-12345678901234567890123456789012345.123456789012345678901234567890", "0.000000001"),
        TEXT,
    ),
    "decf": Type("DECIMAL(5,5)", ("0.12345", "-0.99999", "0"), TEXT),
    "decm": Type("DECIMAL(19,9)", ("-1234567890.123456789", "0.5"), TEXT),
    "dt": Type(
        "DATE",
        ("'2026-05-12'", "'0000-00-00'", "'2026-00-00'", "'2026-05-00'", "'9999-12-31'"),
        TEXT,
    ),
    "dtm": Type(
        "DATETIME",
        ("'2026-05-12 12:19:40'", "'0000-00-00 00:00:00'", "'2026-00-01 10:00:00'"),
        DATETIME,
    ),
    "dtm1": Type("DATETIME(1)", ("'2026-05-12 12:19:40.1'", "'1000-01-01 00:00:00'"), DATETIME),
    "dtm3": Type("DATETIME(3)", ("'2026-05-12 12:19:40.123'", "'0000-00-00 00:00:00'"), DATETIME),
    "dtm6": Type(
        "DATETIME(6)", ("'9999-12-31 23:59:59.999999'", "'2026-05-00 01:02:03.000004'"), DATETIME
    ),
    "ts": Type(
        "TIMESTAMP NULL",
        (
            "'2026-05-12 12:19:40'",
            "'1970-01-01 00:00:01'",
            "'2038-01-19 03:14:07'",
            "'0000-00-00 00:00:00'",
        ),
        TIMESTAMP,
    ),
    "ts3": Type(
        "TIMESTAMP(3) NULL", ("'2026-05-12 12:19:40.5'", "'0000-00-00 00:00:00'"), TIMESTAMP
    ),
    "ts6": Type("TIMESTAMP(6) NULL", ("'2001-02-03 04:05:06.000007'",), TIMESTAMP),
    "tm": Type("TIME", ("'-838:59:59'", "'838:59:59'", "'00:00:00'", "'-00:00:01'"), TEXT),
    "tm1": Type("TIME(1)", ("'-00:00:00.1'", "'-12:00:00.5'"), TEXT),
    "tm2": Type("TIME(2)", ("'-00:00:01.25'", "'-00:00:00.01'", "'12:34:56.78'"), TEXT),
    "tm4": Type("TIME(4)", ("'-00:00:01.0001'", "'-100:00:00.9999'"), TEXT),
    "tm6": Type("TIME(6)", ("'-00:00:01.000001'", "'-838:59:58.999999'", "'00:00:00.5'"), TEXT),
    "y": Type("YEAR", ("0", "1901", "2155", "2026"), "{c} + 0"),
    "e": Type("ENUM('a','b','ç')", ("'a'", "'ç'", "''"), TEXT),
    "e2": Type(f"ENUM({ENUM_300})", ("'v0'", "'v299'", "''"), TEXT),
    "s": Type("SET('x','y','z')", ("'x,z'", "''", "'x,y,z'"), TEXT, _set_list),
    "s64": Type(f"SET({SET_64})", ("'m0,m63'", "'m7,m8,m9'", "''"), TEXT, _set_list),
    "b1": Type("BIT(1)", ("b'0'", "b'1'"), "{c} + 0"),
    "b10": Type("BIT(10)", ("b'1111111111'", "b'1000000001'"), "{c} + 0"),
    "b64": Type("BIT(64)", ("18446744073709551615", "1"), "{c} + 0"),
    "c": Type("CHAR(10)", ("'ab'", "''", "'é  '", "'😀x'")),
    "c255": Type("CHAR(255)", ("REPEAT('é', 255)", "'z'")),
    "vc": Type("VARCHAR(300)", ("'😀 emoji'", "''", "REPEAT('x', 300)")),
    "vcl": Type("VARCHAR(20) CHARACTER SET latin1", ("'é€'", "''")),
    "vcl2": Type("VARCHAR(10) CHARACTER SET latin2", ("'ő'",)),
    "vcgbk": Type("VARCHAR(10) CHARACTER SET gbk", ("'中文'",)),
    "tt": Type("TINYTEXT", ("'t'",)),
    "tx": Type("TEXT", ("'some text'", "''")),
    "mt": Type("MEDIUMTEXT", ("REPEAT('m', 70000)",)),
    "lt": Type("LONGTEXT", ("'long'",)),
    "bin": Type("BINARY(4)", ("x'61000000'", "x'00000000'", "x'00000001'"), HEX),
    "bin16": Type("BINARY(16)", ("x'0102030405060708090a0b0c0d0e0f00'", "x'ff'"), HEX),
    "vb": Type("VARBINARY(300)", ("x'00'", "x''", "x'ff00ff00'"), HEX),
    "tb": Type("TINYBLOB", ("x'00ff'",), HEX),
    "bl": Type("BLOB", ("x'deadbeef00'", "x''"), HEX),
    "mb": Type("MEDIUMBLOB", ("REPEAT(x'00', 70000)",), HEX),
    "lb": Type("LONGBLOB", ("x'01'",), HEX),
    "g": Type(
        "GEOMETRY",
        ("ST_GeomFromText('POINT(1 2)')", "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')"),
        HEX,
    ),
    "j": Type("JSON", ('\'{"a": [1, 2.5, null, "é"]}\'', "'[]'", "'\"s\"'"), "{c}", orjson.loads),
    "u": Type(
        "UUID",
        (
            "'123e4567-e89b-12d3-a456-426614174000'",
            "'ffffffff-ffff-ffff-ffff-ffffffff0000'",
            "'00000000-0000-0000-0000-000000000000'",
        ),
        TEXT,
    ),
    "i4": Type("INET4", ("'1.2.3.4'", "'0.0.0.0'", "'10.0.0.0'"), TEXT),
    "i6": Type(
        "INET6", ("'::1'", "'::'", "'2001:db8::'", "'::ffff:1.2.3.4'", "'fe80::1:0:0:0'"), TEXT
    ),
    # Invalid and partial dates (ALLOW_INVALID_DATES), as the server shows them.
    "dtinv": Type("DATE", ("'2026-02-31'", "'2015-00-21'", "'0000-01-21'"), TEXT),
    "dtminv": Type("DATETIME(3)", ("'2026-02-31 23:59:59.999'", "'2015-00-21 00:00:00'"), DATETIME),
    # ENUM and SET labels outside UTF-8, decoded with the column's own character set.
    "esj": Type("ENUM('鉄','都') CHARACTER SET sjis", ("'鉄'", "'都'", "''"), TEXT),
    "ecp": Type("ENUM('ж','я') CHARACTER SET cp1251", ("'ж'", "'я'"), TEXT),
    "ekoi": Type("ENUM('ж','ы') CHARACTER SET koi8r", ("'ы'", "'ж'"), TEXT),
    "elat": Type("ENUM('é','ü') CHARACTER SET latin1", ("'ü'", "'é'"), TEXT),
    "eucs": Type("ENUM('Ω','ĉ') CHARACTER SET ucs2", ("'ĉ'", "'Ω'"), TEXT),
    "ssj": Type("SET('鉄','都') CHARACTER SET sjis", ("'鉄,都'", "'都'", "''"), TEXT, _set_list),
    "s16": Type("SET('Ω','ĉ') CHARACTER SET utf16", ("'Ω,ĉ'", "'ĉ'"), TEXT, _set_list),
    # Text in other character sets (latin1's C1 controls, the big-endian UTF-16/32).
    "vcl1": Type("VARCHAR(20) CHARACTER SET latin1", ("x'81908d8f9d'", "'é€'")),
    "vc16": Type("VARCHAR(10) CHARACTER SET utf16", ("'abc'", "'😀'", "''")),
    "vcucs": Type("VARCHAR(10) CHARACTER SET ucs2", ("'ĉu'", "'Ω'")),
    "vc32": Type("VARCHAR(10) CHARACTER SET utf32", ("'z😀'", "'a'")),
    "vc16le": Type("VARCHAR(10) CHARACTER SET utf16le", ("'le😀'",)),
    "tucs": Type("TEXT CHARACTER SET ucs2", ("'ĉu text'", "''")),
    # Bytes that are not valid UTF-8 in utf8mb4 columns (a UTF-16 surrogate, a lone 0xff).
    "vinv": Type("VARCHAR(20)", ("x'6f6beda0bd'", "'fine'"), HEX, _text_or_bytes),
    "tinv": Type("TEXT", ("x'ff'", "'ok'"), HEX, _text_or_bytes),
}

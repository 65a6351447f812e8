"""MySQL character sets as Python codecs (where the same name decodes differently), and
the text decoder every path uses: both binlog row decoders and the trigger mover."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import Any

from cdc.values import UndecodableText, UnparsedJson, json_text, undecodable_text

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
    # Named differently in Python (MySQL's names have no underscore).
    "koi8r": "koi8_r",
    "koi8u": "koi8_u",
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


def codec(charset: str) -> tuple[str, str | None]:
    """The Python codec (and error handler) decoding a MySQL character set's bytes as
    MySQL does; LookupError for a character set Python has no codec for."""
    name = _CODECS.get(charset, charset)
    codecs.lookup(name)
    return name, _LATIN1_ERRORS if name == "cp1252" else None


Decode = Callable[[bytes], Any]


def text_decoder(charset: str, binary: str, shown: str | None = None) -> Decode:
    """bytes -> the text as MySQL shows it; bytes not valid in `charset` (or a character
    set Python has no codec for: swe7, dec8, ...) -> `values.UndecodableText`, exactly.

    One function for both decoders, so they render text alike. `shown` is the
    character set's name as MySQL gives it (utf8mb4 for the codec utf8), for that form."""
    label = shown or charset
    try:
        name, errors = codec(charset)
    except LookupError:
        return lambda raw: undecodable_text(raw, label, binary)
    mode = errors or "strict"

    def decode(raw: bytes) -> Any:
        try:
            return raw.decode(name, mode)
        except UnicodeDecodeError:
            return undecodable_text(raw, label, binary)

    return decode


def json_column_decoder(charset: str, binary: str, shown: str | None = None) -> Decode:
    """A MariaDB JSON column (LONGTEXT with a json_valid check): the JSON value; text not
    valid in `charset` as `UndecodableText`; text cdc cannot re-encode as JSON (not JSON,
    or nested too deep) as `UnparsedJson`, the text itself."""
    text = text_decoder(charset, binary, shown)

    def decode(raw: bytes) -> Any:
        value = text(raw)
        if value.__class__ is not str:
            return value
        try:
            return json_text(value)
        except ValueError:
            return UnparsedJson(value)

    return decode


NOTICED = (UndecodableText, UnparsedJson)
"""The classes of values the decoders log once per column (never the value)."""

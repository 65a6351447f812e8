"""MySQL character sets as Python codecs, where the same name decodes differently."""

from __future__ import annotations

import codecs

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


def codec(charset: str) -> tuple[str, str | None]:
    """The Python codec (and error handler) decoding a MySQL character set's bytes as
    MySQL does; LookupError for a character set Python has no codec for."""
    name = _CODECS.get(charset, charset)
    codecs.lookup(name)
    return name, _LATIN1_ERRORS if name == "cp1252" else None

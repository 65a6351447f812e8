"""The raw ENUM and SET labels of a TableMap event body, which the library decodes as
UTF-8 (and drops where that fails): the decoders decode them with each column's own
character set. Pure: bytes in, bytes out.

The body (MySQL's Table_map_log_event, MariaDB's alike): table id (6 bytes), flags (2),
schema and table names (length byte, name, NUL), the column count and types, the column
metadata block, the NULL bitmap, then optional metadata fields (type byte, packed length,
value) as `binlog_row_metadata = FULL` writes them.
"""

from __future__ import annotations

SET_STR_VALUE = 5
ENUM_STR_VALUE = 6


def _packed(body: bytes, pos: int) -> tuple[int, int]:
    """A packed (length-encoded) integer at `pos`: its value and the position after it."""
    first = body[pos]
    if first < 0xFB:
        return first, pos + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}.get(first)
    if size is None:
        raise ValueError(f"bad packed integer 0x{first:02x} at {pos}")
    return int.from_bytes(body[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


def _optional_metadata(body: bytes) -> int:
    """Where the optional metadata starts in a TableMap body."""
    pos = 8  # table id, flags
    for _ in range(2):  # schema, then table: length byte, name, NUL
        pos += 1 + body[pos] + 1
    count, pos = _packed(body, pos)
    pos += count  # column types
    meta, pos = _packed(body, pos)
    pos += meta
    return pos + (count + 7) // 8  # the NULL bitmap


def _values(field: bytes) -> list[list[bytes]]:
    """An ENUM_STR_VALUE / SET_STR_VALUE field: for each such column, its labels."""
    columns: list[list[bytes]] = []
    pos = 0
    while pos < len(field):
        count, pos = _packed(field, pos)
        labels = []
        for _ in range(count):
            length, pos = _packed(field, pos)
            labels.append(field[pos : pos + length])
            pos += length
        columns.append(labels)
    if pos != len(field):
        raise ValueError("ENUM/SET values run past their field")
    return columns


def enum_and_set_labels(body: bytes) -> tuple[list[list[bytes]], list[list[bytes]]]:
    """The raw labels of the ENUM columns and of the SET columns, each in column order
    (empty lists without `binlog_row_metadata = FULL`). Raises ValueError for a body
    that does not parse."""
    enums: list[list[bytes]] = []
    sets: list[list[bytes]] = []
    try:
        pos = _optional_metadata(body)
        while pos < len(body):
            kind = body[pos]
            length, pos = _packed(body, pos + 1)
            field = body[pos : pos + length]
            pos += length
            if kind == ENUM_STR_VALUE:
                enums = _values(field)
            elif kind == SET_STR_VALUE:
                sets = _values(field)
    except IndexError:
        raise ValueError("the TableMap body ends too early") from None
    return enums, sets

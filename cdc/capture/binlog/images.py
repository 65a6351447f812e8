"""A rows event's row images as row changes: read by the compiled decoder straight from
the event's bytes, or by the library's own decoding of a table adapted to be lossless;
values kept in a lossless form are logged once per column."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import structlog
from pymysqlreplication.column import Column as LibraryColumn
from pymysqlreplication.table import Table as LibraryTable

from cdc.capture.binlog.rows import compiled
from cdc.capture.binlog.rows.render import render_row
from cdc.capture.charsets import NOTICED
from cdc.errors import DecodeError
from cdc.models import Op, Row, RowChange, Table
from cdc.values import UnparsedJson

if TYPE_CHECKING:
    from cdc.settings import Binary

log = structlog.get_logger("cdc.reader")

# -- the library's own row decoding, made lossless --------------------------------------

TEXT_TYPES = frozenset({15, 253, 254, 249, 250, 251, 252})  # VARCHAR, *STRING, *BLOB
ENUM_TYPE, SET_TYPE = 247, 248
INT24_TYPE, LONG_TYPE, LONGLONG_TYPE, BIT_TYPE = 9, 3, 8, 16
# Fixed-width temporal types, read as their raw little-endian integer (and whether it is
# signed) or, for the big-endian *2 forms, as bits: (type to read as, signed, base size).
RAW_TEMPORALS = {
    10: (INT24_TYPE, False, 0),  # DATE
    11: (INT24_TYPE, True, 0),  # the pre-5.6 TIME
    12: (LONGLONG_TYPE, False, 0),  # the pre-5.6 DATETIME
    7: (LONG_TYPE, False, 0),  # the pre-5.6 TIMESTAMP
    17: (BIT_TYPE, False, 4),  # TIMESTAMP2
    18: (BIT_TYPE, False, 5),  # DATETIME2
    19: (BIT_TYPE, False, 3),  # TIME2
}
_adapted: dict[int, tuple[Any, Any]] = {}


def for_library_decoding(original: Any) -> Any:
    """A copy of a library table whose rows the library decodes without loss: text
    columns as their bytes (the character set `binary` makes it skip the decode, so our
    text decoder reads them, as on the compiled path), ENUM and SET values as label
    indexes (rendered with the labels decoded in their own character set), and dates and
    times as their raw integer or bits (the library turns invalid and partial dates
    into errors or None and reads some TIME values wrong; the compiled decoder's
    conversions show them as the server does).

    The original keeps its facts for `tables.table_from_library`; copies are kept per
    original (the parsed TableMaps are shared, so there are few)."""
    known = _adapted.get(id(original))
    if known is not None and known[0] is original:
        return known[1]
    columns = []
    for col in original.columns:
        copy = LibraryColumn(**col.__dict__)
        if col.type in TEXT_TYPES and col.character_set_name is not None:
            copy.character_set_name = "binary"
        elif col.type == ENUM_TYPE and col.enum_values:
            copy.enum_values = list(range(len(col.enum_values)))
        elif col.type == SET_TYPE and col.set_values:
            copy.set_values = list(range(len(col.set_values)))
        elif col.type in RAW_TEMPORALS:
            copy.type, signed, base = RAW_TEMPORALS[col.type]
            copy.unsigned = not signed
            if base:
                size = base + (getattr(col, "fsp", 0) + 1) // 2
                copy.bits, copy.bytes = 8 * size, size
        columns.append(copy)
    fields = {k: v for k, v in original.__dict__.items() if k != "data"}
    adapted = LibraryTable(**{**fields, "columns": columns})
    if len(_adapted) >= 4096:
        _adapted.clear()
    _adapted[id(original)] = (original, adapted)
    return adapted


# -- row images --------------------------------------------------------------------------

_reported: set[tuple[str, str, str]] = set()
Notice = Callable[[Table, Iterable[tuple[str, type]]], None]
"""Told of values kept in their lossless form (the table, and (column, class) pairs)."""


def note_values(table: Table, found: Iterable[tuple[str, type]], where: str) -> None:
    """One log line per table, column and kind of value kept in its lossless form:
    never the value, the position of the first."""
    for column, kind in found:
        key = (table.qualified, column, kind.__name__)
        if key in _reported:
            continue
        if len(_reported) > 10_000:
            _reported.clear()
        _reported.add(key)
        spec = next((c for c in table.columns if c.name == column), None)
        charset = spec and (spec.charset_name or spec.charset)
        event = "json_column_not_json" if kind is UnparsedJson else "text_not_valid_in_charset"
        log.warning(
            event, schema=table.schema, table=table.name, column=column, charset=charset,
            position=where,
        )  # fmt: skip


def log_fallback(table: Table, reason: str) -> None:
    """One log line per table and reason: its rows go through the library's decoder."""
    key = (table.schema, table.name, reason)
    if key not in _reported:
        if len(_reported) > 10_000:
            _reported.clear()
        _reported.add(key)
        log.warning("fast_decoder_fallback", schema=table.schema, table=table.name, reason=reason)


class FastRows:
    """A table's rows events as row changes, through its compiled decoder.

    The decoder reads the row images straight from the event's buffer, where the
    library stopped (after the columns-present bitmaps; the library pushes bytes back
    into its own buffer only while it decodes rows itself, which it has not done for
    this event). An event it was not compiled for (a row image without every column)
    or a decoding fault sends this table to the library's decoder for good, with one
    log line: a value is never guessed.
    """

    def __init__(self, decoder: compiled.RowDecoder, binary: Binary, notice: Notice) -> None:
        self.decoder = decoder
        self.notice = notice
        self.table = decoder.table
        self.binary = binary
        count = len(self.table.columns)
        # The columns-present bitmap of a full row image: every column's bit set.
        self.present = ((1 << count) - 1).to_bytes((count + 7) // 8, "little")
        self.usable = True

    def __call__(self, op: Op, event: Any) -> Iterator[RowChange]:
        table = self.table
        images = self._decode(op, event) if self.usable else None
        if images is None:
            yield from library_changes(table, op, event, self.binary, self.notice)
            return
        if self.decoder.noticed:
            self.notice(table, self.decoder.noticed)
            self.decoder.noticed.clear()
        if op is Op.CREATE:
            for after in images:
                yield RowChange(op, table, None, after)
        elif op is Op.DELETE:
            for before in images:
                yield RowChange(op, table, before, None)
        else:
            for before, after in zip(images[0::2], images[1::2], strict=True):
                yield RowChange(op, table, before, after)

    def _decode(self, op: Op, event: Any) -> list[Row] | None:
        packet = event.packet
        raw = packet.packet
        if event.columns_present_bitmap != self.present or (
            op is Op.UPDATE and event.columns_present_bitmap2 != self.present
        ):
            self._give_up("a row image without every column (binlog_row_image is not FULL)")
            return None
        start = raw._position
        # event_size excludes the header and the checksum; read_bytes counts the body read.
        end = start + event.event_size - packet.read_bytes
        try:
            images = self.decoder.decode(raw._data, start, end)
        except Exception as error:  # a decoder fault: the library decodes this table from now on
            self._give_up(f"the compiled decoder failed: {type(error).__name__}: {error}")
            return None
        raw._position = end
        packet.read_bytes = event.event_size
        return images

    def _give_up(self, reason: str) -> None:
        self.usable = False
        self.decoder.noticed.clear()  # of the failed attempt: the library decodes it again
        log_fallback(self.table, reason)


def fast_rows(table: Table, binary: Binary, notice: Notice) -> FastRows | None:
    """The compiled decoder of this table version, or None (with one log line) for the library."""
    try:
        decoder = compiled.decoder_for(table, binary)
    except compiled.Unsupported as reason:
        log_fallback(table, str(reason))
        return None
    return FastRows(decoder, binary, notice)


def _noticed(table: Table, *images: Row) -> list[tuple[str, type]]:
    return [
        (name, v.__class__)
        for image in images
        for name, v in image.items()
        if v.__class__ in NOTICED
    ]


def library_changes(
    table: Table, op: Op, event: Any, binary: Binary, notice: Notice
) -> Iterator[RowChange]:
    """The library's rows of one event (its table adapted by `for_library_decoding`),
    rendered by our rules."""
    try:
        for row in event.rows:
            if op is Op.UPDATE:
                before = render_row(table, row["before_values"], row["before_none_sources"], binary)
                after = render_row(table, row["after_values"], row["after_none_sources"], binary)
                change = RowChange(op, table, before, after)
                found = _noticed(table, before, after)
            else:
                image = render_row(table, row["values"], row["none_sources"], binary)
                if op is Op.CREATE:
                    change = RowChange(op, table, None, image)
                else:
                    change = RowChange(op, table, image, None)
                found = _noticed(table, image)
            if found:
                notice(table, found)
            yield change
    except DecodeError:
        raise
    except Exception as error:
        raise DecodeError(
            f"cannot decode a row of {table.qualified} before {event.packet.log_pos}: {error}",
            fix="report this binlog position; capture stopped without skipping it",
        ) from error

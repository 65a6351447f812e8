"""The binlog reader's fast path: parsed TableMaps reused, row images decoded by
`cdc/decoder.py`, and the library's own row decoding (rendered by the mapper) as fallback.

Part of the reader: with it, the only code that knows `pymysqlreplication`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import structlog
from pymysqlreplication.row_event import TableMapEvent
from pymysqlreplication.table import Table as LibraryTable

from cdc import decoder, mapper
from cdc.errors import DecodeError
from cdc.models import Op, Row, RowChange, Table

log = structlog.get_logger("cdc.reader")

# How many distinct TableMap events (table id + metadata bytes) one stream keeps parsed.
_PARSED_TABLE_MAPS = 1024
# Attributes of a parsed TableMapEvent that belong to the event, not to its bytes.
_PER_EVENT = frozenset({"packet", "table_map", "_ctl_connection", "timestamp"})
_reported: set[tuple[str, str, str]] = set()


def _log_fallback(table: Table, reason: str) -> None:
    """One log line per table and reason: its rows go through the library's decoder."""
    key = (table.schema, table.name, reason)
    if key not in _reported:
        if len(_reported) > 10_000:
            _reported.clear()
        _reported.add(key)
        log.warning("fast_decoder_fallback", schema=table.schema, table=table.name, reason=reason)


class TableMaps(dict[int, Any]):
    """The stream's `table_map`, plus the parsed TableMap events by their bytes.

    The library parses every TableMap event in full (column metadata, names, charsets);
    the same table id with the same bytes always parses to the same table, so a repeat
    reuses the first parse (and the same table object, which keeps our per-table cache).
    The library replaces `table_map` with a plain dict at a rotate; `_changes` wraps it again.
    """

    def __init__(self, tables: dict[int, Any]) -> None:
        super().__init__(tables)
        self.parsed: dict[bytes, dict[str, Any]] = {}


_library_table_map_init = TableMapEvent.__init__


class _ParsedTable(LibraryTable):  # type: ignore[misc]
    """A parsed table shared by the TableMaps of the same bytes: its `data` dict (built
    anew by the library for every rows event, to read the primary key) is built once."""

    @functools.cached_property
    def data(self) -> dict[str, Any]:
        return dict(LibraryTable.data.fget(self))


def _table_map_init(
    self: Any, from_packet: Any, event_size: int, table_map: Any, ctl_connection: Any, **kwargs: Any
) -> None:
    """TableMapEvent.__init__, answered from `TableMaps.parsed` when the bytes repeat.

    Streams whose `table_map` is not a `TableMaps` (the library decoder, other readers)
    get the library's own parse, untouched.
    """
    args = (self, from_packet, event_size, table_map, ctl_connection)
    if table_map.__class__ is not TableMaps or kwargs.get("verify_checksum"):
        _library_table_map_init(*args, **kwargs)
        return
    raw = from_packet.packet
    start = raw._position
    key = raw._data[start : start + event_size]  # the body: table id, names, metadata
    parsed = table_map.parsed.get(key)
    if parsed is None:
        _library_table_map_init(*args, **kwargs)
        if self._processed and self.table_obj.__class__ is LibraryTable:
            self.table_obj.__class__ = _ParsedTable
        if len(table_map.parsed) >= _PARSED_TABLE_MAPS:
            table_map.parsed.clear()
        table_map.parsed[key] = {k: v for k, v in self.__dict__.items() if k not in _PER_EVENT}
        return
    self.__dict__.update(parsed)
    self.packet = from_packet
    self.table_map = table_map
    self._ctl_connection = ctl_connection
    self.timestamp = from_packet.timestamp
    if self._processed:
        table_map[self.table_id] = self.table_obj


TableMapEvent.__init__ = _table_map_init


class _FastRows:
    """A table's rows events as row changes, through its compiled decoder.

    The decoder reads the row images straight from the event's buffer, where the
    library stopped (after the columns-present bitmaps). An event it was not compiled
    for (a row image without every column) or a decoding fault sends this table to the
    library's decoder for good, with one log line: a value is never guessed.
    """

    def __init__(self, compiled: decoder.RowDecoder, binary: str) -> None:
        self.compiled = compiled
        self.table = compiled.table
        self.binary = binary
        count = len(self.table.columns)
        # The columns-present bitmap of a full row image: every column's bit set.
        self.present = ((1 << count) - 1).to_bytes((count + 7) // 8, "little")
        self.usable = True

    def __call__(self, op: Op, event: Any) -> Iterator[RowChange]:
        table = self.table
        images = self._decode(op, event) if self.usable else None
        if images is None:
            yield from library_changes(table, op, event, self.binary)
        elif op is Op.CREATE:
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
        if (
            event.columns_present_bitmap != self.present
            or (op is Op.UPDATE and event.columns_present_bitmap2 != self.present)
            or packet._BinLogPacketWrapper__data_buffer
        ):
            self._give_up("a row image without every column (binlog_row_image is not FULL)")
            return None
        start = raw._position
        # event_size excludes the header and the checksum; read_bytes counts the body read.
        end = start + event.event_size - packet.read_bytes
        try:
            images = self.compiled.decode(raw._data, start, end)
        except Exception as error:  # a decoder fault: the library decodes this table from now on
            self._give_up(f"the compiled decoder failed: {type(error).__name__}: {error}")
            return None
        raw._position = end
        packet.read_bytes = event.event_size
        return images

    def _give_up(self, reason: str) -> None:
        self.usable = False
        _log_fallback(self.table, reason)


def library_changes(table: Table, op: Op, event: Any, binary: str) -> Iterator[RowChange]:
    """The library's rows of one event, rendered by the mapper (as `_changes` does)."""
    render = mapper.render_row
    try:
        for row in event.rows:
            if op is Op.UPDATE:
                before = render(table, row["before_values"], row["before_none_sources"], binary)
                after = render(table, row["after_values"], row["after_none_sources"], binary)
                yield RowChange(op, table, before, after)
            else:
                values = render(table, row["values"], row["none_sources"], binary)
                if op is Op.CREATE:
                    yield RowChange(op, table, None, values)
                else:
                    yield RowChange(op, table, values, None)
    except DecodeError:
        raise
    except Exception as error:
        raise DecodeError(
            f"cannot decode a row of {table.qualified} before {event.packet.log_pos}: {error}",
            fix="report this binlog position; capture stopped without skipping it",
        ) from error


def fast_rows(table: Table, binary: str) -> _FastRows | None:
    """The compiled decoder of this table version, or None (with one log line) for the library."""
    try:
        compiled = decoder.decoder_for(table, binary)
    except decoder.Unsupported as reason:
        _log_fallback(table, str(reason))
        return None
    return _FastRows(compiled, binary)

"""The adapter to mysql-replication: the stream as we open it, and the hooks we add.

- The stream's connections get their options from `cdc.mysql`; the library's own silent
  reconnect (which resumes from the wrong place) is turned into `ConnectionLost`.
- `parsed_table_maps()` installs, for as long as a stream is open, a hook that answers
  a repeated TableMap event from the first parse of the same bytes. It is installed by
  the source when it opens a stream and removed when the last one closes: nothing is
  patched on import.
- The events it leaves unparsed are read here where they matter: MySQL's commit times,
  and the events that cannot be captured (`undecodable`), which stop capture.
The row images themselves are read in images.py.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pymysql
import structlog
from pymysql.constants import CR
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    NotImplementedEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    PartialUpdateRowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)
from pymysqlreplication.table import Table as LibraryTable

from cdc import mysql
from cdc.errors import ConnectionLost
from cdc.models import Op, Position

if TYPE_CHECKING:
    from cdc.settings import CaptureSettings, Dsn

log = structlog.get_logger("cdc.reader")

EVENTS = (
    TableMapEvent,  # to read its raw ENUM/SET labels, and to adapt its table (below)
    WriteRowsEvent,
    UpdateRowsEvent,
    DeleteRowsEvent,
    XidEvent,
    QueryEvent,
    RotateEvent,
    GtidEvent,
    MariadbGtidEvent,
    HeartbeatLogEvent,
    NotImplementedEvent,  # MySQL's Anonymous_GTID events (their commit time), and refusals
    PartialUpdateRowsEvent,  # refused: see UNDECODABLE
)
"""The events the source reads (TableMap events are always parsed by the library)."""

ROWS_EVENTS = {WriteRowsEvent: Op.CREATE, UpdateRowsEvent: Op.UPDATE, DeleteRowsEvent: Op.DELETE}


class _NoSilentReconnect(pymysql.connections.Connection):
    """A replica connection whose read errors are not the library's 2006/2013.

    `BinLogStreamReader.fetchone` swallows those two codes and reconnects from a place
    inside the current transaction (rows lost, or repeated with GTIDs); turning them
    into `ConnectionLost` hands the decision back to us.
    """

    def _read_packet(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super()._read_packet(*args, **kwargs)  # type: ignore[no-untyped-call]
        except pymysql.err.OperationalError as error:
            if error.args and error.args[0] in (CR.CR_SERVER_GONE_ERROR, CR.CR_SERVER_LOST):
                raise ConnectionLost(str(error)) from error
            raise


def open_stream(
    dsn: Dsn,
    settings: CaptureSettings,
    start: Position,
    is_mariadb: bool,
    ignored_schemas: list[str] | None,
    blocking: bool = True,
) -> BinLogStreamReader:
    """A replica stream from `start`: by GTID where the position has one (it survives a
    failover to a replica and binlog renames), by binlog file and offset otherwise.
    Building it does not connect."""
    gtid = start.gtid if settings.gtid_resume else None
    stream = BinLogStreamReader(
        connection_settings=mysql.options(dsn, read_timeout=settings.read_timeout),
        ctl_connection_settings=mysql.options(dsn),
        server_id=settings.server_id,
        resume_stream=True,
        blocking=blocking,
        log_file=None if gtid else start.log_file,
        log_pos=None if gtid else start.log_pos,
        auto_position=gtid,
        is_mariadb=bool(gtid) and is_mariadb,
        only_events=list(EVENTS),
        filter_non_implemented_events=False,  # see UNDECODABLE
        ignored_schemas=ignored_schemas,
        slave_heartbeat=settings.binlog_heartbeat,
        pymysql_wrapper=_NoSilentReconnect,
        enable_logging=False,
    )
    return stream


# MySQL's Anonymous_GTID event (gtid_mode OFF): a GTID event without a GTID, which the
# library leaves unparsed; it carries the transaction's commit time all the same.
ANONYMOUS_GTID_LOG_EVENT = 34
_HEADER = 20  # the OK byte and the 19-byte event header before an event's body
_COMMIT_TIMES_AT = 42  # flags, sid, gno, lt_type, last_committed, sequence_number


# Events whose changes the library cannot decode (it would drop them silently): each
# stops capture with the setting that causes it.
UNDECODABLE = {
    39: "a partial JSON update (binlog_row_value_options = PARTIAL_JSON); "
    "set binlog_row_value_options = '' (globally and in the session that set it)",
    40: "a compressed transaction payload (binlog_transaction_compression = ON); "
    "set binlog_transaction_compression = OFF",
    42: "a tagged GTID (MySQL 8.3+ gtid_next with a tag), which the binlog library cannot read; "
    "do not use tagged GTIDs on a captured server",
    **dict.fromkeys(
        range(165, 172),
        "a compressed event (log_bin_compress = ON); set log_bin_compress = OFF",
    ),
}


def undecodable(event: Any) -> str | None:
    """Why this event cannot be captured, or None for an event the source handles."""
    if type(event) is PartialUpdateRowsEvent:
        return UNDECODABLE[39]
    if type(event) is NotImplementedEvent:
        return UNDECODABLE.get(event.packet.event_type)
    return None


def is_anonymous_gtid(event: Any) -> bool:
    return type(event) is NotImplementedEvent and event.packet.event_type == (
        ANONYMOUS_GTID_LOG_EVENT
    )


def mysql_commit_time(event: Any) -> float | None:
    """The commit time of a MySQL (Anonymous_)GTID event's transaction, in seconds, from
    its `original_commit_timestamp` (MySQL 8.0.1+; microseconds); None before 8.0.1."""
    raw = event.packet.packet._data
    return commit_time_of_gtid_body(raw[_HEADER : _HEADER + event.event_size])


def commit_time_of_gtid_body(body: bytes) -> float | None:
    """The original commit time in a GTID event body: after the logical timestamps come
    `immediate_commit_timestamp` (7 bytes, little-endian, microseconds) and, when its top
    bit is set, `original_commit_timestamp` (7 bytes); otherwise the two are the same."""
    at = _COMMIT_TIMES_AT
    if len(body) < at + 7:
        return None
    immediate = int.from_bytes(body[at : at + 7], "little")
    original = immediate & ~(1 << 55)
    if immediate & (1 << 55) and len(body) >= at + 14:
        original = int.from_bytes(body[at + 7 : at + 14], "little")
    return original / 1_000_000 if original else None


# -- reuse of parsed TableMap events --------------------------------------------------

# How many distinct TableMap events (table id + metadata bytes) one stream keeps parsed.
_PARSED_TABLE_MAPS = 1024
# Attributes of a parsed TableMapEvent that belong to the event, not to its bytes.
_PER_EVENT = frozenset({"packet", "table_map", "_ctl_connection", "timestamp"})


class TableMaps(dict[int, Any]):
    """The stream's `table_map`, plus the parsed TableMap events by their bytes.

    The library parses every TableMap event in full (column metadata, names, charsets);
    the same table id with the same bytes always parses to the same table, so a repeat
    reuses the first parse (and the same table object, which keeps our per-table cache).
    """

    def __init__(self, tables: dict[int, Any], parsed: dict[bytes, dict[str, Any]]) -> None:
        super().__init__(tables)
        self.parsed = parsed


def ensure_table_maps(stream: BinLogStreamReader, parsed: dict[bytes, dict[str, Any]]) -> None:
    """Wrap the stream's `table_map` (again, after a rotate) around the parses kept in
    `parsed`: the same bytes parse to the same table whatever the file."""
    if stream.table_map.__class__ is not TableMaps:
        stream.table_map = TableMaps(stream.table_map, parsed)


class _ParsedTable(LibraryTable):  # type: ignore[misc]
    """A parsed table shared by the TableMaps of the same bytes: its `data` dict (built
    anew by the library for every rows event, to read the primary key) is built once."""

    @functools.cached_property
    def data(self) -> dict[str, Any]:
        return dict(LibraryTable.data.fget(self))


_LIBRARY_INIT = TableMapEvent.__init__  # restored when the last stream closes
_library_table_map_init = _LIBRARY_INIT  # what the hook calls for a first parse


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
            self.table_obj = _ParsedTable(**self.table_obj.__dict__)
            table_map[self.table_id] = self.table_obj
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


_hook_lock = threading.Lock()
_hook_users = 0


@contextlib.contextmanager
def parsed_table_maps() -> Iterator[None]:
    """While inside, TableMap events of streams with a `TableMaps` reuse earlier parses.

    Counted: the hook stays while any stream of this process is open, and the
    library's own `__init__` is back when the last one closes.
    """
    global _hook_users
    with _hook_lock:
        _hook_users += 1
        if _hook_users == 1:
            TableMapEvent.__init__ = _table_map_init
    try:
        yield
    finally:
        with _hook_lock:
            _hook_users -= 1
            if _hook_users == 0:
                TableMapEvent.__init__ = _LIBRARY_INIT


def hook_installed() -> bool:
    return TableMapEvent.__init__ is _table_map_init


def table_map_body(event: Any) -> bytes:
    """The raw body of a TableMap event (header and checksum excluded)."""
    return bytes(event.packet.packet._data[_HEADER : _HEADER + event.event_size])

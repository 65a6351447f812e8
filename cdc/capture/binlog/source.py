"""The binlog as a capture `Source`: reads as a replica, yields row changes grouped by
source transaction.

Positions are handed out only at transaction boundaries (after an XID, a COMMIT, or a
DDL statement, which is its own group); a lost connection ends the read, and the capture
loop restarts it from its last committed checkpoint.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pymysql
import structlog
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)

from cdc import mysql
from cdc.capture.binlog import library
from cdc.capture.binlog.filters import SYSTEM_SCHEMAS, TableFilter
from cdc.capture.binlog.gtid import GtidState
from cdc.capture.binlog.tables import Logical, load_logical_types, table_from_library
from cdc.capture.records import to_record
from cdc.errors import CaptureError, ConnectionLost, classify
from cdc.models import ChangeRecord, Changes, Commit, Heartbeat, Item, Op, Position, RowChange
from cdc.store.schema import OWN_TABLES

if TYPE_CHECKING:
    from pymysqlreplication import BinLogStreamReader

    from cdc.models import Table
    from cdc.settings import CaptureSettings, Dsn

log = structlog.get_logger("cdc.reader")

# Statement-logged changes: the server (or one session) is not in ROW format.
_DML = re.compile(r"(?:/\*.*?\*/\s*)*(?:INSERT|UPDATE|DELETE|REPLACE|LOAD\s+DATA)\b", re.S)
_DDL = re.compile(r"(?:/\*.*?\*/\s*)*(?:CREATE|ALTER|DROP|RENAME)\b", re.S)
# MariaDB GTID event flag: the group is one statement with no COMMIT (DDL).
MARIADB_GTID_STANDALONE = 1
# How many row changes of one source transaction travel together through the queue.
CHUNK = 1000

RowsDecoder = Callable[[Op, Any], Iterator[RowChange]]


class BinlogSource:
    """Reads the binlog of the server `dsn` names (see `cdc.protocols.Source`)."""

    def __init__(
        self, dsn: Dsn, settings: CaptureSettings, is_mariadb: bool, blocking: bool = True
    ) -> None:
        self.dsn = dsn
        self.settings = settings
        self.is_mariadb = is_mariadb
        self.blocking = blocking  # False: stop at the end of the binlog (benchmarks)
        own = frozenset((dsn.database, table) for table in OWN_TABLES)
        self.captured = TableFilter(own, settings.include, settings.exclude)

    def current(self) -> Position:
        conn = mysql.connect(self.dsn, autocommit=True)
        try:
            return mysql.binlog_end(conn)
        finally:
            conn.close()

    def read(self, start: Position, stop: threading.Event) -> Iterator[Item]:
        return iter(BinlogReader(self, start, stop))


@dataclass(slots=True)
class _Transaction:
    """What the reader knows of the source transaction it is inside."""

    records: list[ChangeRecord] = field(default_factory=list)
    captured: bool = False  # it changed a captured table
    foreign: bool = False  # it changed anything but the daemon's own tables
    open: bool = False  # after BEGIN (or a MariaDB GTID of a transaction), before its end
    id: str = ""  # GTID, or binlog file:position of its first captured row event


class BinlogReader:
    """One read from `start`: yields `Changes`, `Commit` and `Heartbeat` items.

    Blocking; run it in a thread. `stop` is checked after every event (heartbeats make
    the read return at least every `settings.binlog_heartbeat` seconds).
    """

    def __init__(self, source: BinlogSource, start: Position, stop: threading.Event) -> None:
        self.source = source
        self.settings = source.settings
        self.start = start
        self.stop = stop
        self.gtid = GtidState(start.gtid)
        self.log_file = start.log_file
        self.log_pos = start.log_pos
        self._logical: Logical = {}
        self._tables: dict[int, tuple[Any, Table, RowsDecoder | None]] = {}
        self._parsed: dict[bytes, dict[str, Any]] = {}  # TableMap parses, by their bytes

    def __iter__(self) -> Iterator[Item]:
        self._logical = load_logical_types(self.source.dsn, self.source.is_mariadb)
        stream = library.open_stream(
            self.source.dsn,
            self.settings,
            self.start,
            self.source.is_mariadb,
            sorted(SYSTEM_SCHEMAS) if not self.settings.include else None,
            self.source.blocking,
        )
        try:
            with library.parsed_table_maps():
                yield from self._read(stream)
        except pymysql.err.Error as error:
            verdict = classify(error, where=f"{self.log_file}:{self.log_pos}")
            if verdict.retry:
                raise ConnectionLost(str(error)) from error
            raise verdict.error or error from error
        finally:
            stream.close()

    def _read(self, stream: BinLogStreamReader) -> Iterator[Item]:
        txn = _Transaction()
        for event in stream:
            kind = type(event)
            op = library.ROWS_EVENTS.get(kind)
            if op is not None:
                yield from self._rows(stream, event, op, txn)
            elif kind is XidEvent:
                yield from self._end(stream, txn, float(event.timestamp))
                txn = _Transaction()
            elif kind is MariadbGtidEvent:
                self.gtid.add_mariadb(event.gtid)
                txn.id = event.gtid
                # A standalone group (DDL) has no COMMIT/XID; any other group is a transaction.
                txn.open = not event.flags & MARIADB_GTID_STANDALONE
            elif kind is GtidEvent:
                self.gtid.add_mysql(event.gtid)
                txn.id = event.gtid
            elif kind is QueryEvent:
                if self._query(stream, event, txn):
                    yield from self._end(stream, txn, float(event.timestamp))
                    txn = _Transaction()
            elif kind is HeartbeatLogEvent:
                yield Heartbeat(self._position(), time.time())
            elif kind is RotateEvent:
                self._tables.clear()
            if self.stop.is_set():
                # An open transaction stays uncommitted downstream and is read again next time.
                return

    def _rows(
        self, stream: BinLogStreamReader, event: Any, op: Op, txn: _Transaction
    ) -> Iterator[Item]:
        if not self.source.captured(event.schema, event.table):
            txn.foreign = txn.foreign or (event.schema, event.table) not in self.source.captured.own
            return
        txn.captured = txn.foreign = True
        if not txn.id:
            txn.id = f"{stream.log_file}:{event.packet.log_pos}"
        timestamp = float(event.timestamp)
        user_column = self.settings.user_column
        for change in self._decoder(stream, event)(op, event):
            txn.records.append(to_record(change, timestamp, txn.id, user_column))
            if len(txn.records) >= CHUNK:
                yield Changes(txn.records)
                txn.records = []

    def _query(self, stream: BinLogStreamReader, event: Any, txn: _Transaction) -> bool:
        """Looks at a statement; True when it ends the transaction (or is a group alone)."""
        query = event.query.strip().upper() if isinstance(event.query, str) else ""
        if query == "BEGIN":
            txn.open = True
            return False
        schema = _text(event.schema)
        if _DML.match(query) and schema != self.source.dsn.database:
            raise CaptureError(
                f"a statement-logged change (not a row event) in schema `{schema}` at "
                f"{stream.log_file}:{stream.log_pos}",
                fix="the server or a session logs statements: SET GLOBAL binlog_format = "
                "'ROW' (and in my.cnf), end the sessions that changed it, then restart cdc "
                "(it resumes before this change)",
            )
        if txn.open and query not in ("COMMIT", "ROLLBACK"):
            # SAVEPOINT, or the DDL of CREATE TABLE ... SELECT: inside the transaction,
            # not a boundary; a DDL still changes the column types.
            if _DDL.match(query):
                self._schema_changed()
            return False
        if not txn.open:  # a DDL statement, or a COMMIT of non-transactional tables
            if query.startswith("TRUNCATE"):
                # Logged as a statement even in ROW format: no row events to capture.
                log.warning(
                    "table_truncated_without_row_events",
                    schema=schema,
                    position=f"{stream.log_file}:{stream.log_pos}",
                )
            txn.foreign = True
            self._schema_changed()
        return True

    def _end(
        self, stream: BinLogStreamReader, txn: _Transaction, timestamp: float
    ) -> Iterator[Item]:
        """The end of a source transaction: its last changes, then its commit."""
        if txn.records:
            yield Changes(txn.records)
        self.log_file, self.log_pos = stream.log_file, stream.log_pos
        yield Commit(self._position(), timestamp, txn.captured, txn.foreign)

    def _schema_changed(self) -> None:
        self._tables.clear()
        self._logical = load_logical_types(self.source.dsn, self.source.is_mariadb)

    def _position(self) -> Position:
        return Position(self.log_file, self.log_pos, str(self.gtid) if self.gtid else None)

    def _decoder(self, stream: BinLogStreamReader, event: Any) -> RowsDecoder:
        """How to read this event's rows: the compiled decoder of its table version, or
        the library's decoding."""
        fast = self.settings.decoder != "library"
        if fast:
            library.ensure_table_maps(stream, self._parsed)
        lib_table = stream.table_map[event.table_id]
        cached = self._tables.get(event.table_id)
        if cached is None or cached[0] is not lib_table:
            logical = self._logical.get((lib_table.schema, lib_table.table))
            table = table_from_library(lib_table, logical)
            decoder: RowsDecoder | None = (
                library.fast_rows(table, self.settings.binary) if fast else None
            )
            cached = self._tables[event.table_id] = (lib_table, table, decoder)
        table, decoder = cached[1], cached[2]
        if decoder is not None:
            return decoder
        binary = self.settings.binary
        return lambda op, ev: library.library_changes(table, op, ev, binary)


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value

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
from pymysqlreplication.row_event import TableMapEvent

from cdc import mysql
from cdc.capture import outbox, tags
from cdc.capture.binlog import images, library
from cdc.capture.binlog.ddl import interpret
from cdc.capture.binlog.facts import ColumnFacts
from cdc.capture.binlog.gtid import GtidState
from cdc.capture.binlog.table_map import enum_and_set_labels
from cdc.capture.binlog.tables import load_facts, read_facts, table_from_library
from cdc.capture.cascades import Cascades, foreign_keys
from cdc.capture.filters import SYSTEM_SCHEMAS, TableFilter
from cdc.capture.records import to_record
from cdc.errors import CaptureError, ConnectionLost, StartupError, classify
from cdc.models import ChangeRecord, Changes, Commit, Heartbeat, Item, Op, Position, RowChange
from cdc.store.schema import OUTBOX, OWN_TABLES

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
        self.outbox = (dsn.database, OUTBOX)

    def current(self) -> Position:
        conn = mysql.connect(self.dsn, autocommit=True)
        try:
            return mysql.binlog_end(conn)
        finally:
            conn.close()

    def read(self, start: Position, stop: threading.Event) -> Iterator[Item]:
        if start.from_triggers:
            raise StartupError(
                "the stored checkpoint is trigger mode's (the staging table), not a binlog "
                "position",
                fix="run `cdc run --capture triggers` as before, or switch to the binlog with "
                "`cdc run --from-now` once (changes made before it are not captured from the "
                "binlog; remove the triggers with `cdc triggers remove`)",
            )
        return iter(BinlogReader(self, start, stop))


@dataclass(slots=True)
class _Transaction:
    """What the reader knows of the source transaction it is inside."""

    records: list[ChangeRecord] = field(default_factory=list)
    captured: bool = False  # it changed a captured table
    foreign: bool = False  # it changed anything but the daemon's own tables
    open: bool = False  # after BEGIN (or a MariaDB GTID of a transaction), before its end
    id: str = ""  # GTID, or binlog file:position of its first captured row event
    commit_time: float | None = None  # from its GTID event; else each row event's own
    tags: dict[str, str] = field(default_factory=dict)  # of the statement being read
    outbox_ids: list[int] = field(default_factory=list)  # in `records`, not yet handed on

    def chunk(self) -> Changes:
        """The changes read so far, handed on (and forgotten here)."""
        changes = Changes(self.records, self.outbox_ids)
        self.records, self.outbox_ids = [], []
        return changes


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
        # MariaDB's JSON/UUID/INET columns as of where the read is (None on MySQL).
        self.facts: ColumnFacts | None = None
        self._unmatched: set[tuple[str, str, tuple[str, ...]]] = set()
        self.cascades = Cascades((), source.captured)  # foreign keys that cascade
        self._tables: dict[int, tuple[Any, Table, RowsDecoder]] = {}
        self._parsed: dict[bytes, dict[str, Any]] = {}  # TableMap parses, by their bytes
        # The last TableMap event of each captured table id, and the library's table of it.
        self._maps: dict[int, tuple[Any, Any]] = {}
        self._where = ""  # the rows event being decoded, for log lines

    def __iter__(self) -> Iterator[Item]:
        self._load_cascades()
        if self.source.is_mariadb:
            stored = self.start.column_facts
            # Without stored facts (the first start, at the server's current position, or
            # a checkpoint of an older version), information_schema's are the ones.
            self.facts = ColumnFacts.from_text(stored) if stored else load_facts(self.source.dsn)
        stream = library.open_stream(
            self.source.dsn,
            self.settings,
            self.start,
            self.source.is_mariadb,
            sorted(SYSTEM_SCHEMAS) if not self.settings.include else None,
            self.source.blocking,
        )
        try:
            with library.library_hooks():
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
            elif kind is TableMapEvent:
                self._table_map(stream, event)
            elif kind in library.STATEMENT_EVENTS:
                # The statement's tags apply to its row changes; its text goes no further.
                txn.tags = tags.parse(library.statement(event))
            elif kind is XidEvent:
                yield from self._end(stream, txn, float(event.timestamp))
                txn = _Transaction()
            elif kind is MariadbGtidEvent:
                self.gtid.add_mariadb(event.gtid)
                txn.id = event.gtid
                # MariaDB writes the GTID event at commit: its time is the commit's.
                txn.commit_time = float(event.timestamp)
                # A standalone group (DDL) has no COMMIT/XID; any other group is a transaction.
                txn.open = not event.flags & MARIADB_GTID_STANDALONE
            elif kind is GtidEvent:
                self.gtid.add_mysql(event.gtid)
                txn.id = event.gtid
                txn.commit_time = library.mysql_commit_time(event)
            elif library.is_anonymous_gtid(event):
                txn.commit_time = library.mysql_commit_time(event)
            elif (reason := library.undecodable(event)) is not None:
                raise CaptureError(
                    f"the binlog holds {reason.split('; ')[0]} at "
                    f"{stream.log_file}:{stream.log_pos}, which cannot be decoded",
                    fix=f"{reason.split('; ', 1)[1]}, then restart cdc (it resumes before this "
                    "event; events written meanwhile in that form cannot be read)",
                )
            elif kind is QueryEvent:
                if self._query(stream, event, txn):
                    yield from self._end(stream, txn, float(event.timestamp))
                    txn = _Transaction()
            elif kind is HeartbeatLogEvent:
                yield Heartbeat(self._position(), time.time())
            elif kind is RotateEvent:
                # Table ids are per server run: a new file may reuse them.
                self._tables.clear()
                self._maps.clear()
            if self.stop.is_set():
                # An open transaction stays uncommitted downstream and is read again next time.
                return

    def _rows(
        self, stream: BinLogStreamReader, event: Any, op: Op, txn: _Transaction
    ) -> Iterator[Item]:
        key = (event.schema, event.table)
        if key == self.source.outbox and op is Op.CREATE:
            yield from self._outbox(stream, event, txn)
            return
        if not self.source.captured(*key):
            txn.foreign = txn.foreign or key not in self.source.captured.own
            return
        txn.captured = txn.foreign = True
        self._where = f"{stream.log_file}:{event.packet.log_pos}"
        if not txn.id:
            txn.id = self._where
        # Every event of a transaction has its commit time; the row event's own header
        # time is its statement's start, up to the whole transaction earlier.
        timestamp = txn.commit_time if txn.commit_time is not None else float(event.timestamp)
        user_column = self.settings.user_column
        cascades = self.cascades
        user, context = self._attribution(txn)
        for change in self._decoder(stream, event)(op, event):
            record = to_record(change, timestamp, txn.id, user_column)
            if user is not None:  # the statement's tag comes before the row's column
                record.user_id = user
            record.context = context
            txn.records.append(record)
            if cascades and op is not Op.CREATE:
                # InnoDB's cascades have no row events: said right after their cause.
                txn.records += cascades.after(record)
            if len(txn.records) >= CHUNK:
                yield txn.chunk()

    def _attribution(self, txn: _Transaction) -> tuple[str | None, dict[str, str] | None]:
        return tags.attribution(txn.tags, self.settings.user_tag, self.settings.context_tags)

    def _outbox(self, stream: BinLogStreamReader, event: Any, txn: _Transaction) -> Iterator[Item]:
        """Rows inserted into the outbox: one application event each (the insert itself
        is not a row change of ours)."""
        txn.captured = txn.foreign = True
        self._where = f"{stream.log_file}:{event.packet.log_pos}"
        if not txn.id:
            txn.id = self._where
        timestamp = txn.commit_time if txn.commit_time is not None else float(event.timestamp)
        user, context = self._attribution(txn)
        for change in self._decoder(stream, event)(Op.CREATE, event):
            row = change.after or {}
            txn.records.append(outbox.record(row, timestamp, txn.id, user, context))
            txn.outbox_ids.append(int(row["id"]))
            if len(txn.records) >= CHUNK:
                yield txn.chunk()

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
                self._schema_changed(event)
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
            self._schema_changed(event)
        return True

    def _end(
        self, stream: BinLogStreamReader, txn: _Transaction, timestamp: float
    ) -> Iterator[Item]:
        """The end of a source transaction: its last changes, then its commit."""
        if txn.records:
            yield txn.chunk()
        self.log_file, self.log_pos = stream.log_file, stream.log_pos
        yield Commit(self._position(), timestamp, txn.captured, txn.foreign)

    def _load_cascades(self) -> None:
        conn = mysql.connect(self.source.dsn)
        try:
            keys = foreign_keys(mysql.foreign_keys(conn))
        finally:
            conn.close()
        self.cascades = Cascades(keys, self.source.captured)

    def _schema_changed(self, event: Any) -> None:
        """A statement that may change tables: the column facts (and foreign keys) follow."""
        self._tables.clear()
        if not isinstance(event.query, str):
            return
        if _DDL.match(event.query.upper()):
            self._load_cascades()
        if self.facts is None:
            return
        unknown = self.facts.apply(interpret(event.query), _text(event.schema))
        if unknown:
            # A statement not understood: information_schema for its tables, checked
            # against each table map before use.
            log.warning("ddl_not_understood", schema=_text(event.schema), tables=len(unknown))
            read_facts(self.source.dsn, self.facts, unknown)

    def _position(self) -> Position:
        gtid = str(self.gtid) if self.gtid else None
        facts = self.facts.to_text() if self.facts is not None else None
        return Position(self.log_file, self.log_pos, gtid, facts)

    def _logical_types(self, lib_table: Any) -> dict[str, str]:
        """The table version's JSON/UUID/INET columns, from facts that match its columns."""
        if self.facts is None:
            return {}
        key = (lib_table.schema, lib_table.table)
        names = [c.name for c in lib_table.columns if c.name]
        found = self.facts.logical(*key, names)
        if found is None:
            read_facts(self.source.dsn, self.facts, [key])
            found = self.facts.logical(*key, names)
            unmatched = (*key, tuple(names))
            if unmatched not in self._unmatched:
                self._unmatched.add(unmatched)
                log.warning(
                    "column_facts_from_information_schema" if found is not None
                    else "column_facts_unknown",
                    schema=key[0], table=key[1], position=self._where,
                )  # fmt: skip
        return found or {}

    def _table_map(self, stream: BinLogStreamReader, event: Any) -> None:
        """A captured table's map: kept (its raw ENUM/SET labels), and its table swapped
        for the copy the library decodes rows of without loss (see library.py)."""
        if self.settings.decoder != "library":
            library.ensure_table_maps(stream, self._parsed)
        key = (event.schema, event.table)
        if not self.source.captured(*key) and key != self.source.outbox:
            return
        original = event.get_table()
        self._maps[event.table_id] = (event, original)
        stream.table_map[event.table_id] = images.for_library_decoding(original)

    def _decoder(self, stream: BinLogStreamReader, event: Any) -> RowsDecoder:
        """How to read this event's rows: the compiled decoder of its table version, or
        the library's decoding."""
        mapped = self._maps.get(event.table_id)
        if mapped is None:  # not seen through `_table_map` (cannot happen with the library)
            raise CaptureError(
                f"a rows event of `{event.schema}`.`{event.table}` without its table map at "
                f"{stream.log_file}:{event.packet.log_pos}",
                fix="report this binlog position; capture stopped without skipping it",
            )
        table_map, lib_table = mapped
        cached = self._tables.get(event.table_id)
        if cached is None or cached[0] is not lib_table:
            cached = self._tables[event.table_id] = (
                lib_table,
                *self._compile(table_map, lib_table),
            )
        return cached[2]

    def _compile(self, table_map: Any, lib_table: Any) -> tuple[Table, RowsDecoder]:
        binary = self.settings.binary
        try:
            labels = enum_and_set_labels(library.table_map_body(table_map))
        except ValueError as error:
            log.warning("table_map_labels_unread", table=lib_table.table, error=str(error))
            labels = None
        table = table_from_library(lib_table, self._logical_types(lib_table), labels, binary)
        notice = self._notice
        if self.settings.decoder != "library":
            fast = images.fast_rows(table, binary, notice)
            if fast is not None:
                return table, fast
        return table, lambda op, ev: images.library_changes(table, op, ev, binary, notice)

    def _notice(self, table: Table, found: Any) -> None:
        images.note_values(table, found, self._where)


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value

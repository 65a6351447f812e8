"""Reads the binlog as a replica and yields row changes grouped by source transaction.

With binlog_fastpath.py, the only code that knows `pymysqlreplication`. Positions are
handed out only at transaction boundaries; a lost connection ends the read (the daemon
restarts it from the last committed checkpoint) instead of the library's own reconnect,
which resumes from the wrong place.
"""

from __future__ import annotations

import fnmatch
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pymysql
import structlog
from pymysql.constants import ER
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from pymysqlreplication.gtid import Gtid, GtidSet
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from cdc import mapper
from cdc.binlog_fastpath import TableMaps, fast_rows, library_changes
from cdc.errors import CaptureError
from cdc.models import (
    ChangeRecord,
    Changes,
    Column,
    Commit,
    Heartbeat,
    Op,
    Position,
    RowChange,
    Table,
)

log = structlog.get_logger("cdc.reader")

SYSTEM_SCHEMAS = frozenset({"mysql", "sys", "information_schema", "performance_schema"})
OWN_TABLES = ("event", "cdc_checkpoint")
# Connection errors after which reading can go on from the last committed checkpoint.
RETRYABLE_ERRORS = frozenset({2003, 2006, 2013, 2055, ER.SERVER_SHUTDOWN, 1927})
_JSON_CHECK = re.compile(r"json_valid\(`((?:[^`]|``)+)`\)", re.IGNORECASE)
# Statement-logged changes: the server (or one session) is not in ROW format.
_DML = re.compile(r"(?:/\*.*?\*/\s*)*(?:INSERT|UPDATE|DELETE|REPLACE|LOAD\s+DATA)\b", re.S)
_DDL = re.compile(r"(?:/\*.*?\*/\s*)*(?:CREATE|ALTER|DROP|RENAME)\b", re.S)
# MariaDB GTID event flag: the group is one statement with no COMMIT (DDL).
MARIADB_GTID_STANDALONE = 1
# How many row changes of one source transaction travel together through the queue.
CHUNK = 1000

Item = Changes | Commit | Heartbeat


class ConnectionLost(Exception):
    """The replica connection dropped; the caller restarts from its checkpoint."""


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
            if error.args and error.args[0] in (2006, 2013):
                raise ConnectionLost(str(error)) from error
            raise


@dataclass(frozen=True, slots=True)
class ReaderSettings:
    connection: dict[str, Any]  # pymysql.connect kwargs (host, port, user, password)
    server_id: int
    own_schema: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    user_column: str = "user_id"
    binary: str = "hex"
    decoder: str = "fast"  # "fast": cdc.decoder; "library": pymysqlreplication's rows
    heartbeat: float = 1.0
    read_timeout: float = 30.0
    gtid_resume: bool = True  # False: always resume by binlog file and offset


class TableFilter:
    """Decides, once per schema.table, whether its changes are captured."""

    def __init__(self, own_schema: str, include: tuple[str, ...], exclude: tuple[str, ...]):
        self.own = {(own_schema, t) for t in OWN_TABLES}
        self.include = include
        self.exclude = exclude
        self._cache: dict[tuple[str, str], bool] = {}

    def __call__(self, schema: str, table: str) -> bool:
        key = (schema, table)
        decided = self._cache.get(key)
        if decided is None:
            decided = self._cache[key] = self._decide(schema, table)
        return decided

    def _decide(self, schema: str, table: str) -> bool:
        if (schema, table) in self.own:
            return False  # never capture our own writes, whatever the patterns say
        name = f"{schema}.{table}"
        if self.include:
            if not any(fnmatch.fnmatchcase(name, p) for p in self.include):
                return False
        elif schema in SYSTEM_SCHEMAS:
            return False
        return not any(fnmatch.fnmatchcase(name, p) for p in self.exclude)


def table_from_library(lib_table: Any, logical: dict[str, str] | None = None) -> Table:
    """Our `Table` from a pymysqlreplication TableMap table (columns as of that event)."""
    logical = logical or {}
    columns = []
    for index, col in enumerate(lib_table.columns):
        name = col.name or f"UNKNOWN_COL{index}"
        charset = "binary" if col.collation_name == "binary" else col.character_set_name
        enum_values = tuple(col.enum_values[1:]) if col.enum_values else ()
        columns.append(
            Column(
                name=name,
                type=col.type,
                unsigned=bool(col.unsigned),
                charset=charset,
                max_length=getattr(col, "max_length", 0),
                length_size=getattr(col, "length_size", 0),
                fsp=getattr(col, "fsp", 0),
                precision=getattr(col, "precision", 0),
                decimals=getattr(col, "decimals", 0),
                bits=getattr(col, "bits", 0),
                size=getattr(col, "size", 0),
                enum_values=enum_values,
                set_values=tuple(col.set_values or ()),
                logical=logical.get(name),
            )
        )
    key = lib_table.primary_key
    primary_key = (key,) if isinstance(key, str) and key else tuple(key or ())
    return Table(lib_table.schema, lib_table.table, tuple(columns), primary_key)


class GtidState:
    """The GTID position to resume from: MariaDB's per-domain list or MySQL's executed set."""

    def __init__(self, text: str | None = None) -> None:
        self.mariadb: dict[str, str] = {}
        self.mysql: GtidSet | None = None
        self._text: str | None = None
        if text and ":" in text:
            self.mysql = GtidSet(text)
        elif text:
            for gtid in text.split(","):
                self.mariadb[gtid.split("-")[0]] = gtid.strip()

    def add_mariadb(self, gtid: str) -> None:
        self.mariadb[gtid.split("-", 1)[0]] = gtid
        self._text = None

    def add_mysql(self, gtid: str) -> None:
        if self.mysql is None:
            self.mysql = GtidSet(gtid)
        else:
            self.mysql.merge_gtid(Gtid(gtid))
        self._text = None

    def __str__(self) -> str:
        # Asked for at every commit, changed at every transaction: built once per change.
        if self._text is None:
            if self.mysql is not None:
                self._text = str(self.mysql)
            else:
                self._text = ",".join(self.mariadb[d] for d in sorted(self.mariadb, key=int))
        return self._text

    def __bool__(self) -> bool:
        return bool(self.mariadb) or self.mysql is not None


class BinlogReader:
    """Reads from `start` and yields `Changes`, `Commit` and `Heartbeat` items.

    Blocking; run it in a thread. `stop` is checked after every event (heartbeats make
    the read return at least every `settings.heartbeat` seconds).
    """

    def __init__(
        self,
        settings: ReaderSettings,
        start: Position,
        stop: threading.Event,
        is_mariadb: bool,
        blocking: bool = True,
    ) -> None:
        self.settings = settings
        self.start = start
        self.stop = stop
        self.is_mariadb = is_mariadb
        self.blocking = blocking
        self.captured = TableFilter(settings.own_schema, settings.include, settings.exclude)
        self.gtid = GtidState(start.gtid)
        self._logical: dict[tuple[str, str], dict[str, str]] = {}
        self._tables: dict[int, tuple[Any, Table, Callable[..., Any] | None]] = {}
        self.log_file = start.log_file
        self.log_pos = start.log_pos

    # -- connection -------------------------------------------------------------------

    def _stream(self) -> BinLogStreamReader:
        connection = dict(self.settings.connection)
        connection["read_timeout"] = self.settings.read_timeout
        # Resume by GTID where the position has one (it survives a failover to a replica
        # and binlog renames), by file and offset otherwise. The library's own reconnect,
        # which would replay from the first GTID, is disabled (_NoSilentReconnect).
        gtid = self.start.gtid if self.settings.gtid_resume else None
        return BinLogStreamReader(
            connection_settings=connection,
            ctl_connection_settings=dict(self.settings.connection),
            server_id=self.settings.server_id,
            resume_stream=True,
            blocking=self.blocking,
            log_file=None if gtid else self.start.log_file,
            log_pos=None if gtid else self.start.log_pos,
            auto_position=gtid,
            is_mariadb=bool(gtid) and self.is_mariadb,
            only_events=[
                WriteRowsEvent,
                UpdateRowsEvent,
                DeleteRowsEvent,
                XidEvent,
                QueryEvent,
                RotateEvent,
                GtidEvent,
                MariadbGtidEvent,
                HeartbeatLogEvent,
            ],
            ignored_schemas=sorted(SYSTEM_SCHEMAS) if not self.settings.include else None,
            slave_heartbeat=self.settings.heartbeat,
            pymysql_wrapper=_NoSilentReconnect,
            enable_logging=False,
        )

    def _load_logical_types(self) -> None:
        """Types the binlog does not tell: MariaDB's UUID/INET4/INET6 travel as BINARY,
        its JSON as LONGTEXT (recognised by the `json_valid` check MariaDB adds)."""
        self._logical = {}
        if not self.is_mariadb:
            return
        conn = pymysql.connect(**self.settings.connection)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE"
                    " FROM information_schema.COLUMNS"
                    " WHERE DATA_TYPE IN ('uuid', 'inet4', 'inet6')"
                )
                found = [(s, t, c, kind.lower()) for s, t, c, kind in cur.fetchall()]
                cur.execute(
                    "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE"
                    " FROM information_schema.CHECK_CONSTRAINTS"
                    " WHERE CHECK_CLAUSE LIKE 'json\\_valid(%%'"
                )
                for schema, table, clause in cur.fetchall():
                    match = _JSON_CHECK.fullmatch(clause.strip())
                    if match:
                        found.append((schema, table, match.group(1).replace("``", "`"), "json"))
        finally:
            conn.close()
        for schema, table, column, kind in found:
            self._logical.setdefault((schema, table), {})[column] = kind

    # -- reading ----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Item]:
        self._load_logical_types()
        stream = self._stream()
        try:
            yield from self._read(stream)
        except ConnectionLost:
            raise
        except pymysql.err.OperationalError as error:
            code = error.args[0] if error.args else 0
            if code in RETRYABLE_ERRORS:
                raise ConnectionLost(str(error)) from error
            raise capture_error(error, f"{self.log_file}:{self.log_pos}") from error
        except pymysql.err.Error as error:
            raise capture_error(error, f"{self.log_file}:{self.log_pos}") from error
        finally:
            stream.close()

    def _read(self, stream: BinLogStreamReader) -> Iterator[Item]:
        settings = self.settings
        records: list[ChangeRecord] = []
        captured = foreign = in_txn = False
        txn = ""
        stop = self.stop
        own = self.captured.own
        for event in stream:
            kind = type(event)
            if kind is WriteRowsEvent or kind is UpdateRowsEvent or kind is DeleteRowsEvent:
                if not self.captured(event.schema, event.table):
                    foreign = foreign or (event.schema, event.table) not in own
                    continue
                captured = foreign = True
                if not txn:
                    txn = f"{stream.log_file}:{event.packet.log_pos}"
                timestamp = float(event.timestamp)
                for change in self._changes(stream, event):
                    records.append(mapper.to_record(change, timestamp, txn, settings.user_column))
                    if len(records) >= CHUNK:
                        yield Changes(records)
                        records = []
            elif kind is XidEvent:
                if records:
                    yield Changes(records)
                    records = []
                self.log_file, self.log_pos = stream.log_file, stream.log_pos
                yield Commit(self._position(), float(event.timestamp), captured, foreign)
                captured = foreign = in_txn = False
                txn = ""
            elif kind is MariadbGtidEvent:
                self.gtid.add_mariadb(event.gtid)
                txn = event.gtid
                # A standalone group (DDL) has no COMMIT/XID; any other group is a transaction.
                in_txn = not event.flags & MARIADB_GTID_STANDALONE
            elif kind is GtidEvent:
                self.gtid.add_mysql(event.gtid)
                txn = event.gtid
            elif kind is QueryEvent:
                query = event.query.strip().upper() if isinstance(event.query, str) else ""
                if query == "BEGIN":
                    in_txn = True
                    continue
                if _DML.match(query) and _text(event.schema) != settings.own_schema:
                    raise CaptureError(
                        f"a statement-logged change (not a row event) in schema "
                        f"`{_text(event.schema)}` at {stream.log_file}:{stream.log_pos}",
                        fix="the server or a session logs statements: SET GLOBAL binlog_format = "
                        "'ROW' (and in my.cnf), end the sessions that changed it, then restart cdc "
                        "(it resumes before this change)",
                    )
                if in_txn and query not in ("COMMIT", "ROLLBACK"):
                    # SAVEPOINT, or the DDL of CREATE TABLE ... SELECT: inside the
                    # transaction, not a boundary; a DDL still changes the column types.
                    if _DDL.match(query):
                        self._tables.clear()
                        self._load_logical_types()
                    continue
                # The end of a transaction, or a DDL statement (its own group): a boundary.
                if records:
                    yield Changes(records)
                    records = []
                self.log_file, self.log_pos = stream.log_file, stream.log_pos
                if not in_txn:
                    if query.startswith("TRUNCATE"):
                        # Logged as a statement even in ROW format: no row events to capture.
                        log.warning(
                            "table_truncated_without_row_events",
                            schema=_text(event.schema),
                            position=f"{stream.log_file}:{stream.log_pos}",
                        )
                    foreign = True
                    self._tables.clear()
                    self._load_logical_types()
                yield Commit(self._position(), float(event.timestamp), captured, foreign)
                captured = foreign = in_txn = False
                txn = ""
            elif kind is HeartbeatLogEvent:
                yield Heartbeat(self._position(), time.time())
            elif kind is RotateEvent:
                self._tables.clear()
            if stop.is_set():
                # An open transaction stays uncommitted downstream and is read again next time.
                return

    def _position(self) -> Position:
        return Position(self.log_file, self.log_pos, str(self.gtid) if self.gtid else None)

    def _changes(self, stream: BinLogStreamReader, event: Any) -> Iterator[RowChange]:
        if self.settings.decoder != "library" and stream.table_map.__class__ is not TableMaps:
            stream.table_map = TableMaps(stream.table_map)  # reuse parsed TableMaps
        lib_table = stream.table_map[event.table_id]
        cached = self._tables.get(event.table_id)
        if cached is None or cached[0] is not lib_table:
            logical = self._logical.get((lib_table.schema, lib_table.table))
            table = table_from_library(lib_table, logical)
            cached = (lib_table, table, self._fast_decoder(table))
            self._tables[event.table_id] = cached
        table, fast = cached[1], cached[2]
        kind = type(event)
        op = (
            Op.CREATE
            if kind is WriteRowsEvent
            else Op.UPDATE
            if kind is UpdateRowsEvent
            else Op.DELETE
        )
        if fast is not None:
            yield from fast(op, event)
            return
        yield from library_changes(table, op, event, self.settings.binary)

    def _fast_decoder(self, table: Table) -> Callable[..., Iterator[RowChange]] | None:
        """The compiled row decoder for this table version, or None for the library path."""
        if self.settings.decoder == "library":
            return None
        return fast_rows(table, self.settings.binary)


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def capture_error(error: Exception, where: str) -> CaptureError:
    """A server error that ends capture, as a message naming the cause and the fix."""
    code = error.args[0] if error.args else 0
    message = error.args[1] if len(error.args) > 1 else str(error)
    if code == 1236:
        return CaptureError(
            f"the server cannot send the binlog from the stored position {where}: {message}",
            fix="the binlog was purged or the position is unknown on this server; keep binlogs "
            "longer (binlog_expire_logs_seconds / expire_logs_days), then re-baseline with "
            "`cdc run --from-now` (changes made in between are not captured)",
        )
    if code in (1044, 1045, 1142, 1143, 1227, 1370):
        return CaptureError(
            f"the capture user lacks a privilege or was refused: {message}",
            fix="GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO the capture user, "
            "and SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX on the event database "
            "(see `cdc check`)",
        )
    return CaptureError(
        f"capture failed at {where}: {message} (error {code})", fix="see the server's error log"
    )

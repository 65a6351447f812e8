"""The event table's write side: events and the checkpoint in one transaction.

Writing a batch of events and the binlog position after them atomically is what makes
capture exactly-once: after any crash the table and the checkpoint agree, and reading
resumes right after the last stored transaction.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from typing import TYPE_CHECKING, Any

import orjson
import pymysql
from pymysql.constants import ER
from pymysql.converters import escape_string

from cdc import mysql
from cdc.errors import CaptureError, LeaseLost, StartupError, server_code
from cdc.models import ChangeRecord, Position, StoredEvent
from cdc.store import checkpoint, leases
from cdc.store.checkpoint import Checkpoint
from cdc.store.schema import EVENT, OUTBOX, STAGING, columns, qualified
from cdc.wire import key_text

if TYPE_CHECKING:
    from cdc.settings import Dsn

# Keep each INSERT well under the server's max_allowed_packet (16 MiB by default), and
# the text waiting to be sent small.
MAX_STATEMENT_BYTES = 2 * 1024 * 1024
_INSERT = f"INSERT INTO {qualified('{database}', EVENT)} ({columns(quoted=False)}) VALUES "


_BACKSLASH, _BACKSLASH2, _QUOTE, _QUOTE2 = "\\", "\\\\", "'", "\\'"


def _json_sql(text: str) -> str:
    return text.replace(_BACKSLASH, _BACKSLASH2).replace(_QUOTE, _QUOTE2)


def _literal(text: str | None) -> str:
    if text is None:
        return "NULL"
    if text.isdigit():  # the common integer key needs no escaping
        return f"'{text}'"
    return f"'{escape_string(text)}'"


def utc_text(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class Store:
    """One connection, one sink transaction at a time: `add` events, then `commit` a position.

    With an `owner` (the capture lease's token) every connection is recorded with the
    lease, and every commit is fenced: it goes through only while the checkpoint row is
    still this owner's (else `LeaseLost`, and nothing of the batch is stored).
    """

    def __init__(
        self,
        dsn: Dsn,
        server: str | None = None,
        keep_in_memory: int = 10_000,
        owner: str | None = None,
    ):
        self.dsn = dsn
        self.database = dsn.database
        # Identity of the captured server, stored with the checkpoint: read again at
        # each connect (a DSN may lead to another server after a failover).
        self.server = server
        self.owner = owner
        self.keep_in_memory = keep_in_memory
        self.conn: mysql.Connection | None = None
        self.last_id = 0
        self.committed: Position | None = None  # the stored checkpoint's position
        self._facts: str | None = None  # the column facts the checkpoint holds
        # Outbox and staging rows to delete with the open transaction.
        self._outbox_ids: list[int] = []
        self._staging_ids: list[int] = []
        self._delete_outbox = f"DELETE FROM {qualified(dsn.database, OUTBOX)} WHERE id IN "
        self._delete_staging = f"DELETE FROM {qualified(dsn.database, STAGING)} WHERE id IN "
        self._max_packet = 16 * 1024 * 1024  # the server's max_allowed_packet, read at connect
        self._insert = _INSERT.replace("{database}", dsn.database)
        self._pending_id = 0
        self._open = False
        self.published: list[StoredEvent] = []
        self.overflowed = False
        self.events_in_txn = 0
        # Per (schema, table, type): the escaped SQL middle of a row, and the metrics key.
        self._shapes: dict[
            tuple[str | None, str | None, str], tuple[str, tuple[str, str, str]]
        ] = {}
        # Events per (schema, table, type) in the open sink transaction, for the metrics.
        self.counts: dict[tuple[str, str, str], int] = {}
        # VALUES tuples not yet sent: sent when they reach MAX_STATEMENT_BYTES or at commit.
        self._parts: list[str] = []
        self._size = 0

    # -- connection -------------------------------------------------------------------

    def connect(self) -> None:
        self._disconnect()
        self.conn = mysql.connect(self.dsn, database=True, autocommit=False)
        with self.conn.cursor() as cur:
            # UTC for DATETIME text we write; READ COMMITTED keeps the writer from holding
            # gap locks that would slow readers of the history.
            cur.execute("SET time_zone = '+00:00'")
            # The INSERTs are built with backslash escaping (escape_string), so make sure
            # the session uses it whatever the server's default sql_mode.
            cur.execute("SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cur.execute("SELECT @@max_allowed_packet")
            self._max_packet = int(cur.fetchone()[0])
            if self.owner is not None and not leases.set_writer_connection(
                cur, self.database, self.owner
            ):
                self.conn.rollback()
                raise self._lost()
        self.server = mysql.server_identity(self.conn)
        self.conn.commit()

    def _lost(self) -> LeaseLost:
        return LeaseLost(
            "another daemon took over capture (this one lost the capture lease); "
            "nothing more is written from here",
            fix="nothing to do if the other daemon is capturing (see `cdc status`); restart "
            "this one to make it a standby; if it was frozen or cut off, check why",
        )

    def _fence(self, cur: Any) -> None:
        """Inside the commit's transaction: the checkpoint row is still ours (and stays
        locked until the commit), or the batch is rolled back."""
        exists, stored = checkpoint.locked_owner(cur, self.database)
        if exists and stored is not None and stored != self.owner:
            assert self.conn is not None
            self.conn.rollback()
            self._forget()
            raise self._lost()

    def close(self) -> None:
        """Closes the connection; an open sink transaction is lost (the server rolls it
        back), and so is everything of it held here."""
        self._disconnect()
        self._forget()

    def _disconnect(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(pymysql.err.Error):
                self.conn.close()
            self.conn = None

    def _cursor(self) -> Any:
        if self.conn is None:
            self.connect()
        assert self.conn is not None
        return self.conn.cursor()

    # -- checkpoint -------------------------------------------------------------------

    def load_checkpoint(self) -> Checkpoint | None:
        """The stored checkpoint (None before the first one); ids go on from it."""
        with self._cursor() as cur:
            try:
                stored = checkpoint.read(cur, self.database)
            except pymysql.err.ProgrammingError as error:
                if server_code(error) == ER.NO_SUCH_TABLE:
                    raise StartupError(
                        f"the event tables do not exist in database `{self.database}`",
                        fix="run `cdc init --dsn ...` once",
                    ) from error
                raise
            cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM {qualified(self.database, EVENT)}")
            max_id = int(cur.fetchone()[0])
        assert self.conn is not None
        self.conn.commit()
        if stored is None:
            self.last_id = max_id
            return None
        if max_id > stored.last_event_id:
            raise StartupError(
                f"the event table holds ids up to {max_id}, past the checkpoint's "
                f"{stored.last_event_id}",
                fix="events were added by hand; remove them, since the daemon writes both together",
            )
        self.last_id = stored.last_event_id
        self.committed = stored.position
        self._facts = stored.position.column_facts
        return stored

    # -- writing ----------------------------------------------------------------------

    def begin(self) -> None:
        if not self._open:
            self._forget()
            self._open = True

    def _forget(self) -> None:
        """No sink transaction: nothing pending, ids go on from the last committed one."""
        self._open = False
        self._pending_id = self.last_id
        self._parts.clear()
        self._size = 0
        self.published = []
        self.overflowed = False
        self.events_in_txn = 0
        self.counts = {}
        self._outbox_ids = []
        self._staging_ids = []

    def add(
        self,
        records: list[ChangeRecord],
        outbox_ids: list[int] | None = None,
        staging_ids: list[int] | None = None,
    ) -> None:
        """Insert a chunk of events into the open sink transaction, giving them ids;
        `outbox_ids` are the outbox rows of its application events and `staging_ids` the
        staging rows it was moved from (trigger mode), deleted with them."""
        if staging_ids:
            self.begin()
            self._staging_ids += staging_ids
        if not records:
            return
        self.begin()
        if outbox_ids:
            self._outbox_ids += outbox_ids
        next_id = self._pending_id
        keep = not self.overflowed
        parts = self._parts
        counts = self.counts
        size = self._size
        ts_key, ts = -1.0, ""
        txn_key, txn = "", ""
        for record in records:
            next_id += 1
            record.id = next_id
            if record.timestamp != ts_key:
                ts_key, ts = record.timestamp, utc_text(record.timestamp)
            if record.txn != txn_key:
                txn_key, txn = record.txn, escape_string(record.txn)
            shape = self._shape(record)
            part, event = self._row(record, ts, txn, shape)
            if len(part) * 4 > self._max_packet - 4096:  # one character is 1 to 4 bytes
                self._too_big(record, part)
                if size:  # a big event goes alone, not after a statement full of others
                    self._parts, self._size = parts, size
                    self._flush()
                    parts, size = self._parts, 0
            parts.append(part)
            size += len(part)
            if keep:
                self.published.append(event)
            counts[shape[1]] = counts.get(shape[1], 0) + 1
            if size >= MAX_STATEMENT_BYTES:
                self._size = size
                self._flush()
                size = 0
        self._size = size
        self._pending_id = next_id
        self.events_in_txn += len(records)
        if keep and len(self.published) > self.keep_in_memory:
            # Too many to hand to live clients from memory: they catch up from the table.
            self.published = []
            self.overflowed = True

    def _shape(self, record: ChangeRecord) -> tuple[str, tuple[str, str, str]]:
        """The escaped SQL of a record's type, schema and table, and its metrics key."""
        key = (record.schema, record.table, record.type)
        shape = self._shapes.get(key)
        if shape is None:
            kind = str(record.type)
            shape = self._shapes[key] = (
                f"'{kind}',{_literal(record.schema)},{_literal(record.table)},",
                (record.schema or "", record.table or "", kind),
            )
        return shape

    def _row(
        self, record: ChangeRecord, ts: str, txn: str, shape: tuple[str, tuple[str, str, str]]
    ) -> tuple[str, StoredEvent]:
        """One event's VALUES tuple, and the event as stored."""
        user_id = key_text(record.user_id)
        row_id = key_text(record.row_id)
        if record.cause is not None:  # a CASCADE event names its cause by id
            record.data["cause"] = record.cause.id
            record.cause = None  # the cause's images need not stay in memory
        data = orjson.dumps(record.data).decode()
        context = orjson.dumps(record.context).decode() if record.context else None
        # JSON text has no raw control characters: only \ and ' need escaping in SQL.
        part = (
            f"({record.id},'{ts}',{_literal(user_id)},{shape[0]}{_literal(row_id)},"
            f"'{_json_sql(data)}','{txn}',{'NULL' if context is None else _literal(context)})"
        )
        event = StoredEvent(
            record.id,
            ts,
            user_id,
            shape[1][2],
            record.schema,
            record.table,
            row_id,
            data,
            record.txn,
            context,
        )
        return part, event

    def _too_big(self, record: ChangeRecord, part: str) -> None:
        """Refuse an event the server cannot take in one statement (nothing is lost: the
        capture stops, and resumes at this change once the server takes it)."""
        size = len(part.encode())
        if size <= self._max_packet - 4096:
            return
        mb = -(-size // (1024 * 1024))
        raise CaptureError(
            f"an event of `{record.schema}`.`{record.table}` is {mb} MB, more than the event "
            f"server's max_allowed_packet ({self._max_packet // (1024 * 1024)} MB)",
            fix=f"SET GLOBAL max_allowed_packet = {max(64, 2 * mb)} * 1024 * 1024 (and in "
            "my.cnf), or --binary base64 for big binary columns; then restart cdc: it resumes "
            "at this change",
        )

    def _delete_moved(self) -> None:
        """Delete the outbox rows whose events are in this transaction (already in the
        binlog or staged: an application may also delete them itself, in its own
        transaction), and the staging rows they were moved from."""
        for delete, ids in (
            (self._delete_outbox, self._outbox_ids),
            (self._delete_staging, self._staging_ids),
        ):
            for start in range(0, len(ids), 1000):
                chunk = ids[start : start + 1000]
                with self._cursor() as cur:
                    cur.execute(delete + f"({','.join(map(str, chunk))})")
        self._outbox_ids, self._staging_ids = [], []

    def _flush(self) -> None:
        """One multi-row INSERT for everything added since the last one: few round trips."""
        if self._parts:
            with self._cursor() as cur:
                cur.execute(self._insert + ",".join(self._parts))
            self._parts.clear()
            self._size = 0

    def commit(self, position: Position, source_timestamp: float | None) -> float:
        """Store the checkpoint and commit the sink transaction; returns commit seconds."""
        self.begin()
        started = time.perf_counter()
        self._flush()
        self._delete_moved()
        source_ts = utc_text(source_timestamp) if source_timestamp else None
        with self._cursor() as cur:
            if self.owner is not None:
                self._fence(cur)
            checkpoint.write(
                cur,
                self.database,
                position,
                self._pending_id,
                source_ts,
                self.server,
                owner=self.owner,
            )
        assert self.conn is not None
        self.conn.commit()
        self.last_id = self._pending_id
        self.committed = position
        if position.column_facts is not None:
            self._facts = position.column_facts
        self._open = False
        return time.perf_counter() - started

    def rollback(self) -> None:
        """Forget the open sink transaction (its source transactions will be read again)."""
        if self.conn is not None and self._open:
            try:
                self.conn.rollback()
            except pymysql.err.Error:
                self.close()
        self._forget()

    @property
    def in_transaction(self) -> bool:
        return self._open

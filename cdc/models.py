"""Plain types shared by every stage of the pipeline: table shapes, positions, records."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Op(enum.StrEnum):
    """The kind of row change, as stored in `event.type`."""

    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


CASCADE = "CASCADE"
"""The type of an event for rows a foreign key's cascade changed (see capture/cascades.py)."""

EVENT_TYPE = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
"""Every event type: CREATE, UPDATE, DELETE, CASCADE, or an application's own (LOGIN)."""

RESERVED_TYPES = frozenset({"CREATE", "UPDATE", "DELETE", CASCADE})
"""The types capture gives its own events; an application's events may not take them."""


def application_type(kind: object) -> bool:
    """Whether `kind` may name an application event."""
    return isinstance(kind, str) and bool(EVENT_TYPE.fullmatch(kind)) and kind not in RESERVED_TYPES


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a table as the binlog's TableMap describes it.

    `type` is the binlog field type (pymysqlreplication's FIELD_TYPE numbers, with
    ENUM and SET already resolved from STRING). Only the fields that matter for the
    column's type are meaningful; the rest keep their defaults.
    """

    name: str
    type: int
    unsigned: bool = False
    # Python codec name of the column's character set; "binary" for BINARY/VARBINARY/BLOB.
    charset: str | None = None
    # The character set as MySQL names it (utf8mb4, latin1), where it differs from `charset`.
    charset_name: str | None = None
    # CHAR/VARCHAR/BINARY/VARBINARY: the declared maximum length in bytes.
    max_length: int = 0
    # BLOB/TEXT/JSON/GEOMETRY: the byte size of the length prefix (1..4).
    length_size: int = 0
    # DATETIME2/TIMESTAMP2/TIME2: fractional digits (0..6).
    fsp: int = 0
    # NEWDECIMAL: precision and scale.
    precision: int = 0
    decimals: int = 0
    # BIT: number of bits.
    bits: int = 0
    # ENUM/SET: byte size of the stored value, and the allowed strings.
    size: int = 0
    enum_values: tuple[str, ...] = ()
    set_values: tuple[str, ...] = ()
    # What the binlog does not tell, found in information_schema: MariaDB's "uuid",
    # "inet4", "inet6" (stored as BINARY) and "json" (stored as LONGTEXT).
    logical: str | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """A version of a table's shape: the columns in binlog order and the primary key."""

    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True, slots=True)
class Position:
    """A place in the source binlog, always at a transaction boundary.

    `gtid` is the GTID state to resume from where the server has one: MariaDB's
    `domain-server-seq` list, or MySQL's executed GTID set.
    """

    log_file: str
    log_pos: int
    gtid: str | None = None
    # The column facts (capture/binlog/facts.py) as of this position, as stored text.
    column_facts: str | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.log_file}:{self.log_pos}"

    @property
    def from_triggers(self) -> bool:
        return self.log_file == TRIGGER_LOG


TRIGGER_LOG = "cdc_staging"
"""The `log_file` of trigger mode's positions (`log_pos`: the last staging row moved)."""


Row = dict[str, Any]
"""A row image with JSON-safe values (see values.py for the rules), keyed by column name."""


@dataclass(slots=True)
class RowChange:
    """One row change as decoded from a rows event: before and/or after image."""

    op: Op
    table: Table
    before: Row | None
    after: Row | None


@dataclass(slots=True)
class ChangeRecord:
    """One event as written to the event table and sent to clients (id assigned by the store)."""

    type: str  # an `Op`, `CASCADE`, or an application's event type
    schema: str | None  # None: an application event about no record
    table: str | None
    row_id: Any
    user_id: Any
    data: Any  # a row change's images; an application event's own data
    timestamp: float  # commit time, seconds since the epoch (UTC)
    txn: str
    id: int = 0
    key: tuple[str, ...] = ()  # the primary-key columns `row_id` was read from (redaction)
    # For a CASCADE event: the row change that caused it (its id goes into data["cause"]).
    cause: ChangeRecord | None = None
    # The statement's tags named by --context-tags (see capture/tags.py).
    context: dict[str, str] | None = None


@dataclass(slots=True)
class Changes:
    """A chunk of row changes of one source transaction (a big one arrives in many chunks).

    `outbox_ids` are the outbox rows its application events came from: the writer
    deletes them with the events, keeping the outbox small. `staging_ids` are the
    staging rows (trigger mode) they were moved from: deleted with them, so that each is
    moved exactly once."""

    records: list[ChangeRecord] = field(default_factory=list)
    outbox_ids: list[int] = field(default_factory=list)
    staging_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Commit:
    """The end of a source transaction: everything before it is durable at `position`.

    `captured` is False when the transaction held nothing the daemon writes: its position
    is stored later, with the next events. `foreign` is True when it held anything but the
    daemon's own writes (so storing its position alone is worth a write now and then).
    """

    position: Position
    timestamp: float
    captured: bool
    foreign: bool = True


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The source is idle or sending only skipped events; carries where the reader is."""

    position: Position
    timestamp: float


Item = Changes | Commit | Heartbeat
"""What a capture source hands to the writer, in source order."""


class CaptureState(enum.StrEnum):
    STARTING = "starting"
    CAPTURING = "capturing"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    STANDBY = "standby"  # waiting for the capture lease (another daemon captures)


@dataclass(frozen=True, slots=True)
class CaptureStatus:
    """Where capture is, as `/health` shows it: a frozen value the capture thread swaps
    whole, so a reader never sees half an update."""

    state: CaptureState = CaptureState.STARTING
    position: str | None = None
    gtid: str | None = None
    lag_seconds: float | None = None
    last_event_id: int = 0
    role: str | None = None  # "active" or "standby" (`cdc run`), "serve" (`cdc serve`)
    # Seconds until the checkpoint's binlog file may be purged at the server's retention
    # (at the earliest; None: not known, or the server keeps binlogs for ever).
    binlog_purge_in_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": str(self.state),
            "role": self.role,
            "position": self.position,
            "gtid": self.gtid,
            "lag_seconds": self.lag_seconds,
            "last_event_id": self.last_event_id,
            "binlog_purge_in_seconds": self.binlog_purge_in_seconds,
        }


class StoredEvent(NamedTuple):
    """One row of the event table, exactly as written (and as read back for history).

    The live stream and `/events` both render an event from this, so they always agree.
    """

    id: int
    timestamp: str  # 'YYYY-MM-DD HH:MM:SS.ffffff', UTC
    user_id: str | None
    type: str
    schema_name: str | None  # None for an application event about no record
    table_name: str | None
    row_id: str | None
    data: str  # JSON text
    txn: str
    context: str | None = None  # JSON text

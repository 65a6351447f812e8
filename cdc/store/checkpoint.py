"""The checkpoint row: where capture resumes, read by the writer and by `cdc status`.

It holds the binlog position (and GTID state) just after the last transaction whose
events are stored, the column facts as of that position, the last event id given out,
and the captured server's identity; the writer updates it in the same transaction as
the events.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from cdc.models import Position
from cdc.store.schema import CHECKPOINT, qualified

_SELECT = (
    "SELECT log_file, log_pos, gtid, last_event_id, source_timestamp, updated_at, server_uuid,"
    " column_facts, owner"
)
# column_facts: written when they changed (NULL keeps the stored ones).
_UPSERT = (
    "INSERT INTO {table} (id, log_file, log_pos, gtid, last_event_id, source_timestamp,"
    " server_uuid, column_facts, owner, updated_at)"
    " VALUES (1, %s, %s, %s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(6))"
    " ON DUPLICATE KEY UPDATE log_file = VALUES(log_file), log_pos = VALUES(log_pos),"
    " gtid = VALUES(gtid), last_event_id = VALUES(last_event_id),"
    " source_timestamp = COALESCE(VALUES(source_timestamp), source_timestamp),"
    " server_uuid = COALESCE(VALUES(server_uuid), server_uuid),"
    " column_facts = COALESCE(VALUES(column_facts), column_facts),"
    " owner = COALESCE(VALUES(owner), owner),"
    " updated_at = VALUES(updated_at)"
)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    position: Position
    last_event_id: int
    source_time: datetime.datetime | None  # commit time of the last transaction read (UTC)
    updated_at: datetime.datetime  # when the daemon wrote it (UTC)
    server: str | None  # identity of the captured server (see mysql.server_identity)
    owner: str | None = None  # the lease that wrote it (cdc_lease.owner), None without one

    @property
    def source_timestamp(self) -> float | None:
        if self.source_time is None:
            return None
        return self.source_time.replace(tzinfo=datetime.UTC).timestamp()


def read(cur: Any, database: str) -> Checkpoint | None:
    """The stored checkpoint, or None before the first one. Raises the driver's error
    when the table is missing."""
    cur.execute(f"{_SELECT} FROM {qualified(database, CHECKPOINT)} WHERE id = 1")
    row = cur.fetchone()
    if row is None:
        return None
    log_file, log_pos, gtid, last_event_id, source_time, updated_at, server, facts, owner = row
    position = Position(log_file, int(log_pos), gtid, facts)
    return Checkpoint(position, int(last_event_id), source_time, updated_at, server, owner)


def locked_owner(cur: Any, database: str) -> tuple[bool, str | None]:
    """Whether the checkpoint row exists, and its owner, the row locked until the caller's
    transaction ends (the fence: a daemon that lost its lease cannot commit after this)."""
    cur.execute(f"SELECT owner FROM {qualified(database, CHECKPOINT)} WHERE id = 1 FOR UPDATE")
    row = cur.fetchone()
    return (False, None) if row is None else (True, row[0])


def claim(cur: Any, database: str, owner: str) -> None:
    """Make `owner` the checkpoint's (a new lease holder, before its first write)."""
    cur.execute(f"UPDATE {qualified(database, CHECKPOINT)} SET owner = %s WHERE id = 1", (owner,))


def write(
    cur: Any,
    database: str,
    position: Position,
    last_event_id: int,
    source_time: str | None,
    server: str | None,
    facts: str | None = None,
    owner: str | None = None,
) -> None:
    """Store the checkpoint (inside the caller's transaction); `source_time` is UTC text;
    `facts` the position's column facts when they changed (None: unchanged)."""
    cur.execute(
        _UPSERT.format(table=qualified(database, CHECKPOINT)),
        (
            position.log_file,
            position.log_pos,
            position.gtid,
            last_event_id,
            source_time,
            server,
            facts,
            owner,
        ),
    )

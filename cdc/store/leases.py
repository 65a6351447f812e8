"""The lease row (`cdc_lease`): who captures, and the connections a new owner ends first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdc.store.schema import LEASE, qualified


@dataclass(frozen=True, slots=True)
class LeaseRow:
    owner: str  # name/token of this acquisition
    name: str  # the holder's registry name
    lock_connection: int
    writer_connection: int | None
    server: str  # the server the ids are of (a replica holds a copy of the row)
    server_boot: int  # UNIX time that server started, when the ids were recorded

    def connections(self) -> list[int]:
        return [self.lock_connection, *([self.writer_connection] if self.writer_connection else [])]

    def same_server_run(self, server: str, boot: int) -> bool:
        """Whether the ids name connections of this server as it runs now."""
        return self.server == server and abs(self.server_boot - boot) <= 5


def read(cur: Any, database: str) -> LeaseRow | None:
    cur.execute(
        "SELECT owner, name, lock_connection, writer_connection, server, server_boot"
        f" FROM {qualified(database, LEASE)} WHERE id = 1"
    )
    row = cur.fetchone()
    if row is None:
        return None
    owner, name, lock, writer, server, boot = row
    writer = None if writer is None else int(writer)
    return LeaseRow(owner, name, int(lock), writer, server, int(boot))


def write(
    cur: Any, database: str, owner: str, name: str, lock: int, server: str, boot: int
) -> None:
    """The new holder's row (its writer connection follows when the writer connects)."""
    cur.execute(
        f"INSERT INTO {qualified(database, LEASE)} (id, owner, name, lock_connection,"
        " writer_connection, server, server_boot, acquired_at) VALUES (1, %s, %s, %s, NULL, %s, %s,"
        " UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE owner = VALUES(owner), name = VALUES(name),"
        " lock_connection = VALUES(lock_connection), writer_connection = NULL,"
        " server = VALUES(server), server_boot = VALUES(server_boot),"
        " acquired_at = VALUES(acquired_at)",
        (owner, name, lock, server, boot),
    )


def set_lock_connection(cur: Any, database: str, owner: str) -> bool:
    """This connection holds the lock again for `owner`; False when the lease is another's."""
    cur.execute(
        f"UPDATE {qualified(database, LEASE)} SET lock_connection = CONNECTION_ID()"
        " WHERE id = 1 AND owner = %s",
        (owner,),
    )
    return bool(cur.rowcount)


def set_writer_connection(cur: Any, database: str, owner: str) -> bool:
    """Record this connection as `owner`'s writer; False when the lease is another's."""
    cur.execute(
        f"UPDATE {qualified(database, LEASE)} SET writer_connection = CONNECTION_ID()"
        " WHERE id = 1 AND owner = %s",
        (owner,),
    )
    return bool(cur.rowcount)


def server_boot(cur: Any) -> int:
    """When the server started (UNIX time, to a second or so): connection ids recorded in
    another server run name other connections."""
    cur.execute("SHOW GLOBAL STATUS LIKE 'Uptime'")
    uptime = int(cur.fetchone()[1])
    cur.execute("SELECT UNIX_TIMESTAMP()")
    return int(cur.fetchone()[0]) - uptime


def own_live_connections(cur: Any, ids: list[int]) -> list[int]:
    """Those of `ids` that are connections of this user still open, except this one."""
    if not ids:
        return []
    marks = ", ".join(["%s"] * len(ids))
    cur.execute(
        f"SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN ({marks})"
        " AND USER = SUBSTRING_INDEX(USER(), '@', 1) AND ID <> CONNECTION_ID()",
        ids,
    )
    return [int(row[0]) for row in cur.fetchall()]

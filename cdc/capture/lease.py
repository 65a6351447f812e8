"""The capture lease: of the `cdc run` daemons of one event database, only the holder of
`GET_LOCK('<event db>.cdc')` captures; the others are standbys that take over when it dies.

The lock lives on a connection of its own, so it goes when the holder dies (SIGKILL, a
lost host). A holder that is frozen (SIGSTOP, a stalled VM) keeps its connection: the
standby sees its registry heartbeat expire and ends its connections. A new holder ends
the old holder's recorded connections before its first write (the lock's and the
writer's), then makes the checkpoint its own: the writer's fence (see Store.commit)
refuses any batch of a holder that lost the lease.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import uuid
from typing import TYPE_CHECKING, Any

import pymysql
import structlog

from cdc import mysql
from cdc.errors import StartupError, server_code
from cdc.store import checkpoint, leases, registry

if TYPE_CHECKING:
    from cdc.settings import Dsn

log = structlog.get_logger("cdc.lease")

_NO_PRIVILEGE = 1095  # ER_KILL_DENIED_ERROR
_UNKNOWN_THREAD = 1094  # ER_NO_SUCH_THREAD: it ended meanwhile


def lock_name(database: str) -> str:
    """`<event db>.cdc`; GET_LOCK names are at most 64 characters."""
    name = f"{database}.cdc"
    if len(name) <= 64:
        return name
    return f"{database[:40]}.{hashlib.sha256(database.encode()).hexdigest()[:19]}.cdc"


class Lease:
    """`acquire(stop)` waits for the lease (True: held, `owner` is its token); `held()`
    checks it is still ours; `release()` gives it up. Blocking: run it in a thread."""

    def __init__(self, dsn: Dsn, name: str, poll: float = 1.0) -> None:
        self.dsn = dsn
        self.name = name  # this process's registry name
        self.poll = poll
        self.lock = lock_name(dsn.database)
        self.owner: str | None = None
        self._conn: mysql.Connection | None = None

    # -- acquiring ----------------------------------------------------------------------

    def try_acquire(self, wait: float = 0.0) -> bool:
        """One attempt, waiting up to `wait` seconds for the lock."""
        cur = self._cursor()
        with cur:
            cur.execute("SELECT GET_LOCK(%s, %s)", (self.lock, wait))
            if cur.fetchone()[0] == 1:
                self._take_over(cur)
                return True
            self._end_frozen_holder(cur)
        return False

    def acquire(self, stop: threading.Event) -> bool:
        """Waits for the lease until `stop` is set; a lost connection is tried again."""
        while not stop.is_set():
            try:
                if self.try_acquire(self.poll):
                    return True
            except pymysql.err.Error as error:
                log.warning("lease_attempt_failed", error=str(error))
                self._close()
                stop.wait(self.poll)
        return False

    def _take_over(self, cur: Any) -> None:
        """The lock is ours: end the old holder's connections, then own the lease row and
        the checkpoint (before any write of ours)."""
        database = self.dsn.database
        assert self._conn is not None
        server, boot = mysql.server_identity(self._conn), leases.server_boot(cur)
        old = leases.read(cur, database)
        if old is not None and old.same_server_run(server, boot):
            self._kill(cur, leases.own_live_connections(cur, old.connections()), old.name)
        self.owner = f"{self.name}/{uuid.uuid4().hex[:12]}"
        cur.execute("SELECT CONNECTION_ID()")
        lock_connection = int(cur.fetchone()[0])
        self._conn.begin()
        leases.write(cur, database, self.owner, self.name, lock_connection, server, boot)
        checkpoint.claim(cur, database, self.owner)  # waits for a killed writer's rollback
        self._conn.commit()
        log.info("lease_acquired", owner=self.owner, previous=old.name if old else None)

    def _end_frozen_holder(self, cur: Any) -> None:
        """The lock is held: if its holder's heartbeat has expired (frozen, not dead: its
        connection is still open), end the holder's connections so the lock comes free."""
        database = self.dsn.database
        cur.execute("SELECT IS_USED_LOCK(%s)", (self.lock,))
        holder = cur.fetchone()[0]
        row = leases.read(cur, database)
        if holder is None or row is None or int(holder) != row.lock_connection:
            return  # free by now, or held by a holder that has not written its row yet
        assert self._conn is not None
        here = (mysql.server_identity(self._conn), leases.server_boot(cur))
        if registry.is_alive(cur, database, row.name) or not row.same_server_run(*here):
            return
        self._kill(cur, leases.own_live_connections(cur, row.connections()), row.name)

    def _kill(self, cur: Any, ids: list[int], holder: str) -> None:
        for connection in ids:
            try:
                cur.execute(f"KILL CONNECTION {int(connection)}")
            except pymysql.err.OperationalError as error:
                if server_code(error) == _UNKNOWN_THREAD:
                    continue
                if server_code(error) == _NO_PRIVILEGE:
                    raise StartupError(
                        f"cannot end the old capture daemon's connection {connection}",
                        fix="run every daemon of this event database as the same user, or "
                        "GRANT CONNECTION ADMIN (MySQL) / CONNECTION ADMIN or SUPER (MariaDB)",
                    ) from None
                raise
            log.warning("old_holder_connection_ended", holder=holder, connection=connection)

    # -- holding ------------------------------------------------------------------------

    def held(self) -> bool:
        """Whether the lease is still ours. A lost lock connection is made again and the
        lock taken back when nobody took over meanwhile (a server restart, a network drop)."""
        if self.owner is None:
            return False
        try:
            with self._cursor() as cur:
                cur.execute("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (self.lock,))
                if cur.fetchone()[0] == 1:
                    return True
        except pymysql.err.Error as error:
            log.warning("lease_connection_lost", error=str(error))
            self._close()
        return self._take_back()

    def _take_back(self) -> bool:
        assert self.owner is not None
        try:
            with self._cursor() as cur:
                cur.execute("SELECT GET_LOCK(%s, 0)", (self.lock,))
                if cur.fetchone()[0] != 1:
                    return False
                if leases.set_lock_connection(cur, self.dsn.database, self.owner):
                    log.info("lease_taken_back", owner=self.owner)
                    return True
                cur.execute("SELECT RELEASE_LOCK(%s)", (self.lock,))
                return False
        except pymysql.err.Error as error:
            # Unknown yet (the server is away): the fence keeps the writes safe meanwhile.
            log.warning("lease_connection_lost", error=str(error))
            self._close()
            return True

    def release(self) -> None:
        if self._conn is not None and self.owner is not None:
            with contextlib.suppress(pymysql.err.Error), self._conn.cursor() as cur:
                cur.execute("SELECT RELEASE_LOCK(%s)", (self.lock,))
        self.owner = None
        self._close()

    def _cursor(self) -> Any:
        if self._conn is None:
            self._conn = mysql.connect(self.dsn, autocommit=True)
        return self._conn.cursor()

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(pymysql.err.Error):
                self._conn.close()
            self._conn = None

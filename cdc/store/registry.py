"""The registry of running processes (`cdc_registry`): `cdc run` daemons (active, standby)
and `cdc serve` workers each heartbeat a row; `cdc status` lists the live ones.

A row whose heartbeat is older than `EXPIRY` of its own intervals is a dead process's:
not listed, removed by the next heartbeat of any process. A clean stop removes its row.
Heartbeats use the server's clock, so the hosts' clocks need not agree.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pymysql
import structlog

from cdc import mysql
from cdc.store.schema import REGISTRY, qualified

if TYPE_CHECKING:
    from cdc.settings import Dsn

log = structlog.get_logger("cdc.registry")

ROLES = ("active", "standby", "serve")
EXPIRY = 3  # heartbeat intervals without a heartbeat: the process is dead
_AGE = "TIMESTAMPDIFF(MICROSECOND, heartbeat_at, UTC_TIMESTAMP(6)) / 1e6"


@dataclass(frozen=True, slots=True)
class Entry:
    """One live process as `cdc status` shows it."""

    name: str
    host: str
    pid: int
    role: str
    started_at: datetime.datetime
    heartbeat_age: float  # seconds since its last heartbeat


def default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def live(cur: Any, database: str) -> list[Entry]:
    """The processes whose heartbeat is recent, active first."""
    cur.execute(
        f"SELECT name, host, pid, role, started_at, {_AGE} FROM {qualified(database, REGISTRY)}"
        f" WHERE {_AGE} <= interval_s * {EXPIRY}"
        " ORDER BY FIELD(role, 'active', 'standby', 'serve'), name"
    )
    return [
        Entry(name, host, int(pid), role, started, float(age))
        for name, host, pid, role, started, age in cur.fetchall()
    ]


def is_alive(cur: Any, database: str, name: str) -> bool:
    cur.execute(
        f"SELECT 1 FROM {qualified(database, REGISTRY)} WHERE name = %s"
        f" AND {_AGE} <= interval_s * {EXPIRY}",
        (name,),
    )
    return cur.fetchone() is not None


class Registry:
    """This process's row: `start()` registers it and heartbeats every `interval` seconds
    (a thread, so any program may use it, asyncio or not); `role` may change while it runs
    (a standby becoming active); `stop()` removes the row.

    `cdc serve` uses it as `Registry(dsn, "serve").start()` ... `.stop()`.
    """

    def __init__(self, dsn: Dsn, role: str, name: str | None = None, interval: float = 2.0) -> None:
        if role not in ROLES:
            raise ValueError(f"role {role!r} is not one of {ROLES}")
        self.dsn = dsn
        self.role = role
        self.name = name or default_name()
        self.interval = interval
        self._table = qualified(dsn.database, REGISTRY)
        self._conn: mysql.Connection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Registry:
        """Registers now (errors come through: the table must exist), then heartbeats."""
        self._write(register=True)
        self._thread = threading.Thread(target=self._run, name="cdc-registry", daemon=True)
        self._thread.start()
        return self

    def set_role(self, role: str) -> None:
        if role not in ROLES:
            raise ValueError(f"role {role!r} is not one of {ROLES}")
        self.role = role
        self.beat()

    def beat(self) -> bool:
        """One heartbeat now; False when the server could not be reached (tried again)."""
        try:
            self._write()
            return True
        except pymysql.err.Error as error:
            log.warning("registry_heartbeat_failed", error=str(error))
            self._close()
            return False

    def stop(self) -> None:
        """Stops the heartbeats and removes the row (a clean stop)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with contextlib.suppress(pymysql.err.Error), self._cursor() as cur:
            cur.execute(f"DELETE FROM {self._table} WHERE name = %s", (self.name,))
        self._close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def _cursor(self) -> Any:
        if self._conn is None:
            self._conn = mysql.connect(self.dsn, autocommit=True)
        return self._conn.cursor()

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(pymysql.err.Error):
                self._conn.close()
            self._conn = None

    def _write(self, register: bool = False) -> None:
        with self._cursor() as cur:
            if register:
                cur.execute(
                    f"REPLACE INTO {self._table} (name, host, pid, role, interval_s, started_at,"
                    " heartbeat_at) VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP(6),"
                    " UTC_TIMESTAMP(6))",
                    (self.name, socket.gethostname(), os.getpid(), self.role, self.interval),
                )
                return
            cur.execute(
                f"UPDATE {self._table} SET heartbeat_at = UTC_TIMESTAMP(6), role = %s"
                " WHERE name = %s",
                (self.role, self.name),
            )
            if not cur.rowcount:  # removed as expired while we were stalled: again
                self._write(register=True)
            # The dead's rows go: whoever is alive sweeps them.
            cur.execute(f"DELETE FROM {self._table} WHERE {_AGE} > interval_s * {EXPIRY}")

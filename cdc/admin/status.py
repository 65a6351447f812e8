"""`cdc status`: the stored checkpoint against the server's binlog end, how long until its
binlog file may be purged, and the running daemons and workers with their roles."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pymysql

from cdc import mysql
from cdc.errors import StartupError
from cdc.store import checkpoint, registry
from cdc.store.schema import EVENT, qualified

if TYPE_CHECKING:
    from cdc.settings import Dsn
    from cdc.store.checkpoint import Checkpoint


def capture_status(dsn: Dsn) -> dict[str, Any]:
    conn = mysql.connect_for_command(dsn)
    try:
        with conn.cursor() as cur:
            try:
                stored = checkpoint.read(cur, dsn.database)
            except pymysql.err.ProgrammingError:
                raise StartupError(
                    f"no event tables in `{dsn.database}`", fix="run `cdc init --dsn ...`"
                ) from None
            master = mysql.binlog_status(cur)
            logs = mysql.binary_logs(cur)
            table = qualified(dsn.database, EVENT)
            cur.execute(f"SELECT id, timestamp FROM {table} ORDER BY id DESC LIMIT 1")
            last = cur.fetchone()
            purge_in = purge_estimate(cur, stored, master[0] if master else None)
            processes = registry.live(cur, dsn.database)
    finally:
        conn.close()
    report: dict[str, Any] = {
        "stored position": None,
        "stored gtid": None,
        "server position": f"{master[0]}:{master[1]}" if master else None,
        "behind (bytes)": None,
        "behind (seconds)": None,
        "last event id": last[0] if last else None,
        "last event time": last[1] if last else None,
        "checkpoint written": None,
        "binlog purge in (s)": purge_in,
    }
    for entry in processes:
        report[f"{entry.role} {entry.name}"] = (
            f"pid {entry.pid} on {entry.host}, up since {entry.started_at:%Y-%m-%d %H:%M:%S}Z,"
            f" heartbeat {entry.heartbeat_age:.1f} s ago"
        )
    if not processes:
        report["processes"] = "none running"
    if stored is None:
        return report
    position = stored.position
    report["stored position"] = str(position)
    report["stored gtid"] = position.gtid
    report["checkpoint written"] = stored.updated_at
    if master:
        behind = bytes_behind(logs, position.log_file, position.log_pos, master[0], int(master[1]))
        report["behind (bytes)"] = behind
        if behind == 0:
            report["behind (seconds)"] = 0
        elif stored.source_time is not None:
            now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
            report["behind (seconds)"] = round((now - stored.source_time).total_seconds(), 1)
    return report


def bytes_behind(
    logs: list[tuple[str, int]], log_file: str, log_pos: int, end_file: str, end_pos: int
) -> int | None:
    """Bytes of binlog between a stored position and the server's end; None if purged."""
    names = [name for name, _ in logs]
    if log_file not in names:
        return None
    if log_file == end_file:
        return max(0, end_pos - log_pos)
    total = 0
    for name, size in logs[names.index(log_file) :]:
        if name == log_file:
            total += size - log_pos
        elif name == end_file:
            total += end_pos
            break
        else:
            total += size
    return total


# -- event rates ----------------------------------------------------------------------

RATE_WINDOWS = (60, 300)  # seconds: `cdc status` shows events per second over each
RATE_TABLES = 20  # the busiest tables listed


@dataclass(frozen=True, slots=True)
class Rates:
    """Events per second by commit time over each of `windows` (seconds), overall and
    for the busiest tables (`schema.table`, or `-` for application events about no row)."""

    windows: tuple[int, ...]
    overall: tuple[float, ...]
    tables: tuple[tuple[str, tuple[float, ...]], ...]


def event_rates(dsn: Dsn, windows: tuple[int, ...] = RATE_WINDOWS) -> Rates:
    """Two index-friendly reads: the first id of the longest window by the
    `event_by_time` index (covering: it holds the id), then the rows from that id on by
    the primary key, counted per table and window. Only the last minutes' rows are read,
    however large the table."""
    conn = mysql.connect_for_command(dsn)
    try:
        with conn.cursor() as cur:
            return _rates(cur, qualified(dsn.database, EVENT), windows)
    finally:
        conn.close()


def _rates(cur: Any, table: str, windows: tuple[int, ...]) -> Rates:
    cutoffs = ", ".join("UTC_TIMESTAMP(6) - INTERVAL %s SECOND" for _ in windows)
    cur.execute(f"SELECT {cutoffs}", windows)
    since = cur.fetchone()
    oldest = since[windows.index(max(windows))]
    cur.execute(f"SELECT MIN(`id`) FROM {table} WHERE `timestamp` >= %s", (oldest,))
    first = cur.fetchone()[0]
    counts: dict[str, list[int]] = {}
    if first is not None:
        sums = ", ".join("SUM(`timestamp` >= %s)" for _ in windows)
        cur.execute(
            f"SELECT `schema_name`, `table_name`, {sums} FROM {table}"
            " WHERE `id` >= %s AND `timestamp` >= %s GROUP BY `schema_name`, `table_name`",
            (*since, first, oldest),
        )
        for schema, name, *numbers in cur.fetchall():
            key = f"{schema}.{name}" if schema is not None else "-"
            counts[key] = [int(n or 0) for n in numbers]
    overall = tuple(round(sum(c[i] for c in counts.values()) / w, 2) for i, w in enumerate(windows))
    busiest = sorted(counts.items(), key=lambda item: (-item[1][-1], item[0]))[:RATE_TABLES]
    tables = tuple(
        (name, tuple(round(n / w, 2) for n, w in zip(c, windows, strict=True)))
        for name, c in busiest
    )
    return Rates(windows, overall, tables)


# -- binlog purge estimate --------------------------------------------------------------


def retention_seconds(cur: Any) -> int | None:
    """How long the server keeps binlog files (seconds); None: for ever (no expiry set).
    MySQL 8 and MariaDB 10.6+ have binlog_expire_logs_seconds, older MariaDB only
    expire_logs_days; 0 means no expiry."""
    cur.execute(
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN"
        " ('binlog_expire_logs_seconds', 'expire_logs_days')"
    )
    values = {name: float(value or 0) for name, value in cur.fetchall()}
    seconds = values.get("binlog_expire_logs_seconds", 0.0)
    if not seconds:
        seconds = values.get("expire_logs_days", 0.0) * 86400
    return int(seconds) or None


def purge_in(
    retention: int | None,
    stored_file: str,
    current_file: str | None,
    last_write: datetime.datetime | None,
    now: datetime.datetime,
) -> float | None:
    """Seconds until the checkpoint's binlog file may be purged, at the earliest.

    A server purges a file once it is older than the retention, by its last write; the
    file being written is never purged (so: at least the whole retention). For an older
    file, the last transaction read from it (`last_write`) bounds its last write from
    below. Negative: it may be purged now.
    """
    if retention is None or current_file is None:
        return None
    if stored_file == current_file:
        return float(retention)
    if last_write is None:
        return None
    return round(retention - (now - last_write).total_seconds(), 1)


def purge_estimate(cur: Any, stored: Checkpoint | None, current_file: str | None) -> float | None:
    """`purge_in` for the stored checkpoint on the server `cur` is connected to."""
    if stored is None or stored.position.from_triggers:
        return None
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return purge_in(
        retention_seconds(cur),
        stored.position.log_file,
        current_file,
        stored.source_time or stored.updated_at,
        now,
    )


def daemon_purge_estimate(dsn: Dsn) -> float | None:
    """The estimate on a connection of its own (the daemon asks now and then)."""
    conn = mysql.connect(dsn, autocommit=True)
    try:
        with conn.cursor() as cur:
            stored = checkpoint.read(cur, dsn.database)
            master = mysql.binlog_status(cur)
            return purge_estimate(cur, stored, master[0] if master else None)
    finally:
        conn.close()

"""`cdc status`: the stored checkpoint against the server's binlog end."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

import pymysql

from cdc import mysql
from cdc.errors import StartupError
from cdc.store import checkpoint
from cdc.store.schema import EVENT, qualified

if TYPE_CHECKING:
    from cdc.settings import Dsn


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
    }
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

"""`cdc status`: the stored checkpoint against the server's binlog end."""

from __future__ import annotations

import datetime
from typing import Any

import pymysql

from cdc.checks import binlog_status, connect
from cdc.config import Dsn
from cdc.errors import StartupError


def capture_status(dsn: Dsn) -> dict[str, Any]:
    conn = connect(dsn.connect_kwargs())
    try:
        with conn.cursor() as cur:
            try:
                cur.execute(
                    f"SELECT log_file, log_pos, gtid, last_event_id, source_timestamp, updated_at"
                    f" FROM `{dsn.database}`.cdc_checkpoint WHERE id = 1"
                )
            except pymysql.err.ProgrammingError:
                raise StartupError(
                    f"no event tables in `{dsn.database}`", fix="run `cdc init --dsn ...`"
                ) from None
            checkpoint = cur.fetchone()
            master = binlog_status(cur)
            cur.execute("SHOW BINARY LOGS")
            logs = [(row[0], int(row[1])) for row in cur.fetchall()]
            cur.execute(
                f"SELECT id, timestamp FROM `{dsn.database}`.event ORDER BY id DESC LIMIT 1"
            )
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
    if checkpoint is None:
        return report
    log_file, log_pos, gtid, _last_id, source_ts, updated = checkpoint
    report["stored position"] = f"{log_file}:{log_pos}"
    report["stored gtid"] = gtid
    report["checkpoint written"] = updated
    if master:
        report["behind (bytes)"] = bytes_behind(
            logs, log_file, int(log_pos), master[0], int(master[1])
        )
        if report["behind (bytes)"] == 0:
            report["behind (seconds)"] = 0
        elif source_ts is not None:
            now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
            report["behind (seconds)"] = round((now - source_ts).total_seconds(), 1)
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

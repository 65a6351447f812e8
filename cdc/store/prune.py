"""Retention: deletes the oldest events, in small batches by id range.

Only a prefix of the table goes (every event from the oldest up to the first one that
is not old enough), so the events still held stay gapless and a resume from a pruned id
can be told "history starts at the first id held". The newest event is always kept: with
no checkpoint the writer numbers on from `MAX(id)`, and the reader's live hand-over
starts there too. Each batch is its own short transaction at READ COMMITTED (no gap
locks in the way of the writer, which appends above the newest id), with a pause
between, so a replica applies the deletes without a lag spike.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog

from cdc import mysql
from cdc.store.schema import EVENT, qualified

if TYPE_CHECKING:
    from cdc.settings import Dsn

log = structlog.get_logger("cdc.store")

BATCH_ROWS = 2000  # events per DELETE: a few MB of row images in the binlog at most
PAUSE_SECONDS = 0.05  # between batches, for replicas and the writer


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one pass deleted, and the oldest event still held (None: the table is empty)."""

    deleted: int
    first_id: int | None
    cutoff: str  # events with a `timestamp` before this (UTC) were old enough


def prune(
    dsn: Dsn,
    older_than: timedelta,
    *,
    batch_rows: int = BATCH_ROWS,
    pause: float = PAUSE_SECONDS,
    stop: threading.Event | None = None,
) -> Pruned:
    """Deletes the events whose `timestamp` is older than `older_than` (by the server's
    clock), oldest first, keeping the newest event. `stop` ends it between batches.
    Raises `StartupError` when the server cannot be reached, the driver's errors after."""
    conn = mysql.connect_for_command(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cur.execute("SET autocommit = 0")
            return _prune(cur, conn, dsn.database, older_than, batch_rows, pause, stop)
    finally:
        conn.close()


def _prune(
    cur: Any,
    conn: Any,
    database: str,
    older_than: timedelta,
    batch_rows: int,
    pause: float,
    stop: threading.Event | None,
) -> Pruned:
    table = qualified(database, EVENT)
    cur.execute("SELECT UTC_TIMESTAMP(6) - INTERVAL %s SECOND", (int(older_than.total_seconds()),))
    cutoff = cur.fetchone()[0]
    cur.execute(f"SELECT MIN(`id`), MAX(`id`) FROM {table}")
    low, newest = cur.fetchone()
    conn.commit()
    deleted = 0
    while low is not None and low < newest:
        end = min(low + batch_rows, newest)
        # The first event of the range not old enough: the prefix ends before it.
        cur.execute(
            f"SELECT MIN(`id`) FROM {table} WHERE `id` >= %s AND `id` < %s AND `timestamp` >= %s",
            (low, end, cutoff),
        )
        survivor = cur.fetchone()[0]
        if survivor is not None:
            end = survivor
        if end > low:
            cur.execute(f"DELETE FROM {table} WHERE `id` >= %s AND `id` < %s", (low, end))
            deleted += cur.rowcount
        conn.commit()
        if survivor is not None or end >= newest:
            low = survivor if survivor is not None else newest
            break
        # Skips any hole (trigger mode, an earlier hand-made delete) in one step.
        cur.execute(f"SELECT MIN(`id`) FROM {table} WHERE `id` >= %s", (end,))
        low = cur.fetchone()[0]
        conn.commit()
        if stop is not None and stop.wait(pause):
            break
        if stop is None and pause:
            time.sleep(pause)
    return Pruned(deleted, low, str(cutoff))


def keep_pruning(dsn: Dsn, older_than: timedelta, every: float, stop: threading.Event) -> None:
    """`cdc run --retention`: a pass at once, then one every `every` seconds, until
    `stop`. A failed pass is logged and tried again next time: retention never stops
    capture."""
    while not stop.is_set():
        try:
            done = prune(dsn, older_than, stop=stop)
        except Exception as error:  # the boundary of the retention thread
            problem = getattr(error, "problem", None) or f"{type(error).__name__}: {error}"
            log.warning("retention_failed", error=problem, retry_in=every)
        else:
            (log.info if done.deleted else log.debug)(
                "retention_pruned", deleted=done.deleted, first_id=done.first_id, before=done.cutoff
            )
        if stop.wait(every):
            return

"""Following the event table by id: the feed of `cdc serve` without Redis (or while it
is down), and the way every feed fills what it was not handed."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from cdc.store.reader import Filters, HistoryUnavailable

if TYPE_CHECKING:
    from cdc.protocols import LiveSink
    from cdc.store.reader import History

log = structlog.get_logger(__name__)

BATCH = 1000  # events read per query
EVERYTHING = Filters()


async def catch_up(history: History, sink: LiveSink, next_id: int, until: int | None = None) -> int:
    """Hands `sink` the events of the table from `next_id` on, up to its end (or past
    `until`); returns the id of the next event to hand on."""
    # Read first: every id up to it is committed, so a read that finds none of them
    # (ids the table lacks) may step over them.
    newest = await history.last_id()
    while next_id <= newest and (until is None or next_id <= until):
        rows, read_to = await history.after(next_id - 1, EVERYTHING, BATCH)
        if rows:
            sink.publish(rows)
            next_id = rows[-1].id + 1
        if len(rows) < BATCH:
            covered = newest if read_to is None else min(read_to, newest)
            next_id = max(next_id, covered + 1)
    return next_id


class TableFeed:
    """Polls the table for events after the last one handed on, every `poll` seconds."""

    def __init__(self, history: History, poll: float = 0.2) -> None:
        self.history = history
        self.poll = poll

    async def run(self, sink: LiveSink) -> None:
        next_id = await start(self.history, sink)
        down = False
        while True:
            try:
                next_id = await catch_up(self.history, sink, next_id)
                if down:
                    log.info("table_feed_resumed", next_id=next_id)
                down = False
            except HistoryUnavailable as error:
                if not down:
                    log.warning("table_feed_unavailable", error=str(error))
                down = True
            await asyncio.sleep(self.poll)


async def start(history: History, sink: LiveSink) -> int:
    """Where a feed starts: after the newest event of the table (retried until it can
    be read); the sink learns it."""
    while True:
        try:
            last = await history.last_id()
        except HistoryUnavailable as error:
            log.warning("feed_start_waiting", error=str(error))
            await asyncio.sleep(1.0)
            continue
        sink.advance(last)
        return last + 1

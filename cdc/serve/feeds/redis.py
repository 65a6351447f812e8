"""Live events from the Redis stream, checked against the event table.

Ids are gapless, so the feed knows the id it expects next. An entry after a jump (a Redis
restart, FLUSHALL, failover, a trimmed stream, entries the publisher skipped) waits
until the missing events are read from the table and handed on; duplicates and older
ids are dropped. While Redis is down the feed follows the table, and goes back to the
stream when Redis answers again. Clients never see a gap, a repeat or a reordering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from cdc.bus.reader import BusDown
from cdc.serve.feeds.table import catch_up, start
from cdc.store.reader import HistoryUnavailable

if TYPE_CHECKING:
    from cdc.bus.reader import BusReader
    from cdc.models import StoredEvent
    from cdc.protocols import LiveSink
    from cdc.store.reader import History

log = structlog.get_logger(__name__)


def split(
    next_id: int, events: Sequence[StoredEvent]
) -> tuple[list[StoredEvent], int | None, Sequence[StoredEvent]]:
    """The events of a stream read that follow on from `next_id` (older ids and repeats
    dropped), the id where they stop following on (None: they all did), and the events
    from that one on."""
    run: list[StoredEvent] = []
    for i, e in enumerate(events):
        if e.id < next_id:
            continue  # handed on already (from the table, or a repeated entry)
        if e.id > next_id:
            return run, e.id, events[i:]
        run.append(e)
        next_id += 1
    return run, None, ()


class RedisFeed:
    """The `Feed` of a `cdc serve` worker with `--bus`."""

    def __init__(self, reader: BusReader, history: History, poll: float = 0.5) -> None:
        self.reader = reader
        self.history = history
        self.poll = poll  # table polling while Redis is down; retry of Redis meanwhile
        self.next_id = 0  # the id of the next event to hand on

    async def run(self, sink: LiveSink) -> None:
        self.next_id = await start(self.history, sink)
        cursor: str | None = None
        try:
            while True:
                if cursor is None:
                    cursor = await self._connect(sink)
                    continue
                try:
                    events, cursor = await self.reader.read(cursor)
                except BusDown as error:
                    log.warning("bus_down", error=str(error), following="the event table")
                    cursor = None
                    continue
                # Nothing new: an entry may have been skipped at the end, so look.
                await self._hand_on(sink, events) if events else await self._fill(sink, None)
        finally:
            await self.reader.close()

    async def _connect(self, sink: LiveSink) -> str | None:
        """The stream's cursor once Redis answers (None: not yet; the table was followed)."""
        try:
            cursor = await self.reader.tail()
        except BusDown:
            await self._fill(sink, None)
            await asyncio.sleep(self.poll)
            return None
        # Anything committed before the cursor is in the table.
        await self._fill(sink, None)
        log.info("bus_reading", stream=self.reader.settings.stream, next_id=self.next_id)
        return cursor

    async def _hand_on(self, sink: LiveSink, events: Sequence[StoredEvent]) -> None:
        while events:
            run, jump, events = split(self.next_id, events)
            if run:
                sink.publish(run)
                self.next_id = run[-1].id + 1
            if jump is not None:
                log.debug("bus_gap", next_id=self.next_id, jump=jump)
                await self._fill(sink, jump - 1)
                if self.next_id < jump:
                    # Ids the table lacks (a sparse table): the stream goes on from `jump`.
                    self.next_id = jump

    async def _fill(self, sink: LiveSink, until: int | None) -> None:
        """The table's events from `next_id` (up to its end, or past `until`). When the
        table cannot be read, the sink is told how far events exist (its clients read
        them from the table themselves later)."""
        try:
            self.next_id = await catch_up(self.history, sink, self.next_id, until)
        except HistoryUnavailable as error:
            log.warning("bus_gap_unfilled", error=str(error), until=until)
            if until is not None:
                sink.advance(until)
                self.next_id = until + 1

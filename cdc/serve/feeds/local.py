"""The in-process feed: the capture thread of this process hands each committed batch
to the hub on the event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cdc.models import StoredEvent
    from cdc.protocols import LiveSink


class LocalFeed:
    """`publish` is the capture loop's `Publish` (called from its thread); `run` delivers
    on the loop that serves. A batch published while nobody serves is dropped: the hub
    starts from the table's last id and reads anything it was not handed from the table."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sink: LiveSink | None = None

    def publish(self, events: Sequence[StoredEvent] | None, last_id: int) -> None:
        loop, sink = self._loop, self._sink
        if loop is None or sink is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed at shutdown
            if events is None:
                loop.call_soon_threadsafe(sink.advance, last_id)
            elif events:
                loop.call_soon_threadsafe(sink.publish, events)

    async def run(self, sink: LiveSink) -> None:
        self._loop, self._sink = asyncio.get_running_loop(), sink
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            self._loop = self._sink = None

"""`cdc run`'s side of the bus: each committed batch goes to the Redis stream from a
thread of its own, so that capture never waits on Redis.

The capture thread only puts the batch on a bounded queue. When Redis is slow or down,
or the queue is full, batches are skipped (counted, logged once per outage): the event
table is the truth, and the readers fill what the stream lacks from it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import redis
import structlog

from cdc import metrics
from cdc.bus.entries import entry

if TYPE_CHECKING:
    from cdc.models import StoredEvent
    from cdc.settings import BusSettings

log = structlog.get_logger(__name__)

RETRY_SECONDS = 1.0  # between attempts to reach Redis again


class BusPublisher:
    """`publish` is called in the capture thread after each commit (a `Publish`);
    `start`/`stop` run the thread that writes to Redis (pipelined XADDs)."""

    def __init__(self, settings: BusSettings) -> None:
        assert settings.url is not None
        self.settings = settings
        self._queue: queue.Queue[Sequence[StoredEvent]] = queue.Queue(settings.queue_batches)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._down = False  # in an outage (logged once)
        self._full = False  # the queue overflowed (logged once until it drains)
        self.published = 0
        self.skipped = 0

    def publish(self, events: Sequence[StoredEvent] | None, last_id: int) -> None:
        """Never blocks. `events` None (too many to hold) is skipped: readers fill it."""
        if not events:
            if events is None:
                self._skip(0, "batch_not_held", last_id=last_id)
            return
        try:
            self._queue.put_nowait(events)
        except queue.Full:
            if not self._full:
                self._full = True
                log.warning("bus_queue_full", skipping=True, first_id=events[0].id)
            self._skip(len(events), None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cdc-bus", daemon=True)
        self._thread.start()
        log.info("bus_publishing", url=self.settings.shown, stream=self.settings.stream)

    def stop(self, timeout: float = 5.0) -> None:
        """Sends what is queued (for at most `timeout` seconds), then ends the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _skip(self, count: int, why: str | None, **details: object) -> None:
        self.skipped += count
        metrics.bus_events_skipped.inc(count)
        if why is not None:
            log.info("bus_events_skipped", reason=why, **details)

    def _client(self) -> redis.Redis:
        timeout = self.settings.timeout
        client: redis.Redis = redis.Redis.from_url(
            str(self.settings.url), socket_timeout=timeout, socket_connect_timeout=timeout
        )
        return client

    def _run(self) -> None:
        client = self._client()
        try:
            while True:
                try:
                    batch = self._queue.get(timeout=0.2)
                except queue.Empty:
                    if self._stop.is_set():
                        return
                    continue
                batches = [batch, *self._drain()]
                self._full = False
                if not self._send(client, batches):
                    self._outage(client)
        finally:
            with contextlib.suppress(redis.RedisError):
                client.close()

    def _drain(self) -> list[Sequence[StoredEvent]]:
        batches: list[Sequence[StoredEvent]] = []
        with contextlib.suppress(queue.Empty):
            while len(batches) < 100:
                batches.append(self._queue.get_nowait())
        return batches

    def _send(self, client: redis.Redis, batches: list[Sequence[StoredEvent]]) -> bool:
        pipe = client.pipeline(transaction=False)
        count = 0
        for batch in batches:
            for e in batch:
                pipe.xadd(
                    self.settings.stream,
                    entry(e),  # type: ignore[arg-type]
                    maxlen=self.settings.maxlen,
                    approximate=True,
                )
                count += 1
        try:
            pipe.execute()
        except redis.RedisError as error:
            self._skip(count, None)
            if not self._down:
                self._down = True
                log.warning(
                    "bus_down", url=self.settings.shown, error=type(error).__name__, skipping=True
                )
            return False
        self.published += count
        metrics.bus_events_published.inc(count)
        if self._down:
            self._down = False
            log.info("bus_up", url=self.settings.shown)
        return True

    def _outage(self, client: redis.Redis) -> None:
        """Until Redis answers again: what is queued is skipped (readers fill it)."""
        while not self._stop.is_set():
            for batch in self._drain():
                self._skip(len(batch), None)
            try:
                client.ping()
            except redis.RedisError:
                self._stop.wait(RETRY_SECONDS)
                continue
            return

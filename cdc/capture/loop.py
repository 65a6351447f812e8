"""The capture loop (a thread): a source's items -> bounded queue -> one sink transaction
-> commit -> publish; a lost connection is retried with backoff from the committed
checkpoint, anything else ends capture with its message.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from cdc import metrics
from cdc.capture.batching import Action, Batcher
from cdc.capture.same_server import check_resume
from cdc.errors import classify
from cdc.models import CaptureState, CaptureStatus, Changes, Commit, Heartbeat, Item, Position

if TYPE_CHECKING:
    from cdc.policy.redaction import RedactionPlan
    from cdc.protocols import Publish, Source
    from cdc.settings import CaptureSettings
    from cdc.store.writer import Store

log = structlog.get_logger("cdc.daemon")

PROGRESS_EVERY = 10.0
BACKOFF = (0.5, 1, 2, 5, 10, 30)
# A read that lasted this long before failing is a new outage: the backoff starts again.
NEW_OUTAGE_AFTER = 60.0


@dataclass
class _End:
    """The reader stopped: `error` is why, None for a requested stop or the end of a read."""

    error: BaseException | None = None


class Capture:
    """Reads `source` from the stored checkpoint into `store`, publishing each commit.

    `run()` blocks until `stop_event` is set or capture fails (then `error` holds why);
    `status` is a frozen `CaptureStatus`, swapped whole, safe to read from any thread.
    `redaction` is applied to every record before it is written (nothing clear is kept).
    """

    def __init__(
        self,
        settings: CaptureSettings,
        source: Source,
        store: Store,
        publish: Publish,
        redaction: RedactionPlan | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.store = store
        self.publish = publish
        self.redaction = redaction
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.status = CaptureStatus()
        self.events_total = 0
        self._rebaseline = settings.from_now  # only once: a reconnect resumes as usual
        self._progress_at = time.monotonic()
        self._progress_events = 0
        self.beat = time.monotonic()  # the loop went round at this time (the daemon's watchdog)

    def _update(self, **changes: object) -> None:
        self.status = dataclasses.replace(self.status, **changes)  # type: ignore[arg-type]

    # -- start position ---------------------------------------------------------------

    def start_position(self) -> Position:
        checkpoint = self.store.load_checkpoint()
        if checkpoint is not None and not self._rebaseline:
            check_resume(checkpoint, self.store.server, self.settings.gtid_resume)
            return checkpoint.position
        self._rebaseline = False
        position = self.source.current()
        # Store it at once, so a restart resumes here and not at a later "now".
        self.store.commit(position, None)
        log.info("capture_baseline", position=str(position), from_now=self.settings.from_now)
        return position

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> None:
        attempt = 0
        try:
            while not self.stop_event.is_set():
                began = self.beat = time.monotonic()
                try:
                    start = self.start_position()
                    self._update(last_event_id=self.store.last_id)
                    log.info("capture_start", position=str(start), last_event_id=self.store.last_id)
                    error = self._read_and_write(start)
                    if error is None:
                        return
                    raise error
                except Exception as error:
                    verdict = classify(error, where=str(self.status.position))
                    if not verdict.retry:
                        if verdict.error is None or verdict.error is error:
                            raise
                        raise verdict.error from error
                    self.store.close()
                    self._update(state=CaptureState.RECONNECTING)
                    if time.monotonic() - began > NEW_OUTAGE_AFTER:
                        attempt = 0  # it ran a while: a new outage, not the same one
                    delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                    attempt += 1
                    log.warning(
                        "capture_reconnect",
                        error=str(error),
                        # Where the next read starts: the stored checkpoint, not where
                        # the failed read had got to (its open transaction is read again).
                        resume=str(self.store.committed),
                        retry_in=delay,
                        attempt=attempt,
                    )
                    self.beat = time.monotonic() + delay  # waiting on purpose is not a stall
                    if self.stop_event.wait(delay):
                        return
        except BaseException as error:
            self.error = error
        finally:
            self._update(state=CaptureState.STOPPED)
            self.store.close()

    def _read_and_write(self, start: Position) -> BaseException | None:
        """Reads from `start` until stopped; returns the error that ended the read, if any."""
        items: queue.Queue[Item | _End] = queue.Queue(self.settings.queue_items)
        reader_stop = threading.Event()

        def pump() -> None:
            try:
                for item in self.source.read(start, reader_stop):
                    while True:
                        try:
                            items.put(item, timeout=0.5)
                            break
                        except queue.Full:
                            if reader_stop.is_set():
                                return
            except BaseException as error:  # handed to the writer, which decides
                items.put(_End(error))
                return
            items.put(_End())

        thread = threading.Thread(target=pump, name="cdc-reader", daemon=True)
        thread.start()
        try:
            return self._write(items, start)
        finally:
            reader_stop.set()
            thread.join(timeout=10)

    def _write(self, items: queue.Queue[Item | _End], start: Position) -> BaseException | None:
        s = self.settings
        batch = Batcher(
            s.batch_events, s.batch_seconds, s.linger_seconds, s.idle_checkpoint_seconds
        )
        batch.stored_at = time.monotonic()
        batch.stored_file = start.log_file
        self._update(state=CaptureState.CAPTURING, position=str(start), gtid=start.gtid)
        while not self.stop_event.is_set():
            item = self._next(items, batch)
            now = self.beat = time.monotonic()
            if isinstance(item, _End):
                self._finish(batch)
                return item.error
            if isinstance(item, Changes):
                if self.redaction is not None:
                    self.redaction.apply(item.records)
                self.store.add(item.records, item.outbox_ids, item.staging_ids)
                batch.changes(now, len(item.records))
            elif isinstance(item, Commit):
                batch.commit(now, item)
                if not batch.open:
                    self._update(position=str(item.position), gtid=item.position.gtid)
            elif isinstance(item, Heartbeat) and items.empty() and not batch.open:
                # The server has sent everything: nothing is waiting to be captured.
                self._update(lag_seconds=0.0)
                metrics.capture_lag_seconds.set(0.0)
            action = batch.decide(now, arrived=item is not None)
            if action is Action.COMMIT:
                self._commit(batch)
            elif action is Action.STORE_IDLE:
                assert batch.idle is not None
                self.store.commit(batch.idle.position, batch.idle.timestamp)
                batch.stored(now)
            self._log_progress(now)
        self._finish(batch)
        return None

    def _next(self, items: queue.Queue[Item | _End], batch: Batcher) -> Item | _End | None:
        timeout = batch.timeout(items.empty())
        try:
            return items.get(timeout=timeout) if timeout else items.get_nowait()
        except queue.Empty:
            return None

    def _finish(self, batch: Batcher) -> None:
        """Whole source transactions are stored even when the read failed after them: the
        checkpoint then points right at what could not be read."""
        action = batch.finish()
        if action is Action.COMMIT:
            self._commit(batch)
        elif action is Action.ROLLBACK:
            self.store.rollback()

    def _commit(self, batch: Batcher) -> None:
        commit = batch.last_commit
        assert commit is not None
        st = self.store
        count, counts = st.events_in_txn, st.counts
        events = None if st.overflowed else st.published
        seconds = st.commit(commit.position, commit.timestamp)
        self.publish(events, st.last_id)
        batch.stored(time.monotonic())
        self.events_total += count
        self._progress_events += count
        lag = max(0.0, round(time.time() - commit.timestamp, 3))
        self._update(
            position=str(commit.position),
            gtid=commit.position.gtid,
            last_event_id=st.last_id,
            lag_seconds=lag,
        )
        metrics.batch_commit_seconds.observe(seconds)
        metrics.capture_lag_seconds.set(lag)
        for (schema, table, kind), n in counts.items():
            metrics.events_captured.labels(schema, table, kind).inc(n)

    def _log_progress(self, now: float) -> None:
        if now - self._progress_at < PROGRESS_EVERY:
            return
        log.info(
            "capture_progress",
            events_per_second=round(self._progress_events / (now - self._progress_at), 1),
            lag_seconds=self.status.lag_seconds,
            position=self.status.position,
            last_event_id=self.store.last_id,
        )
        self._progress_at, self._progress_events = now, 0

"""Wires the pipeline: reader thread -> bounded queue -> store (one sink txn) -> hub.

Failure policy, chosen per cause: a lost connection is retried with backoff from the
last committed checkpoint; a server that cannot be captured, a purged position or a
row that cannot be decoded stop the daemon with a message and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pymysql
import structlog

from cdc import checks, metrics, server, store
from cdc.binlog_reader import (
    RETRYABLE_ERRORS,
    BinlogReader,
    ConnectionLost,
    Item,
    ReaderSettings,
    capture_error,
)
from cdc.config import parse_host_port
from cdc.errors import CdcError, StartupError
from cdc.history import History
from cdc.hub import Hub
from cdc.models import Changes, Commit, Heartbeat, Position, StoredEvent
from cdc.server import HttpSettings

if TYPE_CHECKING:
    from cdc.config import Settings

log = structlog.get_logger("cdc.daemon")

PROGRESS_EVERY = 10.0
IDLE_CHECKPOINT_EVERY = 30.0
BACKOFF = (0.5, 1, 2, 5, 10, 30)
# Longest wait for the next source transaction before committing what is open (seconds).
LINGER = 0.005


@dataclass
class _End:
    """The reader stopped: `error` is why, None for a requested stop or the end of a read."""

    error: BaseException | None = None


class Capture:
    """The blocking capture loop (a thread): read, write, commit, publish, retry."""

    def __init__(
        self,
        settings: Settings,
        is_mariadb: bool,
        publish: Callable[[list[StoredEvent] | None, int], None],
        blocking: bool = True,
    ) -> None:
        self.settings = settings
        self.is_mariadb = is_mariadb
        self.publish = publish
        self.blocking = blocking
        self.stop_event = threading.Event()
        self.store = store.Store(settings.dsn.connect_kwargs(), settings.dsn.database)
        self.error: BaseException | None = None
        self.status: dict[str, Any] = {
            "state": "starting",
            "position": None,
            "gtid": None,
            "lag_seconds": None,
            "last_event_id": 0,
        }
        self.events_total = 0
        self._rebaseline = settings.from_now  # only once: a reconnect resumes as usual

    def reader_settings(self) -> ReaderSettings:
        s = self.settings
        return ReaderSettings(
            connection=s.dsn.connect_kwargs(),
            server_id=s.server_id,
            own_schema=s.dsn.database,
            include=s.include,
            exclude=s.exclude,
            user_column=s.user_column,
            binary=s.binary,
            decoder=s.decoder,
        )

    # -- start position ---------------------------------------------------------------

    def start_position(self) -> Position:
        checkpoint = self.store.load_checkpoint()
        if checkpoint is not None and not self._rebaseline:
            return checkpoint.position
        self._rebaseline = False
        position = checks.binlog_end(self.settings.dsn.connect_kwargs())
        # Store it at once, so a restart resumes here and not at a later "now".
        self.store.commit(position, None)
        log.info("capture_baseline", position=str(position), from_now=self.settings.from_now)
        return position

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> None:
        attempt = 0
        try:
            while not self.stop_event.is_set():
                began = time.monotonic()
                try:
                    start = self.start_position()
                    self.status["last_event_id"] = self.store.last_id
                    log.info("capture_start", position=str(start), last_event_id=self.store.last_id)
                    error = self._read_and_write(start)
                    if error is None:
                        return
                    raise error
                except (ConnectionLost, pymysql.err.OperationalError) as error:
                    if not retryable(error):
                        raise
                    self.store.close()
                    self.status["state"] = "reconnecting"
                    if time.monotonic() - began > 60:
                        attempt = 0  # it ran a while: a new outage, not the same one
                    delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                    attempt += 1
                    log.warning(
                        "capture_reconnect",
                        error=str(error),
                        resume=str(self.status["position"]),
                        retry_in=delay,
                        attempt=attempt,
                    )
                    if self.stop_event.wait(delay):
                        return
        except pymysql.err.Error as error:
            self.error = capture_error(error, str(self.status["position"]))
        except BaseException as error:
            self.error = error
        finally:
            self.status["state"] = "stopped"
            self.store.close()

    def _read_and_write(self, start: Position) -> BaseException | None:
        """Reads from `start` until stopped; returns the error that ended the read, if any."""
        items: queue.Queue[Item | _End] = queue.Queue(self.settings.queue_items)
        reader_stop = threading.Event()
        reader = BinlogReader(
            self.reader_settings(), start, reader_stop, self.is_mariadb, self.blocking
        )

        def pump() -> None:
            try:
                for item in reader:
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
        settings = self.settings
        st = self.store
        last_commit: Commit | None = None  # newest source commit inside the open sink txn
        clean = True  # the open sink txn holds only whole source transactions
        idle_position: Commit | None = None  # newest source commit with nothing to write
        stored_at = time.monotonic()
        opened_at = 0.0
        progress_at = time.monotonic()
        progress_events = 0
        last_arrival = 0.0
        bursting = False
        self.status.update(state="capturing", position=str(start), gtid=start.gtid)

        def commit() -> None:
            nonlocal last_commit, idle_position, stored_at, progress_events
            assert last_commit is not None
            count = st.events_in_txn
            events, overflowed, counts = st.published, st.overflowed, st.counts
            seconds = st.commit(last_commit.position, last_commit.timestamp)
            self.publish(None if overflowed else events, st.last_id)
            self.events_total += count
            progress_events += count
            self._observe(last_commit, seconds, counts)
            last_commit, idle_position = None, None
            stored_at = time.monotonic()

        while True:
            if self.stop_event.is_set():
                if st.in_transaction:
                    if clean and last_commit is not None:
                        commit()
                    else:
                        st.rollback()
                return None
            try:
                # While a sink transaction is open and items come in bursts, wait briefly
                # for more: the linger groups the next source transactions into the same
                # commit. A trickle is committed at once (no latency added when idle).
                if st.in_transaction and (bursting or not items.empty()):
                    item = items.get(timeout=LINGER)
                elif st.in_transaction:
                    item = items.get_nowait()
                else:
                    item = items.get(timeout=0.5)
            except queue.Empty:
                item = None
            if isinstance(item, Commit):  # bursts of transactions, not of one's chunks
                arrived = time.monotonic()
                bursting = arrived - last_arrival < LINGER
                last_arrival = arrived
            if isinstance(item, _End):
                if st.in_transaction:
                    # Whole source transactions are stored even when the read failed after
                    # them: the checkpoint then points right at what could not be read.
                    if clean and last_commit is not None:
                        commit()
                    else:
                        st.rollback()
                return item.error
            if isinstance(item, Changes):
                if not st.in_transaction:
                    opened_at = time.monotonic()
                st.add(item.records)
                clean = False
            elif isinstance(item, Commit):
                if item.captured or st.in_transaction:
                    last_commit, clean = item, True
                else:
                    idle_position = item if item.foreign or idle_position is not None else None
                    self.status.update(position=str(item.position), gtid=item.position.gtid)
            elif isinstance(item, Heartbeat) and items.empty() and not st.in_transaction:
                # The server has sent everything: nothing is waiting to be captured.
                self.status["lag_seconds"] = 0.0
                metrics.capture_lag_seconds.set(0.0)

            now = time.monotonic()
            if (
                st.in_transaction
                and clean
                and last_commit is not None
                and (
                    item is None
                    or st.events_in_txn >= settings.batch_events
                    or now - opened_at >= settings.batch_seconds
                )
            ):
                commit()
            elif (
                not st.in_transaction
                and idle_position is not None
                and now - stored_at >= IDLE_CHECKPOINT_EVERY
            ):
                # Only foreign, uncaptured work went by: move the checkpoint now and then
                # so a restart does not re-read it all. Never for our own writes alone,
                # or each checkpoint write would cause the next (a feedback loop).
                st.commit(idle_position.position, idle_position.timestamp)
                idle_position, stored_at = None, now
            if now - progress_at >= PROGRESS_EVERY:
                log.info(
                    "capture_progress",
                    events_per_second=round(progress_events / (now - progress_at), 1),
                    lag_seconds=self.status["lag_seconds"],
                    position=self.status["position"],
                    last_event_id=st.last_id,
                )
                progress_at, progress_events = now, 0

    def _observe(
        self, commit: Commit, seconds: float, counts: dict[tuple[str, str, str], int]
    ) -> None:
        position = commit.position
        lag = max(0.0, round(time.time() - commit.timestamp, 3))
        self.status.update(
            position=str(position),
            gtid=position.gtid,
            last_event_id=self.store.last_id,
            lag_seconds=lag,
        )
        metrics.batch_commit_seconds.observe(seconds)
        metrics.capture_lag_seconds.set(lag)
        for (schema, table, kind), count in counts.items():
            metrics.events_captured.labels(schema, table, kind).inc(count)


def retryable(error: BaseException) -> bool:
    """A lost or refused connection is worth retrying; anything else is not."""
    if isinstance(error, ConnectionLost):
        return True
    code = error.args[0] if isinstance(error, pymysql.err.Error) and error.args else None
    return code in RETRYABLE_ERRORS


def preflight(settings: Settings) -> checks.ServerInfo:
    """Creates the event tables if missing, then refuses a server that cannot be captured."""
    dsn = settings.dsn
    info, results = checks.run_checks(dsn.connect_kwargs(), dsn.database)
    if any(c.name == "event tables" and not c.ok for c in results):
        store.init_schema(dsn.connect_kwargs(), dsn.database)
        info, results = checks.run_checks(dsn.connect_kwargs(), dsn.database)
    failed = [c for c in results if not c.ok]
    if failed:
        raise StartupError(
            "the server cannot be captured:\n" + "\n".join(c.line() for c in failed),
            fix="apply the fixes above, then check again with `cdc check`",
        )
    return info


@dataclass
class _Http:
    server: server.HttpServer
    history: History

    async def stop(self) -> None:
        await self.server.stop()
        await self.history.close()


class Daemon:
    """`run()` for the CLI, awaitable `serve()` for tests; `stop()` asks for a clean stop."""

    def __init__(
        self,
        settings: Settings,
        blocking: bool = True,
        on_commit: Callable[[list[StoredEvent]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.blocking = blocking
        self.on_commit = on_commit  # called in the capture thread with each committed batch
        self.capture: Capture | None = None
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.hub: Hub | None = None
        self.started = threading.Event()

    def stop(self) -> None:
        if self.capture is not None:
            self.capture.stop_event.set()
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    def status(self) -> dict[str, Any]:
        return dict(self.capture.status) if self.capture else {"state": "starting"}

    def _publish(self, events: list[StoredEvent] | None, last_id: int) -> None:
        """Called by the capture thread after each commit; hands events to the loop."""
        if self.on_commit is not None and events:
            self.on_commit(events)
        hub, loop = self.hub, self._loop
        if hub is None or loop is None:
            return
        if events is None:
            loop.call_soon_threadsafe(hub.advance, last_id)
        elif events:
            loop.call_soon_threadsafe(hub.publish, events)

    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        info = await asyncio.to_thread(preflight, self.settings)
        capture = self.capture = Capture(
            self.settings, info.is_mariadb, self._publish, self.blocking
        )
        http = await self._start_http()
        thread = threading.Thread(target=capture.run, name="cdc-capture", daemon=True)
        thread.start()
        self.started.set()
        try:
            while thread.is_alive() and not self._stopping.is_set():
                await asyncio.sleep(0.1)
        finally:
            capture.stop_event.set()
            await asyncio.to_thread(thread.join, 15)
            if http is not None:
                await http.stop()
        if capture.error is not None:
            raise capture.error

    async def _start_http(self) -> _Http | None:
        """The HTTP API next to the capture, when configured; its hub starts at the last
        stored event, so clients without an id start live from there."""
        if not self.settings.http:
            return None
        host, port = parse_host_port(self.settings.http)
        dsn = self.settings.dsn
        probe = store.Store(dsn.connect_kwargs(), dsn.database)
        try:
            checkpoint = await asyncio.to_thread(probe.load_checkpoint)
        finally:
            probe.close()
        self.hub = Hub(last_id=checkpoint.last_event_id if checkpoint else probe.last_id)
        history = History({**dsn.connect_kwargs(), "database": dsn.database})
        settings = HttpSettings(
            host=host,
            port=port,
            max_clients=self.settings.max_clients,
            health_max_lag=self.settings.health_max_lag,
            heartbeat=self.settings.heartbeat,
            client_buffer=self.settings.stream_buffer,
        )
        try:
            running = await server.start(settings, self.hub, history, self.status)
        except OSError as error:
            await history.close()
            raise StartupError(
                f"cannot listen on {self.settings.http}: {error.strerror}",
                fix="choose another address with --http host:port, or --no-http",
            ) from None
        return _Http(running, history)

    def run(self) -> int:
        """Runs until SIGTERM/SIGINT; a second SIGINT forces the exit. Returns the exit code."""

        async def main() -> None:
            loop = asyncio.get_running_loop()
            presses = 0

            def on_signal(signum: int) -> None:
                nonlocal presses
                presses += 1
                log.info("stop_requested", signal=signal.Signals(signum).name)
                if presses > 1 and signum == signal.SIGINT:
                    log.warning("forced_exit")
                    raise SystemExit(130)
                self.stop()

            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, on_signal, signum)
            await self.serve()

        try:
            asyncio.run(main())
        except CdcError as error:
            log.error("capture_failed", problem=error.problem, fix=error.fix)
            return error.exit_code
        except Exception as error:  # a bug: say so plainly, with the traceback for the report
            log.exception("capture_crashed", error=f"{type(error).__name__}: {error}")
            return 1
        log.info("stopped", events=self.capture.events_total if self.capture else 0)
        return 0

"""`cdc run`: wires a capture (binlog or trigger source -> capture loop -> store) to the HTTP
side (local feed -> hub -> streams), with signals and an orderly shutdown.

Shutdown in order: stop reading, commit the whole source transactions already read,
end the streams, close the connections.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from cdc import mysql
from cdc.admin.checks import ensure_capturable, ensure_trigger_capturable
from cdc.bus.publisher import BusPublisher
from cdc.capture.binlog.source import BinlogSource
from cdc.capture.filters import TableFilter
from cdc.capture.loop import Capture
from cdc.capture.progress import Bar, CatchUp, LogLines
from cdc.capture.triggers.mover import TriggerSource
from cdc.errors import CdcError, ConfigError, StartupError
from cdc.models import CaptureState, CaptureStatus, StoredEvent
from cdc.notify import Notifier
from cdc.policy.redaction import RedactionPlan
from cdc.secret_files import read_secret
from cdc.serve import app
from cdc.serve.feeds.local import LocalFeed
from cdc.serve.hub import Hub
from cdc.settings import CaptureMode, reload_auth
from cdc.store.prune import keep_pruning
from cdc.store.reader import History
from cdc.store.writer import Store

if TYPE_CHECKING:
    from cdc.protocols import Source
    from cdc.serve.auth import Authenticator
    from cdc.settings import Dsn, Settings

log = structlog.get_logger("cdc.daemon")


@dataclass
class _Http:
    server: app.HttpServer
    history: History

    async def stop(self) -> None:
        await self.server.stop()
        await self.history.close()


def _identity(dsn: Dsn) -> str:
    conn = mysql.connect_for_command(dsn)
    try:
        return mysql.server_identity(conn)
    finally:
        conn.close()


def redaction_plan(settings: Settings) -> RedactionPlan | None:
    """The `[[redact]]` rules with their keys read from their files (None: no rule)."""
    if not settings.redact:
        return None
    keys = {
        rule.hash_key_file: read_secret(rule.hash_key_file, "the [[redact]] hash key")
        for rule in settings.redact
        if rule.hash_key_file
    }
    return RedactionPlan(settings.redact, keys, settings.capture.user_column)


def check_redacted_keys(dsn: Dsn, plan: RedactionPlan, captured: TableFilter) -> None:
    """Refuses at start a rule that drops or masks a key column of a captured table."""
    conn = mysql.connect_for_command(dsn)
    try:
        keys = mysql.primary_keys(conn)
    finally:
        conn.close()
    plan.check_keys({name: columns for name, columns in keys.items() if captured(*name)})


class Daemon:
    """`run()` for the CLI, awaitable `serve()` for tests; `stop()` asks for a clean stop.

    `on_commit` is called in the capture thread with each committed batch (the demo
    prints them); `blocking=False` ends capture at the end of the binlog (benchmarks).
    """

    def __init__(
        self,
        settings: Settings,
        blocking: bool = True,
        on_commit: Callable[[Sequence[StoredEvent]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.blocking = blocking
        self.on_commit = on_commit
        self.capture: Capture | None = None
        self.feed = LocalFeed()
        self.bus = BusPublisher(settings.bus) if settings.bus.url else None
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: _Http | None = None
        self.started = threading.Event()
        self.notifier = Notifier.from_environment()
        self.notifier_ready = False  # READY=1 sent
        self._helpers = threading.Event()  # ends the retention and catch-up threads

    def stop(self) -> None:
        if self.capture is not None:
            self.capture.stop_event.set()
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    def status(self) -> CaptureStatus:
        return self.capture.status if self.capture else CaptureStatus()

    def _publish(self, events: Sequence[StoredEvent] | None, last_id: int) -> None:
        """The capture loop's `Publish`: after each commit, in the capture thread."""
        if self.on_commit is not None and events:
            self.on_commit(events)
        self.feed.publish(events, last_id)
        if self.bus is not None:
            self.bus.publish(events, last_id)  # never waits on Redis

    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        dsn, http_settings = self.settings.dsn, self.settings.http
        # Refusals of the configuration come first, before any connection.
        auth = app.prepare_auth(http_settings, self.settings.auth) if http_settings else None
        plan = redaction_plan(self.settings)
        source, loop_plan = await self._source(plan)
        identity = await asyncio.to_thread(_identity, dsn)
        store = Store(dsn, server=identity)
        capture = self.capture = Capture(
            self.settings.capture, source, store, self._publish, loop_plan
        )
        http = self._http = await self._start_http(auth)
        helpers = await self._start_helpers(capture)
        thread = threading.Thread(target=capture.run, name="cdc-capture", daemon=True)
        if self.bus is not None:
            self.bus.start()
        thread.start()
        for helper in helpers:
            helper.start()
        self.started.set()
        watchdog = asyncio.create_task(self.notifier.keep_alive(self._alive(thread), self._line))
        try:
            while thread.is_alive() and not self._stopping.is_set():
                if not self.notifier_ready and capture.status.state is CaptureState.CAPTURING:
                    self.notifier_ready = True
                    self.notifier.ready(self._line())
                await asyncio.sleep(0.1)
        finally:
            self.notifier.stopping()
            watchdog.cancel()
            capture.stop_event.set()
            self._helpers.set()
            await asyncio.to_thread(thread.join, 15)
            if self.bus is not None:
                await asyncio.to_thread(self.bus.stop)
            if http is not None:
                await http.stop()
            self.notifier.close()
        if capture.error is not None:
            raise capture.error

    def _alive(self, thread: threading.Thread) -> Callable[[], bool]:
        """The watchdog's test: the capture thread runs and its loop went round lately."""
        stall = 2 * self.settings.capture.read_timeout

        def alive() -> bool:
            capture = self.capture
            return (
                thread.is_alive()
                and capture is not None
                and time.monotonic() - capture.beat < stall
            )

        return alive

    def _line(self) -> str:
        """systemd's STATUS= line (`systemctl status cdc`)."""
        status = self.status()
        lag = "-" if status.lag_seconds is None else f"{status.lag_seconds:.1f}s"
        where = status.position or "-"
        return f"{status.state} at {where}, last event {status.last_event_id}, lag {lag}"

    async def _start_helpers(self, capture: Capture) -> list[threading.Thread]:
        """Threads beside capture: retention (`--retention`) and, in binlog mode, the
        catch-up display (its first measurement now, before capture moves)."""
        settings, dsn, stop = self.settings.capture, self.settings.dsn, self._helpers
        helpers = []
        age = settings.retention_age
        if age is not None:
            every = settings.retention_every_seconds
            helpers.append(
                threading.Thread(
                    target=keep_pruning,
                    args=(dsn, age, every, stop),
                    name="cdc-retention",
                    daemon=True,
                )
            )
        if settings.mode is CaptureMode.BINLOG:
            display = Bar() if sys.stderr.isatty() else LogLines()
            catch_up = CatchUp(dsn, lambda: capture.status.position, display)
            await asyncio.to_thread(catch_up.poll)
            helpers.append(
                threading.Thread(
                    target=catch_up.run, args=(stop,), name="cdc-catch-up", daemon=True
                )
            )
        return helpers

    async def _source(self, plan: RedactionPlan | None) -> tuple[Source, RedactionPlan | None]:
        """The capture source of the mode, after its checks; and the redaction the capture
        loop applies (in trigger mode the triggers and the mover redact)."""
        dsn, settings = self.settings.dsn, self.settings.capture
        if settings.mode is CaptureMode.TRIGGERS:
            if settings.from_now:
                raise ConfigError(
                    "--from-now is for binlog capture",
                    fix="leave it out: in trigger mode the staging table holds exactly the "
                    "changes not yet captured",
                )
            await asyncio.to_thread(ensure_trigger_capturable, dsn)
            if plan is not None:
                captured = TableFilter(frozenset(), settings.include, settings.exclude)
                await asyncio.to_thread(check_redacted_keys, dsn, plan, captured)
            return TriggerSource(dsn, settings, plan, self.blocking), None
        info = await asyncio.to_thread(ensure_capturable, dsn)
        source = BinlogSource(dsn, settings, info.is_mariadb, self.blocking)
        if plan is not None:
            await asyncio.to_thread(check_redacted_keys, dsn, plan, source.captured)
        return source, plan

    async def _start_http(self, auth: Authenticator | None) -> _Http | None:
        """The HTTP API next to the capture, when configured; its hub starts at the last
        stored event, so clients without an id start live from there."""
        settings = self.settings.http
        if settings is None or auth is None:
            return None
        dsn = self.settings.dsn
        probe = Store(dsn)
        try:
            checkpoint = await asyncio.to_thread(probe.load_checkpoint)
        finally:
            probe.close()
        hub = Hub(last_id=checkpoint.last_event_id if checkpoint else probe.last_id)
        history = History(dsn)
        try:
            running = await app.start(settings, hub, history, self.status, self.feed, auth)
        except OSError as error:
            await history.close()
            raise StartupError(
                f"cannot listen on {settings.listen}: {error.strerror}",
                fix="choose another address with --http host:port, or --no-http",
            ) from None
        return _Http(running, history)

    def reload(self) -> None:
        """SIGHUP: the tokens and JWT key of the configuration file again; streams and
        sessions of removed tokens end, the others go on. A bad file changes nothing."""
        if self._http is None:
            log.info("reload_ignored", reason="no HTTP API")
            return
        try:
            self._http.server.reload_auth(reload_auth(self.settings.config_file))
        except CdcError as error:
            log.error("auth_reload_failed", problem=error.problem, fix=error.fix)

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
            loop.add_signal_handler(signal.SIGHUP, self.reload)
            await self.serve()

        try:
            asyncio.run(main())
        except ConfigError as error:
            log.error("start_refused", problem=error.problem, fix=error.fix)
            return error.exit_code
        except CdcError as error:
            log.error("capture_failed", problem=error.problem, fix=error.fix)
            return error.exit_code
        except Exception as error:  # a bug: say so plainly, with the traceback for the report
            log.exception("capture_crashed", error=f"{type(error).__name__}: {error}")
            return 1
        log.info("stopped", events=self.capture.events_total if self.capture else 0)
        return 0

"""`cdc serve`: the HTTP side only, for as many processes as needed. Live events come from
the Redis stream (`--bus`), or from following the event table; history and resumes from
the table. No binlog connection: the binlog library is not even imported.

`--workers N`: a parent that starts N such processes on one port (SO_REUSEPORT),
restarts one that dies, forwards SIGTERM and SIGHUP, and serves nothing itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import structlog

from cdc.errors import CdcError, ConfigError, StartupError
from cdc.models import CaptureStatus
from cdc.notify import Notifier
from cdc.settings import reload_auth

if TYPE_CHECKING:
    from cdc.protocols import Feed
    from cdc.serve.app import HttpServer
    from cdc.settings import Settings
    from cdc.store.reader import History
    from cdc.store.registry import Registry

log = structlog.get_logger("cdc.serving")

ROLE = "serve"


class Server:
    """One `cdc serve` process: `run()` for the CLI, awaitable `serve()` for tests.

    A `worker` of the supervisor shares its port, and stops when the supervisor is gone
    (even killed with SIGKILL), so that no worker outlives it."""

    def __init__(self, settings: Settings, worker: bool = False) -> None:
        if settings.http is None:
            raise ConfigError("cdc serve needs an HTTP address", fix="give --http host:port")
        self.settings = settings
        self.worker = worker
        self._parent = os.getppid()
        self.http: HttpServer | None = None
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    def _feed(self, history: History) -> Feed:
        bus = self.settings.bus
        if bus.url is None:
            from cdc.serve.feeds.table import TableFeed

            return TableFeed(history)
        from cdc.bus.reader import BusReader
        from cdc.serve.feeds.redis import RedisFeed

        return RedisFeed(BusReader(bus), history)

    async def serve(self) -> None:
        from cdc.serve import app
        from cdc.serve.hub import Hub
        from cdc.store.reader import History, HistoryUnavailable

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        settings = self.settings.http
        assert settings is not None
        auth = app.prepare_auth(settings, self.settings.auth)
        history = History(self.settings.dsn)
        registry: Registry | None = None
        try:
            try:
                last = await history.last_id()
            except HistoryUnavailable as error:
                raise StartupError(error.problem, fix=error.fix) from None
            hub = Hub(last_id=last)
            registry = await self._register()
            try:
                self.http = await app.start(
                    settings,
                    hub,
                    history,
                    CaptureStatus,
                    self._feed(history),
                    auth,
                    role=ROLE,
                    reuse_port=self.worker,
                )
            except OSError as error:
                raise StartupError(
                    f"cannot listen on {settings.listen}: {error.strerror}",
                    fix="choose another address with --http host:port",
                ) from None
            log.info(
                "serving",
                bus=self.settings.bus.shown,
                stream=self.settings.bus.stream,
                feed="redis" if self.settings.bus.url else "table",
            )
            await self._until_stopped(settings.listen)
        finally:
            if self.http is not None:
                await self.http.stop()
            if registry is not None:
                await asyncio.to_thread(registry.stop)
            await history.close()

    async def _until_stopped(self, listen: str) -> None:
        """Serves until a stop is asked (or, for a worker, its supervisor is gone), telling
        systemd when it is not a worker (its supervisor speaks for it: NotifyAccess=main)."""
        assert self._stopping is not None
        orphaned = asyncio.create_task(self._orphaned()) if self.worker else None
        notifier = Notifier(None) if self.worker else Notifier.from_environment()
        notifier.ready(f"serving on {listen}")
        alive = asyncio.create_task(notifier.keep_alive(lambda: True))
        await self._stopping.wait()
        notifier.stopping()
        for task in (orphaned, alive):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        notifier.close()

    async def _register(self) -> Registry | None:
        """This process's row in the registry (`cdc status` lists it); a store without
        the registry table (not migrated yet) is served all the same, with a warning."""
        from cdc.store.registry import Registry

        registry = Registry(
            self.settings.dsn, ROLE, interval=self.settings.capture.heartbeat_seconds
        )
        try:
            await asyncio.to_thread(registry.start)
        except Exception as error:  # the registry is for `cdc status`: never a reason to stop
            log.warning("registry_unavailable", error=str(error), fix="run `cdc init --dsn ...`")
            return None
        return registry

    async def _orphaned(self) -> None:
        while os.getppid() == self._parent:
            await asyncio.sleep(1.0)
        log.warning("supervisor_gone", parent=self._parent)
        self.stop()

    def reload(self) -> None:
        """SIGHUP: the `[auth]` of the configuration file again (a bad file changes nothing)."""
        if self.http is None:
            return
        try:
            self.http.reload_auth(reload_auth(self.settings.config_file))
        except CdcError as error:
            log.error("auth_reload_failed", problem=error.problem, fix=error.fix)

    def run(self) -> int:
        """Serves until SIGTERM/SIGINT; returns the exit code."""

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.stop)
            loop.add_signal_handler(signal.SIGHUP, self.reload)
            await self.serve()

        try:
            asyncio.run(main())
        except CdcError as error:
            log.error("serve_refused", problem=error.problem, fix=error.fix)
            return error.exit_code
        except Exception as error:  # a bug: say so plainly, with the traceback
            log.exception("serve_crashed", error=f"{type(error).__name__}: {error}")
            return 1
        log.info("stopped")
        return 0


WORKER_FLAG = "--serve-worker"  # hidden: marks a process the supervisor started
RESTART_DELAY = 1.0  # seconds before a dead worker is started again
GIVE_UP = 10  # restarts within a minute after which the supervisor gives up
_SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")  # the parent's alone


def _listening(address: tuple[str, int]) -> bool:
    """True when something accepts connections on `address` (a worker listens)."""
    host = "127.0.0.1" if address[0] in ("", "0.0.0.0") else address[0]
    host = "::1" if host == "::" else host
    try:
        with socket.create_connection((host, address[1]), timeout=1.0):
            return True
    except OSError:
        return False


class Supervisor:
    """Runs `workers` copies of this very command (with `WORKER_FLAG`) and keeps them up.

    Under systemd (`NOTIFY_SOCKET`) it says READY=1 once the port accepts connections,
    and WATCHDOG=1 while every worker runs; the workers say nothing themselves."""

    def __init__(self, workers: int, argv: list[str], address: tuple[str, int]) -> None:
        self.workers = workers
        self.command = [sys.executable, "-m", "cdc", *argv, WORKER_FLAG]
        self.address = address
        self.children: list[subprocess.Popen[bytes] | None] = [None] * workers
        self._stopping = False
        self._restarts: list[float] = []
        self.notifier = Notifier.from_environment()
        self._ready = False
        self._pinged = 0.0

    def _start(self, slot: int) -> None:
        # A SIGHUP before the worker's own handler is in place would end it: ignored until
        # then (it reads the configuration at start anyway).
        env = {k: v for k, v in os.environ.items() if k not in _SYSTEMD_VARIABLES}
        child = subprocess.Popen(
            self.command,
            env=env,
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
        )
        self.children[slot] = child
        log.info("worker_started", worker=slot, pid=child.pid)

    def _signal(self, signum: int, _frame: object) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._stopping = True
        for child in self.children:
            if child is not None and child.poll() is None:
                child.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._signal)
        for slot in range(self.workers):
            self._start(slot)
        try:
            while not self._stopping:
                code = self._watch()
                if code is not None:
                    return code
                self._notify()
                time.sleep(0.2)
            return 0
        finally:
            self.notifier.stopping()
            self._end_all()
            self.notifier.close()

    def _notify(self) -> None:
        """READY=1 once a worker listens; WATCHDOG=1 while all of them run."""
        if not self.notifier.enabled:
            return
        if not self._ready:
            self._ready = _listening(self.address)
            if self._ready:
                self.notifier.ready(f"{self.workers} workers on port {self.address[1]}")
            return
        every = self.notifier.watchdog_interval
        now = time.monotonic()
        running = all(c is not None and c.poll() is None for c in self.children)
        if every is not None and now - self._pinged >= every and running:
            self.notifier.watchdog()
            self._pinged = now

    def _watch(self) -> int | None:
        """Restarts dead workers; an exit code when the workers cannot run."""
        for slot, child in enumerate(self.children):
            if child is None or child.poll() is None or self._stopping:
                continue
            code = child.returncode
            if code in (ConfigError.exit_code, StartupError.exit_code):
                log.error(
                    "worker_cannot_start",
                    worker=slot,
                    exit_code=code,
                    fix="see the worker's message above",
                )
                return int(code)
            now = time.monotonic()
            self._restarts = [t for t in self._restarts if now - t < 60] + [now]
            if len(self._restarts) > GIVE_UP:
                log.error("workers_keep_dying", restarts=len(self._restarts), within_s=60)
                return 1
            log.warning("worker_died", worker=slot, pid=child.pid, exit_code=code)
            time.sleep(RESTART_DELAY)
            self._start(slot)
        return None

    def _end_all(self) -> None:
        for child in self.children:
            if child is not None and child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 30
        for child in self.children:
            if child is None:
                continue
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        log.info("workers_stopped", workers=self.workers)

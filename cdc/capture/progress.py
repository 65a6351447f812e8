"""Catching up a backlog: how many binlog bytes lie between capture and the server's end,
how fast they shrink, how long is left. A `rich` bar on a terminal, log lines otherwise.

The arithmetic (`binlog_offset`, `Tracker`) is pure; `CatchUp` polls the server's binlog
list on its own connection and is fed capture's position (the loop's status).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from cdc import mysql
from cdc.store import checkpoint

if TYPE_CHECKING:
    from cdc.settings import Dsn

log = structlog.get_logger("cdc.daemon")

SHOW_FROM_BYTES = 1 << 20  # a backlog this large is shown; smaller ones pass unnoticed
CAUGHT_UP_BYTES = 64 << 10  # within this of the end counts as caught up
LOG_EVERY = 10.0  # seconds between progress lines when not on a terminal


def binlog_offset(logs: list[tuple[str, int]], log_file: str, log_pos: int) -> int | None:
    """The byte offset of a position in the server's binlogs laid end to end (the files
    of `SHOW BINARY LOGS`, oldest first); None when the file is not (or no longer) there."""
    total = 0
    for name, size in logs:
        if name == log_file:
            return total + log_pos
        total += size
    return None


@dataclass(frozen=True, slots=True)
class Estimate:
    done: int  # bytes captured since catching up began
    total: int  # bytes to capture since then (grows while the server writes)
    rate: float | None  # bytes per second over the last window (None: not known yet)

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.done)

    @property
    def seconds_left(self) -> float | None:
        if not self.rate or self.rate <= 0:
            return None
        return self.remaining / self.rate


class Tracker:
    """Turns (time, capture offset, end offset) samples into an `Estimate`; the rate is
    measured over the last `window` seconds, so it follows a server's changing load."""

    def __init__(self, window: float = 30.0) -> None:
        self.window = window
        self.start: int | None = None
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def update(self, now: float, offset: int, end: int) -> Estimate:
        if self.start is None or offset < self.start:
            self.start = offset
            self._samples.clear()
        self._samples.append((now, offset))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()
        first_time, first_offset = self._samples[0]
        rate = (offset - first_offset) / (now - first_time) if now > first_time else None
        return Estimate(offset - self.start, max(end - self.start, offset - self.start), rate)


def describe(estimate: Estimate) -> dict[str, Any]:
    """The estimate as log fields."""
    left = estimate.seconds_left
    return {
        "backlog_bytes": estimate.remaining,
        "done_bytes": estimate.done,
        "bytes_per_second": None if estimate.rate is None else round(estimate.rate),
        "seconds_left": None if left is None else round(left, 1),
    }


class Display(Protocol):
    def start(self, estimate: Estimate) -> None: ...
    def update(self, estimate: Estimate) -> None: ...
    def finish(self, estimate: Estimate) -> None: ...


class LogLines:
    """Not on a terminal: a line when catching up begins, one every `LOG_EVERY` seconds,
    one at the end."""

    def __init__(self, every: float = LOG_EVERY) -> None:
        self.every = every
        self._last = 0.0

    def start(self, estimate: Estimate) -> None:
        self._last = time.monotonic()
        log.info("catch_up_started", **describe(estimate))

    def update(self, estimate: Estimate) -> None:
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            log.info("catch_up_progress", **describe(estimate))

    def finish(self, estimate: Estimate) -> None:
        log.info("caught_up", **describe(estimate))


class Bar:
    """On a terminal: a rich progress bar with the rate and the time left."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("catching up"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[rate]}  {task.fields[left]} left"),
            console=console or Console(stderr=True),
            transient=True,
        )
        self._task: Any = None

    def start(self, estimate: Estimate) -> None:
        self._progress.start()
        self._task = self._progress.add_task("catch-up", total=estimate.total, rate="", left="?")
        self.update(estimate)

    def update(self, estimate: Estimate) -> None:
        left = estimate.seconds_left
        self._progress.update(
            self._task,
            total=estimate.total,
            completed=estimate.done,
            rate="" if estimate.rate is None else f"{estimate.rate / 1e6:.1f} MB/s",
            left="?" if left is None else time.strftime("%H:%M:%S", time.gmtime(left)),
        )

    def finish(self, estimate: Estimate) -> None:
        self._progress.stop()
        log.info("caught_up", **describe(estimate))


class CatchUp:
    """Polls the server's binlog end while capture runs (every `every` seconds while it
    shows a backlog, every `idle_every` otherwise), and shows a backlog larger than
    `SHOW_FROM_BYTES` until capture is within `CAUGHT_UP_BYTES`.

    `position()` is capture's position (`file:offset`, None before it has one: then the
    stored checkpoint is used). Call `poll()` once before capture starts, so the
    backlog at start is measured before capture moves, then `run(stop)` in a thread.
    """

    def __init__(
        self,
        dsn: Dsn,
        position: Callable[[], str | None],
        display: Display,
        every: float = 1.0,
        idle_every: float = 5.0,
    ) -> None:
        self.dsn = dsn
        self.position = position
        self.display = display
        self.every = every  # while a backlog is shown
        self.idle_every = idle_every  # otherwise: a backlog may build up (an outage)
        self.tracker: Tracker | None = None
        self._conn: Any = None

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.wait(self.every if self.tracker else self.idle_every):
                self.poll()
        finally:
            if self._conn is not None:
                self._conn.close()

    def poll(self) -> None:
        """One measurement; a server that cannot be asked is asked again next time (the
        capture loop deals with outages)."""
        try:
            sample = self._sample()
        except Exception as error:  # never let the display end the daemon
            log.debug("catch_up_poll_failed", error=str(error))
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            return
        if sample is not None:
            self._show(*sample)

    def _sample(self) -> tuple[int, int] | None:
        if self._conn is None:
            self._conn = mysql.connect(self.dsn, autocommit=True)
        with self._conn.cursor() as cur:
            text = self.position()
            if text is None:
                stored = checkpoint.read(cur, self.dsn.database)
                text = str(stored.position) if stored is not None else None
            end = mysql.binlog_status(cur)
            logs = mysql.binary_logs(cur)
        if text is None or end is None:
            return None
        log_file, _, log_pos = text.rpartition(":")
        offset = binlog_offset(logs, log_file, int(log_pos))
        end_offset = binlog_offset(logs, str(end[0]), int(end[1]))
        if offset is None or end_offset is None:
            return None
        return offset, end_offset

    def _show(self, offset: int, end: int) -> None:
        now = time.monotonic()
        if self.tracker is None:
            if end - offset < SHOW_FROM_BYTES:
                return
            self.tracker = Tracker()
            self.display.start(self.tracker.update(now, offset, end))
            return
        estimate = self.tracker.update(now, offset, end)
        if estimate.remaining <= CAUGHT_UP_BYTES:
            self.display.finish(estimate)
            self.tracker = None
        else:
            self.display.update(estimate)

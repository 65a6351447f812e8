"""The pure parts of operations: ages, catch-up arithmetic, the notify datagrams, the
retention setting."""

from __future__ import annotations

import io
import socket
from datetime import timedelta
from pathlib import Path

import pytest

from cdc.ages import age_seconds, parse_age
from cdc.capture.progress import Bar, Estimate, Tracker, binlog_offset, describe
from cdc.errors import ConfigError
from cdc.notify import Notifier
from cdc.settings import CaptureSettings


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("12h", 43200),
        ("90d", 7776000),
        ("2w", 1209600),
        (" 7 d ", 604800),
    ],
)
def test_ages(text: str, seconds: int) -> None:
    assert age_seconds(text) == seconds
    assert parse_age(text, "--older-than") == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["90", "d", "1y", "3 months", "-1d", "1.5h", "", "1234567890d"])
def test_not_ages(text: str) -> None:
    assert age_seconds(text) is None
    with pytest.raises(ConfigError) as raised:
        parse_age(text, "--older-than")
    assert "is not an age" in raised.value.problem and "90d" in (raised.value.fix or "")


def test_zero_age_is_refused() -> None:
    with pytest.raises(ConfigError, match="every event"):
        parse_age("0d", "--retention")


def test_retention_setting() -> None:
    assert CaptureSettings().retention_age is None
    assert CaptureSettings(retention="90d").retention_age == timedelta(days=90)
    with pytest.raises(ConfigError, match="--retention 'soon' is not an age"):
        CaptureSettings(retention="soon")


LOGS = [("binlog.000001", 1000), ("binlog.000002", 500), ("binlog.000003", 200)]


@pytest.mark.parametrize(
    ("log_file", "pos", "offset"),
    [
        ("binlog.000001", 4, 4),
        ("binlog.000001", 1000, 1000),
        ("binlog.000002", 4, 1004),
        ("binlog.000003", 150, 1650),
        ("binlog.000000", 4, None),  # purged
        ("trigger", 9, None),  # trigger mode's position is no binlog
    ],
)
def test_binlog_offset(log_file: str, pos: int, offset: int | None) -> None:
    assert binlog_offset(LOGS, log_file, pos) == offset


def test_tracker_rate_and_time_left() -> None:
    tracker = Tracker(window=30)
    first = tracker.update(100.0, 1_000, 11_000)
    assert (first.done, first.total, first.remaining, first.rate) == (0, 10_000, 10_000, None)
    assert first.seconds_left is None
    later = tracker.update(110.0, 3_000, 11_000)
    assert (later.done, later.remaining, later.rate) == (2_000, 8_000, 200.0)
    assert later.seconds_left == 40.0
    # The server writes on: the total grows with the end.
    grown = tracker.update(120.0, 5_000, 13_000)
    assert (grown.total, grown.remaining, grown.rate) == (12_000, 8_000, 200.0)


def test_tracker_window_follows_the_recent_rate() -> None:
    tracker = Tracker(window=10)
    tracker.update(0.0, 0, 100_000)
    tracker.update(10.0, 10_000, 100_000)  # 1,000 B/s
    tracker.update(20.0, 12_000, 100_000)  # then 200 B/s
    estimate = tracker.update(30.0, 14_000, 100_000)
    assert estimate.rate == 200.0
    assert describe(estimate) == {
        "backlog_bytes": 86_000,
        "done_bytes": 14_000,
        "bytes_per_second": 200,
        "seconds_left": 430.0,
    }


def test_tracker_restarts_when_capture_moves_back() -> None:
    tracker = Tracker()
    tracker.update(0.0, 5_000, 9_000)
    again = tracker.update(1.0, 2_000, 9_000)  # resumed from an earlier checkpoint
    assert (again.done, again.total, again.rate) == (0, 7_000, None)


def test_estimate_never_negative() -> None:
    assert Estimate(done=10, total=5, rate=0.0).remaining == 0
    assert Estimate(done=10, total=5, rate=0.0).seconds_left is None


def test_notifier_environment() -> None:
    assert not Notifier.from_environment({}).enabled
    n = Notifier.from_environment({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "4000000"})
    assert n.enabled and n.watchdog_interval == 2.0
    other = Notifier.from_environment(
        {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}
    )
    assert other.watchdog_interval is None  # the watchdog is another process's
    assert Notifier(None).send(READY="1") is False


def test_notifier_sends_datagrams(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        notifier = Notifier(str(path))
        assert notifier.ready("capturing")
        assert b"READY=1\nMAINPID=" in listener.recv(1024)
        assert notifier.watchdog() and listener.recv(1024) == b"WATCHDOG=1"
        assert notifier.stopping() and listener.recv(1024) == b"STOPPING=1\nSTATUS=stopping"
        notifier.close()


def test_notifier_abstract_socket() -> None:
    name = f"cdc-test-{id(object())}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        notifier = Notifier("@" + name)
        assert notifier.status("hello") and listener.recv(1024) == b"STATUS=hello"
        notifier.close()


def test_notifier_missing_socket_is_not_fatal(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "nobody"))
    assert notifier.watchdog() is False
    assert notifier.watchdog() is False  # logged once, still harmless
    notifier.close()


def test_bar_shows_bytes_rate_and_time_left() -> None:
    from rich.console import Console

    out = io.StringIO()
    bar = Bar(Console(file=out, force_terminal=True, width=120))
    bar.start(Estimate(0, 10_000_000, None))
    bar.update(Estimate(4_000_000, 10_000_000, 2e6))
    bar._progress.refresh()
    bar.finish(Estimate(10_000_000, 10_000_000, 2e6))
    text = out.getvalue()
    assert "catching up" in text and "4.0/10.0 MB" in text
    assert "2.0 MB/s" in text and "00:00:03 left" in text

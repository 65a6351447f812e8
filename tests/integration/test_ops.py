"""Operations: pruning under live capture and streaming, `--retention`, `cdc status`'s
rates, the catch-up lines, and the systemd notify protocol of a real daemon."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

from cdc._testing.mariadb import MariaDB
from cdc.daemon import Daemon as InProcessDaemon
from cdc.models import CaptureState
from cdc.settings import CaptureSettings, Dsn, Settings
from tests.e2e_support import Setup, daemon, healthy, start, stop, writer
from tests.http_support import stream
from tests.support import cdc_command, start_daemon, stop_daemon, wait_ready

OLD = "2020-01-01 00:00:00"


def _cdc(*args: str, setup: Setup) -> subprocess.CompletedProcess[str]:
    dsn = f"mysql://root@127.0.0.1:{setup.server.port}/{setup.events}"
    return subprocess.run(
        cdc_command(*args, "--dsn", dsn), capture_output=True, text=True, timeout=120
    )


def _wait(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


def _count(setup: Setup, where: str = "1") -> int:
    with setup.conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM `{setup.events}`.event WHERE {where}")
        return int(cur.fetchone()[0])


def _age(setup: Setup, up_to: int) -> None:
    """Makes the events up to `up_to` old, as if they had been committed years ago."""
    setup.sql(f"UPDATE `{setup.events}`.event SET timestamp = '{OLD}' WHERE id <= {up_to}")


async def test_prune_under_capture_and_streaming(e2e: Setup) -> None:
    """While a workload writes and a stream client reads live, `cdc prune` deletes
    exactly the old events (it says how many), and the client sees every event in order
    with no gap; the events held stay gapless."""
    async with daemon(e2e) as proc:
        done = threading.Event()
        first = writer(e2e, 400, done)
        first.join()
        _wait(lambda: _count(e2e) >= 400 + 133, "the first rows' events")
        old = max(e2e.event_ids())
        _age(e2e, old - 50)  # the 50 newest stay young
        async with aiohttp.ClientSession() as session, stream(session, e2e.url) as sse:
            load = threading.Thread(target=_write_more, args=(e2e, 600))
            load.start()
            pruned = await asyncio.to_thread(
                _cdc, "prune", "--older-than", "90d", "--batch-rows", "100", setup=e2e
            )
            load.join()
            assert pruned.returncode == 0, pruned.stderr
            assert f"deleted {old - 50} event(s)" in pruned.stdout, pruned.stdout
            await asyncio.to_thread(
                _wait, lambda: _count(e2e, f"id > {old}") >= 600, "the events of the load"
            )
            expected = _count(e2e, f"id > {old}")
            seen = await sse.events(expected)
        ids = [event["id"] for event in seen]
        assert ids == list(range(old + 1, old + 1 + expected)), "the live stream has a gap"
        held = e2e.event_ids()
        assert held[0] == old - 49 and held == list(range(held[0], held[-1] + 1))
        assert _count(e2e, f"timestamp = '{OLD}'") == 0
        assert proc.poll() is None


def _write_more(setup: Setup, rows: int) -> None:
    conn = setup.server.connect(setup.app)
    try:
        with conn.cursor() as cur:
            for i in range(10_000, 10_000 + rows):
                cur.execute("INSERT INTO patient VALUES (%s, %s, %s)", (i, f"n{i}", 1))
    finally:
        conn.close()


async def test_prune_keeps_the_newest_event_and_ids_go_on(e2e: Setup) -> None:
    """Everything old: all but the newest event go; after a restart ids continue from it."""
    async with daemon(e2e):
        e2e.sql(*(f"INSERT INTO `{e2e.app}`.patient VALUES ({i}, 'a', 1)" for i in range(1, 31)))
        _wait(lambda: _count(e2e) >= 30, "30 events")
        _age(e2e, 10**9)
        pruned = await asyncio.to_thread(_cdc, "prune", "--older-than", "1d", setup=e2e)
        assert pruned.returncode == 0, pruned.stderr
        assert "deleted 29 event(s)" in pruned.stdout and "first id held: 30" in pruned.stdout
        assert e2e.event_ids() == [30]
        again = await asyncio.to_thread(_cdc, "prune", "--older-than", "1d", setup=e2e)
        assert "deleted 0 event(s)" in again.stdout
    async with daemon(e2e):
        e2e.sql(f"INSERT INTO `{e2e.app}`.patient VALUES (99, 'b', 1)")
        _wait(lambda: _count(e2e) >= 2, "the event after the restart")
        assert e2e.event_ids() == [30, 31]


def test_bad_ages_are_refused(e2e: Setup) -> None:
    for bad in ("90", "3 months", "0d", "1y"):
        result = _cdc("prune", "--older-than", bad, setup=e2e)
        assert result.returncode == 2, (bad, result.stderr)
        assert "is not an age" in result.stderr or "every event" in result.stderr
        assert "fix:" in result.stderr
    proc = start_daemon(e2e.server, "--retention", "soon", dsn=_dsn(e2e))
    assert proc.wait(60) == 2
    assert "--retention 'soon' is not an age" in proc.log()


def _dsn(setup: Setup) -> str:
    return f"mysql://root@127.0.0.1:{setup.server.port}/{setup.events}"


async def test_retention_prunes_while_running(e2e: Setup) -> None:
    """`--retention`: a pass at start and then every few minutes (here every 0.2 s)."""
    capture = CaptureSettings(
        include=(f"{e2e.app}.*",), retention="7d", retention_every_seconds=0.2
    )
    settings = Settings(dsn=Dsn.parse(_dsn(e2e)), capture=capture, http=None)
    running = InProcessDaemon(settings)
    task = asyncio.create_task(running.serve())
    try:
        await asyncio.to_thread(
            _wait, lambda: running.status().state is CaptureState.CAPTURING, "capturing"
        )
        e2e.sql(*(f"INSERT INTO `{e2e.app}`.patient VALUES ({i}, 'a', 1)" for i in range(1, 21)))
        await asyncio.to_thread(_wait, lambda: _count(e2e) >= 20, "20 events")
        _age(e2e, 15)
        await asyncio.to_thread(
            _wait, lambda: e2e.event_ids()[:1] == [16], "pruning of the 15 aged events"
        )
        e2e.sql(f"INSERT INTO `{e2e.app}`.patient VALUES (50, 'b', 1)")
        await asyncio.to_thread(_wait, lambda: 21 in e2e.event_ids(), "capture after pruning")
        assert e2e.event_ids() == list(range(16, 22))
    finally:
        running.stop()
        await task


def test_status_shows_event_rates(e2e: Setup) -> None:
    proc = start(e2e)
    try:
        wait_ready(e2e.conn, proc, e2e.events)
        e2e.sql(*(f"INSERT INTO `{e2e.app}`.patient VALUES ({i}, 'a', 1)" for i in range(1, 31)))
        _wait(lambda: _count(e2e) >= 30, "30 events")
        e2e.sql(
            f"UPDATE `{e2e.events}`.event SET timestamp = UTC_TIMESTAMP(6) - INTERVAL 3 MINUTE WHERE id <= 12"
        )
        result = _cdc("status", setup=e2e)
    finally:
        stop(proc)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # 18 events in the last minute, 30 in the last five.
    assert any(
        re.fullmatch(r"\s+events/s: 0\.3 / 0\.1  \(last 1 min / 5 min\)", ln) for ln in lines
    ), result.stdout
    assert any(ln.strip() == f"events/s {e2e.app}.patient: 0.3 / 0.1" for ln in lines), (
        result.stdout
    )
    # Every line is "name: value", as scripts read it.
    report = {k.strip(): v for k, v in (line.split(": ", 1) for line in lines)}
    assert report["last event id"] == "30"


def test_catch_up_plain_lines(e2e: Setup) -> None:
    """Not on a terminal, a backlog at start is told in log lines (no progress bar)."""
    proc = start(e2e)
    wait_ready(e2e.conn, proc, e2e.events)
    assert stop(proc) == 0
    pad = "x" * 40
    conn = e2e.server.connect(e2e.app)
    with conn.cursor() as cur:
        for chunk in range(12):
            rows = ", ".join(f"({chunk * 500 + i}, '{pad}', 1)" for i in range(500))
            cur.execute(f"INSERT INTO patient VALUES {rows}")
            cur.execute(f"UPDATE patient SET name = CONCAT(name, 'y') WHERE id >= {chunk * 500}")
    conn.close()
    proc = start(e2e)
    try:
        _wait(lambda: '"caught_up"' in proc.log(), "the caught_up line", timeout=120)
    finally:
        stop(proc)
    lines = [json.loads(line) for line in proc.log().splitlines() if line.startswith("{")]
    started = next(line for line in lines if line["event"] == "catch_up_started")
    assert started["backlog_bytes"] > 1 << 20
    assert "\x1b[" not in proc.log()


def test_systemd_notify(mariadb: MariaDB, e2e: Setup, tmp_path: Path) -> None:
    """A real daemon with NOTIFY_SOCKET: READY=1 once capturing and listening, WATCHDOG=1
    pings at half WATCHDOG_USEC, STATUS lines, STOPPING=1 on SIGTERM."""
    path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(1.0)
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "300000"}
    proc = start_daemon(mariadb, "--include", f"{e2e.app}.*", dsn=_dsn(e2e), http=e2e.port, env=env)
    received: list[dict[str, str]] = []

    def receive_until(key: str) -> dict[str, str]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                data = listener.recv(4096).decode()
            except TimeoutError:
                assert proc.poll() is None or key == "STOPPING", proc.log()[-3000:]
                continue
            message = dict(line.split("=", 1) for line in data.splitlines())
            received.append(message)
            if key in message:
                return message
        raise AssertionError(f"no {key} in 60 s; got {received}")

    try:
        ready = receive_until("READY")
        assert ready["READY"] == "1" and ready["MAINPID"] == str(proc.pid)
        assert ready["STATUS"].startswith("capturing at ")
        asyncio.run(healthy(e2e, proc))  # HTTP was listening before READY
        pings = sum("WATCHDOG" in m for m in received)
        while pings < 3:
            receive_until("WATCHDOG")
            pings += 1
        proc.send_signal(signal.SIGTERM)
        stopping = receive_until("STOPPING")
        assert stopping["STOPPING"] == "1"
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            stop_daemon(proc)
        listener.close()


DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _statements(path: Path) -> list[str]:
    body = "\n".join(
        line for line in path.read_text().splitlines() if not line.lstrip().startswith("--")
    )
    return [s.strip() for s in body.split(";") if s.strip()]


def test_the_init_scripts_grants_are_enough(e2e: Setup) -> None:
    """The least-privilege user of deploy/mysql-init.sql (on the test server, with its
    event database) passes `cdc check`, captures, and may prune."""
    user = f"cdc_ops_{e2e.events[-4:].strip('_')}"
    e2e.sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'")
    try:
        for statement in _statements(DEPLOY / "mysql-init.sql"):
            e2e.sql(
                statement.replace("'cdc'@'%'", f"'{user}'@'%'").replace("`cdc`", f"`{e2e.events}`")
            )
        dsn = f"mysql://{user}:pw@127.0.0.1:{e2e.server.port}/{e2e.events}"
        init = subprocess.run(cdc_command("init", "--dsn", dsn), capture_output=True, text=True)
        assert init.returncode == 0, init.stderr
        check = subprocess.run(cdc_command("check", "--dsn", dsn), capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        proc = start_daemon(e2e.server, "--include", f"{e2e.app}.*", dsn=dsn)
        try:
            wait_ready(e2e.conn, proc, e2e.events)
            e2e.sql(*(f"INSERT INTO `{e2e.app}`.patient VALUES ({i}, 'a', 1)" for i in range(5)))
            _wait(lambda: _count(e2e) >= 5, "5 events captured by the least-privilege user")
        finally:
            assert stop_daemon(proc)[0] == 0
        _age(e2e, 3)
        pruned = subprocess.run(
            cdc_command("prune", "--older-than", "1d", "--dsn", dsn), capture_output=True, text=True
        )
        assert pruned.returncode == 0 and "deleted 3 event(s)" in pruned.stdout, pruned.stderr
    finally:
        e2e.sql(f"DROP USER '{user}'@'%'")


async def test_monthly_partitions(e2e: Setup) -> None:
    """deploy/event-partitions.sql applies to the event table `cdc init` made; capture
    goes on into it, and an old month is dropped whole."""
    init = _cdc("init", setup=e2e)
    assert init.returncode == 0, init.stderr
    for statement in _statements(DEPLOY / "event-partitions.sql"):
        e2e.sql(f"USE `{e2e.events}`", statement)
    async with daemon(e2e):
        e2e.sql(*(f"INSERT INTO `{e2e.app}`.patient VALUES ({i}, 'a', 1)" for i in range(1, 11)))
        _wait(lambda: _count(e2e) >= 10, "10 events in the partitioned table")
        e2e.sql(f"UPDATE `{e2e.events}`.event SET timestamp = '2026-10-15' WHERE id <= 4")
        e2e.sql(
            f"ALTER TABLE `{e2e.events}`.event REORGANIZE PARTITION pmax INTO ("
            " PARTITION p2027_01 VALUES LESS THAN ('2027-02-01'),"
            " PARTITION pmax VALUES LESS THAN (MAXVALUE))",
            f"ALTER TABLE `{e2e.events}`.event DROP PARTITION p2026_10",
        )
        assert e2e.event_ids() == list(range(5, 11))
        e2e.sql(f"INSERT INTO `{e2e.app}`.patient VALUES (99, 'b', 1)")
        _wait(lambda: 11 in e2e.event_ids(), "capture after the partition was dropped")
    with e2e.conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.PARTITIONS"
            " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'event'",
            (e2e.events,),
        )
        assert cur.fetchone()[0] == 4

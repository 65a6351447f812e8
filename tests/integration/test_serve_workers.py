"""`cdc serve --workers N`: N processes on one port (SO_REUSEPORT) under a parent that
restarts a dead one and forwards SIGTERM and SIGHUP (auth reloaded by every worker); a
clear exit when the port is taken."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path

import aiohttp
import psutil
import pytest

from cdc._testing.mariadb import free_port
from cdc.policy.tokens import digest, new_token
from tests.http_support import EventDb
from tests.serve_support import Client, collect, health, start_serve
from tests.support import Daemon, stop_daemon

pytestmark = pytest.mark.timeout(300)


def dsn(db: EventDb) -> str:
    return f"mysql://root@127.0.0.1:{db.server.port}/{db.name}"


def workers_of(parent: Daemon) -> set[int]:
    children = psutil.Process(parent.pid).children()
    return {c.pid for c in children if c.status() != psutil.STATUS_ZOMBIE}


async def until_workers(parent: Daemon, count: int, without: int | None = None) -> set[int]:
    """The parent's workers once there are `count` of them (none of them `without`)."""
    deadline = time.monotonic() + 60
    while True:
        found = workers_of(parent)
        if len(found) == count and without not in found:
            return found
        assert time.monotonic() < deadline, f"workers {found}, not {count}:\n{parent.log()[-3000:]}"
        await asyncio.sleep(0.1)


async def test_workers_share_the_port_and_a_killed_one_is_replaced(event_db: EventDb) -> None:
    event_db.new_events(5)
    port = free_port()
    parent = start_serve(dsn(event_db), port, "--workers", "3")
    await health(port, parent)
    first = await until_workers(parent, 3)
    victim = min(first)
    psutil.Process(victim).send_signal(signal.SIGKILL)
    now = await until_workers(parent, 3, without=victim)
    await health(port, parent)
    # Clients reaching any worker of the port read every event.
    clients = [Client([f"http://127.0.0.1:{port}"]) for _ in range(6)]
    running = asyncio.create_task(collect(clients, 15))
    event_db.new_events(10)
    await running
    for client in clients:
        assert client.ids == list(range(1, 16))
    code, log = stop_daemon(parent)
    assert code == 0, log[-3000:]
    assert '"worker_died"' in log
    assert not any(psutil.pid_exists(pid) for pid in now)


async def test_no_worker_outlives_its_supervisor(event_db: EventDb) -> None:
    port = free_port()
    parent = start_serve(dsn(event_db), port, "--workers", "2")
    await health(port, parent)
    workers = await until_workers(parent, 2)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 60
    while any(psutil.pid_exists(pid) for pid in workers):
        for pid in workers:  # reaped by init once they exit; a zombie has exited
            if psutil.pid_exists(pid) and psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                workers = workers - {pid}
        assert time.monotonic() < deadline, f"workers {workers} still run without a supervisor"
        await asyncio.sleep(0.1)


async def test_sighup_reaches_every_worker(event_db: EventDb, tmp_path: Path) -> None:
    old, new = new_token(), new_token()
    config = tmp_path / "cdc.toml"

    def write(token: str) -> None:
        config.write_text(
            f'[auth]\n[[auth.tokens]]\nname = "screen"\nsha256 = "{digest(token)}"\n'
            'tables = ["bhima.*"]\n'
        )

    write(old)
    port = free_port()
    parent = start_serve(dsn(event_db), port, "--workers", "2", env={"CDC_CONFIG": str(config)})
    await health(port, parent)
    await until_workers(parent, 2)
    deadline = time.monotonic() + 60
    while parent.log().count('"http_listening"') < 2:
        assert time.monotonic() < deadline, f"the workers did not listen:\n{parent.log()[-3000:]}"
        await asyncio.sleep(0.1)
    write(new)
    parent.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    # A connection per request, so that the kernel spreads them over the workers.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        while True:
            # Many requests, so that every worker of the port answers some.
            statuses = set()
            for _ in range(20):
                for token in (old, new):
                    headers = {"Authorization": f"Bearer {token}"}
                    async with session.get(f"http://127.0.0.1:{port}/events", headers=headers) as r:
                        statuses.add((token == new, r.status))
            if statuses == {(False, 401), (True, 200)}:
                break
            assert time.monotonic() < deadline, f"after SIGHUP: {statuses}"
            await asyncio.sleep(0.1)
    while parent.log().count('"auth_reloaded"') < 2:
        assert time.monotonic() < deadline, f"not every worker reloaded:\n{parent.log()[-3000:]}"
        await asyncio.sleep(0.1)
    assert stop_daemon(parent)[0] == 0


async def test_workers_that_cannot_listen_end_the_parent_with_a_message(
    event_db: EventDb,
) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        parent = start_serve(dsn(event_db), port, "--workers", "2")
        await asyncio.to_thread(parent.wait, 60)
    log = parent.log()
    assert parent.returncode == 3, log[-3000:]
    assert "cannot listen on 127.0.0.1:" in log and '"worker_cannot_start"' in log


async def test_the_supervisor_speaks_to_systemd_for_its_workers(
    event_db: EventDb, tmp_path: Path
) -> None:
    """Under systemd (Type=notify, NotifyAccess=main) the parent says READY=1 once the
    port answers, WATCHDOG=1 while its workers run, STOPPING=1 at SIGTERM; the workers
    say nothing (they are not given the socket)."""
    path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.setblocking(False)
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}
    port = free_port()
    parent = start_serve(dsn(event_db), port, "--workers", "2", env=env)
    received: list[dict[str, str]] = []

    async def receive_until(key: str) -> dict[str, str]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                data = listener.recv(4096).decode()
            except BlockingIOError:
                assert parent.poll() is None or key == "STOPPING", parent.log()[-3000:]
                await asyncio.sleep(0.05)
                continue
            message = dict(line.split("=", 1) for line in data.splitlines())
            received.append(message)
            if key in message:
                return message
        raise AssertionError(f"no {key} from the supervisor in 60 s; got {received}")

    try:
        ready = await receive_until("READY")
        assert ready["MAINPID"] == str(parent.pid), "READY must come from the parent"
        await health(port, parent)
        for _ in range(3):
            await receive_until("WATCHDOG")
        parent.send_signal(signal.SIGTERM)
        await receive_until("STOPPING")
        assert parent.wait(60) == 0, parent.log()[-3000:]
        assert all(m.get("MAINPID", str(parent.pid)) == str(parent.pid) for m in received)
    finally:
        if parent.poll() is None:
            stop_daemon(parent)
        listener.close()

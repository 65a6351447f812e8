"""Fan-out through Redis: `cdc run --bus` publishes, `cdc serve` workers stream, with a
real redis-server and MariaDB. Every client gets every event once, in order, whichever
worker it reaches and whatever Redis does (stopped, restarted, flushed); capture never
waits on Redis."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cdc._testing.mariadb import free_port
from cdc.bus.publisher import BusPublisher
from cdc.policy.tokens import digest, new_token
from cdc.settings import BusSettings
from tests.e2e_support import Setup
from tests.http_support import make_event
from tests.redis_support import RedisServer, redis_server
from tests.serve_support import Client, collect, health, start_serve
from tests.support import (
    Daemon,
    cdc_command,
    start_daemon,
    stop_daemon,
    wait_for_events,
    wait_ready,
)

pytestmark = pytest.mark.timeout(300)
__all__ = ["redis_server"]  # the fixture


def capture(setup: Setup, bus: RedisServer) -> Daemon:
    """`cdc run --bus` (no HTTP of its own), ready to capture."""
    proc = start_daemon(
        setup.server, "--include", f"{setup.app}.*", "--bus", bus.url, dsn=dsn(setup)
    )
    wait_ready(setup.conn, proc, setup.events)
    return proc


def dsn(setup: Setup) -> str:
    return f"mysql://root@127.0.0.1:{setup.server.port}/{setup.events}"


def insert(setup: Setup, first: int, count: int) -> None:
    """`count` rows, one transaction (one event) each, as an application commits them."""
    conn = setup.server.connect(setup.app)
    try:
        with conn.cursor() as cur:
            for i in range(first, first + count):
                cur.execute("INSERT INTO patient VALUES (%s, %s, %s)", (i, f"p{i}", i % 5))
    finally:
        conn.close()


def all_ids(setup: Setup) -> list[int]:
    return setup.event_ids()


async def test_three_workers_give_every_client_every_event_in_order(
    e2e: Setup, redis_server: RedisServer
) -> None:
    daemon = capture(e2e, redis_server)
    ports = [free_port() for _ in range(3)]
    workers = [start_serve(dsn(e2e), port, "--bus", redis_server.url) for port in ports]
    for port, worker in zip(ports, workers, strict=True):
        assert (await health(port, worker))["role"] == "serve"
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    clients = [Client([url]) for url in urls for _ in range(2)]
    # One more client moves to the next worker every 40 events (a load balancer).
    mover = Client(urls, switch_every=40)
    total = 240
    writer = asyncio.create_task(asyncio.to_thread(insert, e2e, 1, total))
    await collect([*clients, mover], total)
    await writer
    expected = all_ids(e2e)
    assert len(expected) == total
    for client in [*clients, mover]:
        assert client.ids == expected
    assert mover.connections >= 6
    # Live events came through the stream (all of them unless Redis stalled for 2 s).
    assert redis_server.entries() > 0
    assert stop_daemon(daemon)[0] == 0


async def test_redis_stopped_restarted_and_flushed_loses_and_doubles_nothing(
    e2e: Setup, redis_server: RedisServer
) -> None:
    daemon = capture(e2e, redis_server)
    port = free_port()
    worker = start_serve(dsn(e2e), port, "--bus", redis_server.url)
    await health(port, worker)
    url = f"http://127.0.0.1:{port}"
    clients = [Client([url]), Client([url])]
    total = 400
    running = asyncio.create_task(collect(clients, total, timeout=180))
    await asyncio.to_thread(insert, e2e, 1, 100)
    redis_server.stop()
    # Capture goes on with Redis down: the event table grows, the daemon blocks on nothing.
    await asyncio.to_thread(insert, e2e, 101, 100)
    await asyncio.to_thread(wait_for_events, e2e.conn, 200, 60, daemon, e2e.events)
    assert daemon.poll() is None
    redis_server.start()
    # Rows until the publisher has found Redis again (it skips while it is away).
    written = 200
    deadline = time.monotonic() + 60
    while redis_server.entries() == 0:
        assert time.monotonic() < deadline, "the publisher never reached Redis again"
        await asyncio.to_thread(insert, e2e, written + 1, 5)
        written += 5
        await asyncio.sleep(0.2)
    assert written <= 300
    redis_server.flushall()
    await asyncio.to_thread(insert, e2e, written + 1, total - written)
    await running
    expected = all_ids(e2e)
    assert len(expected) == total
    for client in clients:
        assert client.ids == expected
    code, log = stop_daemon(daemon)
    assert code == 0, log[-3000:]
    bus_lines = [line for line in log.splitlines() if '"bus_' in line]
    assert '"bus_down"' in log and '"bus_up"' in log, bus_lines
    # The worker followed the table meanwhile, and went back to the stream.
    assert worker.log().count('"bus_reading"') >= 2, worker.log()[-3000:]


async def test_a_worker_gives_each_token_only_its_tables(
    e2e: Setup, redis_server: RedisServer, tmp_path: Path
) -> None:
    e2e.sql(f"CREATE TABLE `{e2e.app}`.invoice (id INT PRIMARY KEY, amount INT)")
    tokens = {"finance": new_token(), "everything": new_token()}
    grants = {"finance": [f"{e2e.app}.invoice"], "everything": [f"{e2e.app}.*"]}
    config = tmp_path / "cdc.toml"
    lines = ["[auth]"]
    for name, token in tokens.items():
        lines += ["[[auth.tokens]]", f'name = "{name}"', f'sha256 = "{digest(token)}"']
        lines.append(f"tables = {json.dumps(grants[name])}")
    config.write_text("\n".join(lines) + "\n")
    daemon = capture(e2e, redis_server)
    port = free_port()
    worker = start_serve(dsn(e2e), port, "--bus", redis_server.url, env={"CDC_CONFIG": str(config)})
    await health(port, worker)
    url = f"http://127.0.0.1:{port}"
    finance = Client([url], token=tokens["finance"])
    everything = Client([url], token=tokens["everything"])
    running = asyncio.create_task(collect([everything], 60))
    # Without a token nothing is served (the same [auth] as cdc run).
    async with aiohttp.ClientSession() as session, session.get(f"{url}/stream") as response:
        assert response.status == 401

    def write() -> None:
        conn = e2e.server.connect(e2e.app)
        with conn.cursor() as cur:
            for i in range(1, 31):
                cur.execute("INSERT INTO patient VALUES (%s, 'p', 1)", (i,))
                cur.execute("INSERT INTO invoice VALUES (%s, %s)", (i, i * 10))
        conn.close()

    finance_done = asyncio.create_task(collect([finance], 30))
    await asyncio.to_thread(write)
    await running
    await finance_done
    with e2e.conn.cursor() as cur:
        cur.execute(f"SELECT id FROM `{e2e.events}`.event WHERE table_name = 'invoice' ORDER BY id")
        invoice_ids = [int(r[0]) for r in cur.fetchall()]
    assert finance.ids == invoice_ids
    assert everything.ids == all_ids(e2e)
    assert redis_server.entries() > 0
    stop_daemon(daemon)


async def test_serve_without_a_bus_follows_the_table_and_never_imports_the_binlog_library(
    e2e: Setup,
) -> None:
    # The event table comes from `cdc run` (no bus, no HTTP); `cdc serve` follows it.
    daemon = start_daemon(e2e.server, "--include", f"{e2e.app}.*", dsn=dsn(e2e))
    wait_ready(e2e.conn, daemon, e2e.events)
    port = free_port()
    worker = start_serve(dsn(e2e), port, python=("-X", "importtime"))
    state = await health(port, worker)
    assert state["role"] == "serve" and state["healthy"] is True
    client = Client([f"http://127.0.0.1:{port}"])
    running = asyncio.create_task(collect([client], 50))
    await asyncio.to_thread(insert, e2e, 1, 50)
    await running
    assert client.ids == all_ids(e2e)
    listed = subprocess.run(
        cdc_command("status", "--dsn", dsn(e2e)), capture_output=True, text=True, timeout=60
    ).stdout
    assert re.search(rf"^\s*serve \S+: pid {worker.pid} ", listed, re.M), listed
    code, log = stop_daemon(worker)
    assert code == 0, log[-3000:]
    assert re.search(r"\|\s+aiohttp\.web$", log, re.M)  # -X importtime lists every import
    assert "pymysqlreplication" not in log
    stop_daemon(daemon)


async def test_serve_health_says_unhealthy_when_the_table_cannot_be_read(e2e: Setup) -> None:
    daemon = start_daemon(e2e.server, "--include", f"{e2e.app}.*", dsn=dsn(e2e))
    wait_ready(e2e.conn, daemon, e2e.events)
    stop_daemon(daemon)
    port = free_port()
    worker = start_serve(dsn(e2e), port)
    await health(port, worker)
    e2e.sql(f"RENAME TABLE `{e2e.events}`.event TO `{e2e.events}`.event_away")
    try:
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(f"http://127.0.0.1:{port}/health") as response:
                    body: dict[str, Any] = await response.json()
                    if response.status == 503:
                        assert body["role"] == "serve" and body["healthy"] is False
                        break
                assert time.monotonic() < deadline, "/health never said 503"
                await asyncio.sleep(0.1)
    finally:
        e2e.sql(f"RENAME TABLE `{e2e.events}`.event_away TO `{e2e.events}`.event")


async def test_the_publisher_skips_while_redis_is_down_and_resumes(
    redis_server: RedisServer,
) -> None:
    publisher = BusPublisher(BusSettings(url=redis_server.url, queue_batches=50, timeout=0.5))
    publisher.start()
    try:
        redis_server.stop()
        # The capture thread's calls return at once, whatever Redis does; the queue is
        # bounded, so what does not fit is skipped (counted).
        for i in range(1, 3001):
            publisher.publish([make_event(i)], i)
        publisher.publish(None, 3001)  # a batch too big to hold: skipped, readers fill it
        await until(lambda: publisher.skipped == 3000, "every batch counted as skipped")
        redis_server.start()
        deadline = time.monotonic() + 60
        i = 3001
        while redis_server.entries() == 0:
            i += 1
            publisher.publish([make_event(i)], i)
            assert time.monotonic() < deadline, "the publisher never reached Redis again"
            await asyncio.sleep(0.05)
        assert publisher.published >= 1
    finally:
        publisher.stop()
    with redis_server.client() as client:
        (_entry, fields), *_ = client.xrange("cdc:events", count=1)
    assert int(fields[b"id"]) > 3001 and fields[b"event"].startswith(b'{"id":')


async def until(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.05)

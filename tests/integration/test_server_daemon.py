"""End to end through the real daemon: `cdc run --http` as a process, rows written with SQL.

The stream shows what the binlog carried, in commit order; a client (`cdc tail`'s) follows
across a SIGKILL and restart of the daemon, writes going on all along, and prints every
event exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from test_server_helpers import Sse

from cdc.sandbox import MariaDB, free_port
from cdc.tail import tail

pytestmark = pytest.mark.timeout(240)


@dataclass
class Setup:
    server: MariaDB
    app: str  # the captured schema
    events: str  # the daemon's database (event table)
    conn: Any
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sql(self, *statements: str) -> None:
        with self.conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)

    def event_ids(self) -> list[int]:
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT id FROM `{self.events}`.event ORDER BY id")
            return [int(r[0]) for r in cur.fetchall()]


_count = iter(range(1, 10_000))


@pytest.fixture
def e2e(mariadb: MariaDB) -> Iterator[Setup]:
    """A schema to capture (one `patient` table), a name for the daemon's database, a port."""
    n = next(_count)
    app, events = f"e2e_app_{n}", f"e2e_cdc_{n}"
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{app}`")
        cur.execute(
            f"CREATE TABLE `{app}`.patient (id INT PRIMARY KEY, name VARCHAR(50), user_id INT)"
        )
    try:
        yield Setup(mariadb, app, events, conn, free_port())
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{app}`")
            cur.execute(f"DROP DATABASE IF EXISTS `{events}`")
        conn.close()


def start(setup: Setup) -> subprocess.Popen[str]:
    """`cdc run` capturing the test's schema only, serving HTTP on the test's port."""
    env = dict(
        os.environ,
        CDC_DSN=f"mysql://root@127.0.0.1:{setup.server.port}/{setup.events}",
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cdc",
            "run",
            "--http",
            f"127.0.0.1:{setup.port}",
            "--include",
            f"{setup.app}.*",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


async def healthy(setup: Setup, proc: subprocess.Popen[str]) -> None:
    """Waits for /health to say 200 (capturing)."""
    last: object = None
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if proc.poll() is not None:
                raise AssertionError(f"daemon exited {proc.returncode}: {proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                async with session.get(f"{setup.url}/health") as response:
                    if response.status == 200:
                        return
                    last = (response.status, await response.text())
            except aiohttp.ClientError as error:
                last = error
            await asyncio.sleep(0.1)
    raise AssertionError(f"GET {setup.url}/health never answered 200 in 60 s; last: {last}")


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("the daemon did not stop within 30 s") from None
    return proc.returncode


@contextlib.asynccontextmanager
async def daemon(setup: Setup) -> AsyncIterator[subprocess.Popen[str]]:
    proc = start(setup)
    try:
        await healthy(setup, proc)
        yield proc
    finally:
        stop(proc)


async def test_rows_written_with_sql_appear_on_the_stream(e2e: Setup) -> None:
    app = e2e.app
    async with (
        daemon(e2e) as proc,
        aiohttp.ClientSession() as session,
        session.get(f"{e2e.url}/stream") as response,
    ):
        assert response.status == 200
        sse = Sse(response)
        await asyncio.sleep(0.2)  # attached: it starts live
        await asyncio.to_thread(
            e2e.sql,
            f"INSERT INTO `{app}`.patient VALUES (1, 'Ann', 7), (2, 'Bob', 8)",
            f"UPDATE `{app}`.patient SET name = 'Anne' WHERE id = 1",
            "BEGIN",
            f"INSERT INTO `{app}`.patient VALUES (3, 'rolled back', 9)",
            "ROLLBACK",
            f"DELETE FROM `{app}`.patient WHERE id = 2",
        )
        events = await sse.events(4)
        assert [(e["type"], e["row_id"]) for e in events] == [
            ("CREATE", 1),
            ("CREATE", 2),
            ("UPDATE", 1),
            ("DELETE", 2),
        ]
        assert [e["id"] for e in events] == e2e.event_ids()
        update = events[2]
        assert update["schema"] == app and update["table"] == "patient"
        assert update["user_id"] == 7
        assert update["data"]["changed"] == ["name"]
        assert update["data"]["before"]["name"] == "Ann"
        assert update["data"]["after"]["name"] == "Anne"
        async with session.get(f"{e2e.url}/events", params={"after_id": 0}) as history:
            assert (await history.json())["events"] == events
        # A clean stop ends the stream (the client would reconnect with Last-Event-ID).
        assert stop(proc) == 0
        assert await sse.frame() is None


def writer(setup: Setup, rows: int, stop_at: threading.Event) -> threading.Thread:
    """Commits one row change after another, as an application would."""

    def write() -> None:
        conn = setup.server.connect(setup.app)
        try:
            with conn.cursor() as cur:
                for i in range(1, rows + 1):
                    cur.execute("INSERT INTO patient VALUES (%s, %s, %s)", (i, f"p{i}", i % 5))
                    if i % 3 == 0:
                        cur.execute("UPDATE patient SET name = %s WHERE id = %s", (f"q{i}", i - 1))
                    time.sleep(0.005)
                    if stop_at.is_set():
                        break
        finally:
            conn.close()

    thread = threading.Thread(target=write)
    thread.start()
    return thread


@pytest.mark.slow
async def test_tail_follows_across_a_killed_and_restarted_daemon(e2e: Setup) -> None:
    rows = 400
    out = io.StringIO()
    proc = start(e2e)
    await healthy(e2e, proc)
    follower = asyncio.create_task(tail(e2e.url, {}, None, out, pretty=False))
    try:
        await asyncio.sleep(0.5)  # attached: it starts live
        done = threading.Event()
        thread = writer(e2e, rows, done)
        await asyncio.sleep(1.0)
        stop(proc, signal.SIGKILL)  # mid-writes, no goodbye
        await asyncio.sleep(1.0)  # writes go on while it is down
        proc = start(e2e)
        await healthy(e2e, proc)
        await asyncio.to_thread(thread.join, 120)
        expected = rows + rows // 3
        for _ in range(600):
            ids = e2e.event_ids()
            if len(ids) >= expected and len(out.getvalue().splitlines()) >= len(ids):
                break
            await asyncio.sleep(0.1)
        printed = [json.loads(line)["id"] for line in out.getvalue().splitlines()]
        assert len(ids) == expected  # every change captured once, across the kill
        assert printed == ids  # every event printed once, in order
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        stop(proc)


@pytest.mark.slow
async def test_resume_with_last_event_id_after_a_restart(e2e: Setup) -> None:
    """A client away during a restart, changes made meanwhile: it gets them on return."""
    app = e2e.app
    async with daemon(e2e), aiohttp.ClientSession() as session:
        await asyncio.to_thread(e2e.sql, f"INSERT INTO `{app}`.patient VALUES (1, 'a', 1)")
        async with session.get(f"{e2e.url}/stream", params={"last_event_id": 0}) as response:
            first = await Sse(response).events(1)
    last = first[0]["id"]
    await asyncio.to_thread(
        e2e.sql,
        f"INSERT INTO `{app}`.patient VALUES (2, 'b', 1)",  # while no daemon runs
        f"UPDATE `{app}`.patient SET name = 'c' WHERE id = 1",
    )
    async with (
        daemon(e2e),
        aiohttp.ClientSession() as session,
        session.get(f"{e2e.url}/stream", headers={"Last-Event-ID": str(last)}) as response,
    ):
        sse = Sse(response)
        again = await sse.events(2)
        assert [e["row_id"] for e in again] == [2, 1]
        await asyncio.to_thread(e2e.sql, f"DELETE FROM `{app}`.patient WHERE id = 2")
        assert [(e["type"], e["row_id"]) for e in await sse.events(1)] == [("DELETE", 2)]
        assert [e["id"] for e in [*first, *again]] == e2e.event_ids()[:3]

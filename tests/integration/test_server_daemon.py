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
import signal
import threading

import aiohttp
import pytest

from cdc.client.tail import tail
from tests.e2e_support import Setup, daemon, healthy, start, stop, writer
from tests.http_support import Sse

pytestmark = pytest.mark.timeout(240)


async def test_rows_written_with_sql_appear_on_the_stream(e2e: Setup) -> None:
    app = e2e.app
    async with (
        daemon(e2e) as proc,
        aiohttp.ClientSession() as session,
        session.get(f"{e2e.url}/stream") as response,
    ):
        assert response.status == 200
        sse = Sse(response)
        await sse.attached()  # from here on it sees every commit
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


@pytest.mark.slow
async def test_tail_follows_across_a_killed_and_restarted_daemon(e2e: Setup) -> None:
    rows = 400
    out = io.StringIO()
    proc = start(e2e)
    await healthy(e2e, proc)
    # From the start of the (empty) event table: nothing depends on when it attaches.
    follower = asyncio.create_task(tail(e2e.url, {}, 0, out, pretty=False))
    try:
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

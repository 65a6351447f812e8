"""`/stream` against a real server and MariaDB: order, gapless resume, slow clients, limits.

Events reach the hub as the daemon hands them over (committed first, then published).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from cdc import metrics
from tests.http_support import EventDb, Running, Sse, running, stream

pytestmark = pytest.mark.timeout(120)


async def until(condition: Callable[[], bool], what: str = "", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.01)


async def subscribed(app: Running, count: int) -> None:
    """Wait until `count` clients are attached and positioned (live from here on)."""
    await until(
        lambda: (
            app.hub.clients == count and all(s.cursor is not None for s in app.hub._subscriptions)
        ),
        f"{count} clients",
    )


def session(**kwargs: Any) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), **kwargs)


async def test_a_client_sees_every_event_in_order(event_db: EventDb) -> None:
    event_db.new_events(5)  # history before it connected: not sent (it starts live)
    async with running(event_db) as app, session() as http, stream(http, app.url) as sse:
        await subscribed(app, 1)
        for size in (1, 3, 1, 10, 2):
            app.commit(size, type=random.choice(["CREATE", "UPDATE", "DELETE"]))
        events = await sse.events(17)
        assert [e["id"] for e in events] == list(range(6, 23))
        assert sse.retry == 2000
        assert sse.last_id == "22"
        assert (events[0]["data"].get("after") or events[0]["data"]["before"])["id"] == 6
        response = sse.response
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"
        assert "Content-Encoding" not in response.headers


async def test_history_and_live_render_the_same_json(event_db: EventDb) -> None:
    async with running(event_db) as app, session() as http:
        async with stream(http, app.url) as sse:
            await subscribed(app, 1)
            app.commit(3, row_id='[1, "a"]', user_id="u", pad=3)
            live = await sse.events(3)
        async with http.get(f"{app.url}/events", params={"after_id": 0}) as response:
            stored = (await response.json())["events"]
        async with stream(http, app.url, last_event_id=0) as sse:
            replayed = await sse.events(3)
    assert live == stored == replayed
    assert live[0]["row_id"] == [1, "a"] and live[0]["user_id"] == "u"


async def test_resume_with_last_event_id_header_or_parameter(event_db: EventDb) -> None:
    event_db.new_events(30)
    async with running(event_db) as app, session() as http:
        async with stream(http, app.url, last_event_id=12) as sse:
            assert [e["id"] for e in await sse.events(18)] == list(range(13, 31))
            app.commit(2)
            assert [e["id"] for e in await sse.events(2)] == [31, 32]
        # EventSource's first request can only use the parameter ...
        async with stream(http, app.url, params={"last_event_id": 29}) as sse:
            assert [e["id"] for e in await sse.events(3)] == [30, 31, 32]
        # ... and on reconnection the header it sends wins over the URL's parameter.
        headers = {"Last-Event-ID": "31"}
        async with http.get(
            f"{app.url}/stream", params={"last_event_id": 3}, headers=headers
        ) as response:
            assert [e["id"] for e in await Sse(response).events(1)] == [32]


async def test_resume_while_events_keep_arriving(event_db: EventDb) -> None:
    """Replay of thousands of stored events while commits, and huge ones, land meanwhile."""
    event_db.new_events(4000)
    steps = [1200 if n % 40 == 39 else random.randint(1, 6) for n in range(150)]
    total = 4000 + sum(steps)
    async with running(event_db) as app, session() as http:

        async def write() -> None:
            for size in steps:
                if size == 1200:
                    # A transaction too big to keep in memory: only its last id is handed over.
                    event_db.new_events(size)
                    app.hub.advance(event_db.last)
                else:
                    app.commit(size)
                await asyncio.sleep(0.002)

        writer = asyncio.create_task(write())
        async with stream(http, app.url, last_event_id=0) as sse:
            seen = [e["id"] for e in await sse.events(total)]
        await writer
        assert seen == list(range(1, total + 1))


async def test_filters_select_the_same_events_live_and_from_history(event_db: EventDb) -> None:
    def mixed(app: Running) -> None:
        for n in range(60):
            app.commit(
                1,
                table=["patient", "visit", "invoice"][n % 3],
                schema=["bhima", "other"][n % 2],
                type=["CREATE", "UPDATE", "DELETE", "UPDATE"][n % 4],
                user_id=str(n % 5),
            )

    queries: list[list[tuple[str, str]]] = [
        [("table", "visit")],
        [("table", "bhima.patient"), ("table", "other.invoice")],
        [("type", "UPDATE")],
        [("type", "CREATE,DELETE"), ("table", "invoice")],
        [("user_id", "3")],
        [("row_id", "17")],
    ]
    async with (
        running(event_db, heartbeat=0.3) as app,
        session() as http,
        contextlib.AsyncExitStack() as stack,
    ):
        streams = [await stack.enter_async_context(stream(http, app.url, q)) for q in queries]
        await subscribed(app, len(queries))
        mixed(app)
        for query, sse in zip(queries, streams, strict=True):
            async with http.get(f"{app.url}/events", params=[*query, ("after_id", "0")]) as r:
                expected = [e["id"] for e in (await r.json())["events"]]
            assert expected
            got = [e["id"] for e in await sse.events(len(expected))]
            assert got == expected, query
            # Past the last match, an id-only frame moves Last-Event-ID to the newest id.
            while sse.last_id != str(event_db.last):
                frame = await sse.frame()
                assert frame is not None and "data" not in frame


async def test_since_replays_from_a_time_then_goes_live(event_db: EventDb) -> None:
    event_db.new_events(3, timestamp="2026-01-01 00:00:00.000000")
    event_db.new_events(4, timestamp="2026-05-12 00:00:00.000000")
    async with (
        running(event_db) as app,
        session() as http,
        stream(http, app.url, params={"since": "2026-03-01"}) as sse,
    ):
        assert [e["id"] for e in await sse.events(4)] == [4, 5, 6, 7]
        app.commit(1, timestamp="2026-05-13 00:00:00.000000")
        assert [e["id"] for e in await sse.events(1)] == [8]


async def test_heartbeats_keep_an_idle_stream_alive(event_db: EventDb) -> None:
    async with (
        running(event_db, heartbeat=0.2) as app,
        session() as http,
        stream(http, app.url) as sse,
    ):
        await subscribed(app, 1)
        while sse.comments < 3:
            line = await sse.response.content.readline()
            assert line
            sse.comments += line.startswith(b":")


async def test_over_max_clients_is_503_with_retry_after(event_db: EventDb) -> None:
    async with running(event_db, max_clients=2, retry_after=7) as app, session() as http:
        async with stream(http, app.url), stream(http, app.url):
            await subscribed(app, 2)
            before = metrics.stream_clients_rejected._value.get()
            async with http.get(f"{app.url}/stream") as response:
                assert response.status == 503
                assert response.headers["Retry-After"] == "7"
                assert (await response.json())["error"] == "too_many_clients"
            assert metrics.stream_clients_rejected._value.get() == before + 1
        await until(lambda: app.hub.clients == 0, "clients gone")
        async with stream(http, app.url):
            await subscribed(app, 1)


def stalled_client(url: str) -> socket.socket:
    """Asks for the stream, then never reads: its receive window fills and stays full."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(f"GET /stream HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return sock


async def test_a_stalled_client_does_not_delay_the_others_and_is_dropped(
    event_db: EventDb,
) -> None:
    async with running(event_db, stream_buffer=200) as app, session() as http:
        sock = stalled_client(app.url)
        try:
            async with stream(http, app.url) as a, stream(http, app.url) as b:
                await subscribed(app, 3)
                dropped = metrics.stream_clients_dropped._value.get()
                sent = 0
                # Each batch reaches the readers before the next is written, while the
                # stalled one holds its unread data; then it is cut off.
                while metrics.stream_clients_dropped._value.get() == dropped:
                    app.commit(20, pad=2000)
                    sent += 20
                    for sse in (a, b):
                        got = [e["id"] for e in await sse.events(20)]
                        assert got == list(range(sent - 19, sent + 1))
                    assert sent < 20_000, "the stalled client was never dropped"
                assert sent > 200
                await until(lambda: app.hub.clients == 2, "the stalled client gone")
                assert metrics.stream_clients_dropped._value.get() == dropped + 1
                app.commit(1)
                assert [e["id"] for e in await a.events(1)] == [sent + 1]
            # Its connection was cut: reading it now ends (after what was in flight).
            assert await asyncio.to_thread(drain, sock) < sent * 2100
        finally:
            sock.close()


def drain(sock: socket.socket) -> int:
    """Reads a socket to its end; the byte count."""
    sock.settimeout(30)
    total = 0
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            total += len(chunk)
    return total


@pytest.mark.slow
async def test_a_thousand_clients_each_receive_every_event(event_db: EventDb) -> None:
    clients, batches = 1000, 20
    async with (
        running(event_db) as app,
        session() as http,
        contextlib.AsyncExitStack() as stack,
    ):
        streams = [await stack.enter_async_context(stream(http, app.url)) for _ in range(clients)]
        await subscribed(app, clients)

        async def read(sse: Sse) -> list[int]:
            return [e["id"] for e in await sse.events(batches * 5)]

        readers = [asyncio.create_task(read(sse)) for sse in streams]
        for _ in range(batches):
            app.commit(5)
            await asyncio.sleep(0.01)
        results = await asyncio.gather(*readers)
    expected = list(range(1, batches * 5 + 1))
    assert all(ids == expected for ids in results)


async def test_stop_ends_every_stream(event_db: EventDb) -> None:
    async with session() as http, running(event_db) as app:
        streams = []
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(200):
                streams.append(await stack.enter_async_context(stream(http, app.url)))
            await subscribed(app, 200)
            app.commit(1)
            await app.http.stop()
            for sse in streams:
                assert [e["id"] for e in await sse.events(1)] == [1]
                assert await sse.frame() is None  # the end of the stream, cleanly
                # Stopped twice is harmless (the context manager stops it again).

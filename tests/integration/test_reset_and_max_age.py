"""The reset frame (a resume from pruned history, from an id this store never issued, and
none for a held id), in `cdc run`'s app and `cdc tail`; streams closed after
--stream-max-age, resumed without a gap."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from tests.http_support import EventDb, Sse, running, stream
from tests.support import cdc_command


def prune(db: EventDb, below: int) -> None:
    """What `cdc prune` does, by hand: the oldest events are gone."""
    with db.conn.cursor() as cur:
        cur.execute(f"DELETE FROM `{db.name}`.event WHERE id < %s", (below,))


async def first_frames(sse: Sse, count: int) -> list[dict[str, str]]:
    """The next `count` frames with data (events, resets); id-only frames move
    `sse.last_id` only."""
    frames: list[dict[str, str]] = []
    while len(frames) < count:
        frame = await asyncio.wait_for(sse.frame(), 30)
        assert frame is not None, f"the stream ended after {frames}"
        if "data" in frame:
            frames.append(frame)
    return frames


async def test_a_resume_from_pruned_history_is_told_then_continues(event_db: EventDb) -> None:
    event_db.new_events(10)
    prune(event_db, 5)
    async with (
        running(event_db) as server,
        aiohttp.ClientSession() as session,
        stream(session, server.url, last_event_id=2) as sse,
    ):
        reset, *events = await first_frames(sse, 7)
        assert reset == {"event": "reset", "data": '{"first_id":5,"reason":"pruned"}'}
        assert "id" not in reset
        assert [int(f["id"]) for f in events] == [5, 6, 7, 8, 9, 10]
        server.commit(1)
        (live,) = await first_frames(sse, 1)
        assert live["id"] == "11"


async def test_a_resume_from_an_id_never_issued_is_told(event_db: EventDb) -> None:
    event_db.new_events(10)
    async with (
        running(event_db) as server,
        aiohttp.ClientSession() as session,
        stream(session, server.url, last_event_id=500) as sse,
    ):
        (reset,) = await first_frames(sse, 1)
        assert json.loads(reset["data"]) == {"first_id": 11, "reason": "unknown"}
        assert "id" not in reset
        # An id-only frame follows: a reconnection now would resume from 10, not 500.
        frame = await asyncio.wait_for(sse.frame(), 30)
        assert frame == {"id": "10"}
        server.commit(2)
        assert [int(f["id"]) for f in await first_frames(sse, 2)] == [11, 12]


async def test_a_resume_from_a_held_id_gets_no_reset(event_db: EventDb) -> None:
    event_db.new_events(10)
    prune(event_db, 5)
    async with running(event_db) as server, aiohttp.ClientSession() as session:
        for after, first in ((4, 5), (7, 8), (10, 11)):
            async with stream(session, server.url, last_event_id=after) as sse:
                if after == 10:
                    server.commit(1)
                (frame,) = await first_frames(sse, 1)
                assert frame.get("event") != "reset" and frame["id"] == str(first), (after, frame)


async def test_cdc_tail_says_so_and_goes_on(event_db: EventDb) -> None:
    event_db.new_events(6)
    prune(event_db, 4)
    async with running(event_db) as server:
        proc = await asyncio.create_subprocess_exec(
            *cdc_command("tail", server.url, "--last-event-id", "1", "--pretty"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            assert proc.stdout is not None
            lines = []
            while len(lines) < 4:
                line = await asyncio.wait_for(proc.stdout.readline(), 60)
                assert line, f"cdc tail ended after {lines}"
                lines.append(line.decode())
        finally:
            proc.terminate()
            await proc.wait()
    assert lines[0].startswith("-- reset:") and "pruned" in lines[0] and "#4" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ["#4", "#5", "#6"]


async def test_streams_close_after_their_max_age_and_resume_without_a_gap(
    event_db: EventDb,
) -> None:
    async with running(event_db, stream_max_age=1.0) as server, aiohttp.ClientSession() as session:
        got: list[int] = []
        last: int | None = 0
        ended = 0
        deadline = time.monotonic() + 60
        server.commit(3)
        while len(got) < 9:
            assert time.monotonic() < deadline, f"only {got} after 60 s"
            async with stream(session, server.url, last_event_id=last) as sse:
                while True:
                    frame = await asyncio.wait_for(sse.frame(), 30)
                    if frame is None:
                        ended += 1  # closed cleanly by the server (max age)
                        if ended < 3:
                            server.commit(3)  # committed while the client is away
                        break
                    got.append(int(frame["id"]))
                    last = got[-1]
        assert got == list(range(1, 10))
        assert ended >= 2

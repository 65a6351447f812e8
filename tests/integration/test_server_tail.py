"""`cdc tail`'s client against a real server: prints every event once, across restarts."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator

import pytest

from cdc.client.tail import readable, stream_url, tail
from cdc.errors import ConfigError
from tests.http_support import EventDb, running

pytestmark = pytest.mark.timeout(120)


class Output(io.StringIO):
    def ids(self) -> list[int]:
        return [json.loads(line)["id"] for line in self.getvalue().splitlines()]

    async def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.getvalue().splitlines()) < count:
            if time.monotonic() > deadline:
                printed = self.getvalue().count(chr(10))
                raise AssertionError(f"printed {printed} of {count} lines in {timeout} s")
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def tailing(
    url: str, out: io.StringIO, **kwargs: object
) -> AsyncIterator[asyncio.Task[None]]:
    options: dict[str, object] = {"filters": {}, "last_event_id": None, "pretty": False, **kwargs}
    task = asyncio.create_task(tail(url, out=out, **options))  # type: ignore[arg-type]
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_prints_one_json_event_per_line_and_filters(event_db: EventDb) -> None:
    event_db.new_events(3)
    async with running(event_db) as app:
        out = Output()
        filters = {"table": ["visit"], "type": ["UPDATE,DELETE"]}
        async with tailing(app.url, out, filters=filters, last_event_id=0):
            app.commit(2, table="visit", type="CREATE")
            app.commit(2, table="visit", type="DELETE")
            app.commit(1, table="patient", type="DELETE")
            app.commit(1, table="visit", type="UPDATE")  # the last: all the others went by
            await out.wait_for(3)
        assert out.ids() == [6, 7, 9]


async def test_resumes_across_a_restart_without_gap_or_duplicate(event_db: EventDb) -> None:
    out = Output()
    async with running(event_db, retry_ms=100) as app:
        port = app.http.port
        async with tailing(app.url, out) as task:
            while app.hub.clients == 0:
                await asyncio.sleep(0.01)
            app.commit(5)
            await out.wait_for(5)
            await app.http.stop()  # the daemon stops: its streams end
            event_db.new_events(7)  # written while it is down (captured at restart)
            async with running(event_db, retry_ms=100, listen=f"127.0.0.1:{port}") as again:
                again.commit(3)
                await out.wait_for(15)
                again.commit(1)
                await out.wait_for(16)
            assert not task.done()
    assert out.ids() == list(range(1, 17))


async def test_a_bad_filter_is_an_error_not_a_retry(event_db: EventDb) -> None:
    async with running(event_db) as app:
        with pytest.raises(ConfigError, match="type"):
            await tail(app.url, {"type": ["NOT-A-TYPE"]}, None, io.StringIO(), pretty=False)


def test_urls() -> None:
    assert str(stream_url("http://h:8080")) == "http://h:8080/stream"
    assert str(stream_url("http://h:8080/cdc/")) == "http://h:8080/cdc/stream"
    assert str(stream_url("https://h/stream?table=x")) == "https://h/stream?table=x"
    with pytest.raises(ConfigError):
        stream_url("h:8080")


def test_readable_lines() -> None:
    update = {
        "id": 1017,
        "timestamp": "2026-05-12T12:19:40Z",
        "type": "UPDATE",
        "schema": "bhima",
        "table": "patient",
        "row_id": 42,
        "user_id": 7,
        "data": {"before": {"n": "An", "x": 1}, "after": {"n": "Ann", "x": 1}, "changed": ["n"]},
        "txn": "0-1-5531",
    }
    assert readable(update) == (
        '#1017  2026-05-12 12:19:40  UPDATE  bhima.patient  [42]  by 7  n: "An" → "Ann"'
    )
    delete = {**update, "type": "DELETE", "user_id": None, "data": {"before": {"id": [1, 2]}}}
    assert readable(delete).endswith("DELETE  bhima.patient  [42]  id=[1, 2]")


async def test_an_event_longer_than_a_read_buffer_is_printed_whole(event_db: EventDb) -> None:
    async with running(event_db) as app:
        out = Output()
        async with tailing(app.url, out, last_event_id=0):
            app.commit(1, pad=3 * 2**20)  # a 3 MiB `data:` line
            await out.wait_for(1)
        (event,) = [json.loads(line) for line in out.getvalue().splitlines()]
        assert event["data"]["pad"] == "x" * 3 * 2**20

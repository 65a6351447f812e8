"""Strange data in the database never crashes the daemon or corrupts the stream: bytes
that are not UTF-8 in a latin1 column, a 16 MB blob, deeply nested JSON, table and
column names with spaces, backticks, quotes and non-ASCII letters. Through the real
daemon, read back from `/events` and `/stream` (the throwaway server's
max_allowed_packet, 64 MiB, holds the blob's event)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.e2e_support import Setup, daemon
from tests.http_support import Sse
from tests.support import wait_for_events

pytestmark = pytest.mark.timeout(300)

TABLE = "we`ird 'tåble\" ñame"
COLUMN = "cöl `x` 'y'"


def quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


async def test_strange_data_is_captured_and_streamed(e2e: Setup) -> None:
    app = e2e.app
    table = f"`{app}`.{quoted(TABLE)}"
    e2e.sql(
        f"CREATE TABLE {table} (id INT PRIMARY KEY, {quoted(COLUMN)} VARCHAR(20),"
        " legacy VARCHAR(20) CHARACTER SET latin1, big LONGBLOB, doc JSON)"
    )
    blob = bytes(range(256)) * (16 * 2**20 // 256)  # 16 MiB
    async with daemon(e2e) as proc, aiohttp.ClientSession() as http:
        async with http.get(f"{e2e.url}/stream", params={"last_event_id": 0}) as response:
            sse = Sse(response)
            await sse.attached()

            def write() -> None:
                with e2e.conn.cursor() as cur:
                    # latin1 bytes 0x80-0xFF (not UTF-8 as they are), through a binary literal.
                    cur.execute(
                        f"INSERT INTO {table} VALUES (1, 'ünï \"q\" `b`', X'80818D8F909DE9FF',"
                        " NULL, %s)",
                        (nested(20),),
                    )
                    cur.execute(f"UPDATE {table} SET doc = %s WHERE id = 1", (nested(31),))
                    cur.execute(f"INSERT INTO {table} (id, big) VALUES (2, %s)", (blob,))
                    cur.execute(f"UPDATE {table} SET doc = %s WHERE id = 1", ('{"a": "\\u0000"}',))
                    cur.execute(f"INSERT INTO `{app}`.patient VALUES (1, 'after', 1)")

            await asyncio.to_thread(write)
            await asyncio.to_thread(wait_for_events, e2e.conn, 5, 120, proc, e2e.events)
            events = await asyncio.wait_for(sse.events(5), 120)
        assert [e["table"] for e in events] == [TABLE] * 4 + ["patient"]
        first = events[0]["data"]["after"]
        assert first[COLUMN] == 'ünï "q" `b`'
        with e2e.conn.cursor() as cur:  # the server's own reading of its latin1 (cp1252) bytes
            cur.execute(f"SELECT CONVERT(legacy USING utf8mb4) FROM {table} WHERE id = 1")
            assert first["legacy"] == cur.fetchone()[0] == "\u20ac\x81\x8d\x8f\x90\x9déÿ"
        assert first["doc"] == json.loads(nested(20))
        # Deeper than an event may hold (MariaDB's JSON stops at 31 levels): its text.
        deep = events[1]["data"]
        assert deep["after"]["doc"] == nested(31) and deep["changed"] == ["doc"]
        assert events[2]["data"]["after"]["big"] == blob.hex()  # whole: 32 MiB of hex
        assert events[3]["data"]["after"]["doc"] == {"a": "\x00"}
        async with http.get(f"{e2e.url}/events", params={"after_id": 0}) as response:
            assert response.status == 200
            stored = (await response.json())["events"]
        assert stored == events
        async with http.get(
            f"{e2e.url}/events", params={"table": f"{app}.{TABLE}", "after_id": 0}
        ) as response:
            assert len((await response.json())["events"]) == 4
        assert proc.poll() is None  # still capturing

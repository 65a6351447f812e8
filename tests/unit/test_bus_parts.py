"""The bus's pure parts: entries back to the exact event, the gap-filling order of the
Redis feed (with the table as a list), the reset decision, URLs without passwords."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cdc.bus.entries import BadEntry, entry, stored_event
from cdc.errors import ConfigError
from cdc.models import StoredEvent
from cdc.serve.feeds.redis import RedisFeed, split
from cdc.serve.feeds.table import catch_up
from cdc.serve.hub import Reset, reset_of
from cdc.settings import BusSettings, redis_url_shown
from cdc.wire import event_json
from tests.unit.test_hub import ListHistory


def event(i: int, **changes: object) -> StoredEvent:
    e = StoredEvent(
        i,
        "2026-05-12 12:00:00.000000",
        "7",
        "UPDATE",
        "bhima",
        "patient",
        str(i),
        json.dumps({"after": {"id": i}}),
        f"0-1-{i}",
    )
    return e._replace(**changes)


ODD = [
    event(1),
    event(2, timestamp="2026-05-12 12:00:00.123400", user_id=None, row_id='[1, "a"]'),
    event(
        3,
        data='{"after": {"x": 1.0, "y": 1e5, "s": "a,\\"context\\":b"}}',
        context='{"route": "/p"}',
    ),
    event(4, schema_name=None, table_name=None, row_id=None, type="LOGIN", context="null"),
    event(5, row_id="007", user_id="-12", data='{"big": 123456789012345678901234567890}'),
]


@pytest.mark.parametrize("e", ODD, ids=lambda e: str(e.id))
def test_an_entry_gives_back_the_same_frame(e: StoredEvent) -> None:
    fields = {k.encode(): v for k, v in entry(e).items()}
    back = stored_event(fields)
    assert event_json(back) == event_json(e)
    assert (back.id, back.type, back.schema_name, back.table_name) == (
        e.id,
        e.type,
        e.schema_name,
        e.table_name,
    )


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {b"event": b"not json"},
        {b"event": b"[1]"},
        {b"id": b"9", b"event": event_json(event(1))},
    ],
)
def test_a_foreign_entry_is_refused(fields: dict[bytes, bytes]) -> None:
    with pytest.raises(BadEntry):
        stored_event(fields)


@pytest.mark.parametrize(
    ("next_id", "ids", "run", "jump", "rest"),
    [
        (5, [5, 6, 7], [5, 6, 7], None, []),
        (5, [3, 4, 5, 6], [5, 6], None, []),  # older ids dropped
        (5, [5, 5, 6, 6, 7], [5, 6, 7], None, []),  # repeats dropped
        (5, [5, 6, 9, 10], [5, 6], 9, [9, 10]),  # a jump: 7 and 8 first
        (5, [8, 9], [], 8, [8, 9]),
        (5, [], [], None, []),
    ],
)
def test_split(
    next_id: int, ids: list[int], run: list[int], jump: int | None, rest: list[int]
) -> None:
    got_run, got_jump, got_rest = split(next_id, [event(i) for i in ids])
    assert [e.id for e in got_run] == run
    assert got_jump == jump
    assert [e.id for e in got_rest] == rest


class Sink:
    def __init__(self) -> None:
        self.ids: list[int] = []
        self.advanced: list[int] = []

    def publish(self, events: list[StoredEvent]) -> None:
        self.ids += [e.id for e in events]

    def advance(self, last_id: int) -> None:
        self.advanced.append(last_id)


async def test_the_feed_fills_every_jump_from_the_table_and_drops_repeats() -> None:
    table = ListHistory()
    table.rows = [event(i) for i in range(1, 41)]
    feed = RedisFeed(None, table)  # type: ignore[arg-type]  # the reader is not used here
    feed.next_id = 1
    sink = Sink()
    # Entries as Redis might give them: some skipped, a restart (repeats), a flush.
    for ids in ([1, 2, 3], [6, 7], [7, 8], [2, 3], [20, 21], [21, 22, 30]):
        await feed._hand_on(sink, [table.rows[i - 1] for i in ids])
    assert sink.ids == list(range(1, sink.ids[-1] + 1))
    assert feed.next_id == sink.ids[-1] + 1 >= 31


async def test_catch_up_steps_over_ids_the_table_lacks() -> None:
    table = ListHistory()
    table.rows = [event(i) for i in (1, 2, 5, 9)]
    sink = Sink()
    assert await catch_up(table, sink, 1) == 10  # type: ignore[arg-type]
    assert sink.ids == [1, 2, 5, 9]
    assert await catch_up(table, sink, 10) == 10  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("after", "oldest", "newest", "reset"),
    [
        (10, 1, 20, None),
        (20, 1, 20, None),  # the next id is the next to come
        (0, 1, 20, None),
        (4, 5, 20, None),  # 5 is held
        (3, 5, 20, Reset(5, "pruned")),
        (0, 5, 20, Reset(5, "pruned")),
        (21, 1, 20, Reset(21, "unknown")),
        (7, None, 0, Reset(1, "unknown")),  # an empty (rebuilt) store
    ],
)
def test_reset_decision(after: int, oldest: int | None, newest: int, reset: Reset | None) -> None:
    assert reset_of(after, oldest, newest) == reset


def test_a_reset_frame_has_no_id_line() -> None:
    reset, resumed, end = Reset(5, "pruned").frame.split(b"\n\n")
    assert reset == b'event: reset\ndata: {"first_id":5,"reason":"pruned"}'
    assert resumed == b": resumed\nid: 4" and end == b""


def test_redis_passwords_are_never_shown() -> None:
    url = "redis://:s3cret@cache.local:6380/2"
    assert redis_url_shown(url) == "redis://:***@cache.local:6380/2"
    assert redis_url_shown("redis://u:s3cret@h/0") == "redis://u:***@h/0"
    assert redis_url_shown("redis://h:6379/0") == "redis://h:6379/0"
    assert "s3cret" not in repr(BusSettings(url=url))


def test_a_bus_that_is_not_redis_is_refused_without_its_password() -> None:
    with pytest.raises(ConfigError) as refused:
        BusSettings(url="http://u:s3cret@cache:6379/0")
    assert "s3cret" not in str(refused.value.problem) and "redis://" in str(refused.value.fix)


def test_the_serve_side_never_imports_the_binlog_library() -> None:
    # A fresh interpreter: what `cdc serve` imports, and nothing of the binlog reader.
    code = (
        "import sys, cdc.cli, cdc.serving, cdc.serve.app, cdc.serve.feeds.redis, "
        "cdc.serve.feeds.table, cdc.bus.reader; "
        "sys.exit('pymysqlreplication' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

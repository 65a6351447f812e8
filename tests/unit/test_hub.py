"""The hub's hand-over from table to live: no event missed, none twice, whatever the timing.

The event table is a list here (`ListHistory`, the same two methods as `History`); the
server tests run the same against MariaDB.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from cdc.models import StoredEvent
from cdc.serve.hub import Hub, Subscription
from cdc.store.reader import Filters


def event(i: int, table: str = "patient", size: int = 0) -> StoredEvent:
    data = json.dumps({"after": {"id": i, "pad": "x" * size}})
    return StoredEvent(
        i, "2026-05-12 12:00:00.000000", None, "CREATE", "bhima", table, str(i), data, "t"
    )


class ListHistory:
    """The event table as a list; each read yields to the loop, so events land meanwhile."""

    def __init__(self) -> None:
        self.rows: list[StoredEvent] = []
        self.reads = 0

    async def after(
        self, last_id: int, filters: Filters, limit: int
    ) -> tuple[list[StoredEvent], int | None]:
        self.reads += 1
        await asyncio.sleep(0)
        rows = [e for e in self.rows if e.id > last_id and filters.matches(e)][:limit]
        await asyncio.sleep(0)
        return rows, None

    async def last_id(self) -> int:
        await asyncio.sleep(0)
        return self.rows[-1].id if self.rows else 0

    async def bounds(self) -> tuple[int | None, int]:
        await asyncio.sleep(0)
        return (self.rows[0].id if self.rows else None), await self.last_id()


class Client:
    """Collects what a subscription writes, optionally slowly or never."""

    def __init__(
        self,
        sub: Subscription,
        delay: float = 0.0,
        stall: bool = False,
        push: float | None = None,
    ) -> None:
        """`push`: the share of the hub's pushes taken at once (as a connection with room
        does; the others are refused, as by one with too much unsent); None: no push."""
        self.sub = sub
        self.delay = delay
        self.stall = stall
        self.data = bytearray()
        self.aborted = False
        self.pushed = 0
        self._takes = push
        self._rng = random.Random(len(self.data))
        self.task = asyncio.create_task(
            sub.run(self.write, self.abort, None if push is None else self.push)
        )
        self._never = asyncio.get_running_loop().create_future()

    def push(self, data: bytes) -> bool:
        assert not self.sub.blocked, "a push while the stream's own write is in progress"
        assert self._takes is not None
        if self._rng.random() >= self._takes:
            return False
        self.data += data
        self.pushed += 1
        return True

    async def write(self, data: bytes) -> None:
        if self.stall:
            await self._never  # like a socket nobody reads: the write never returns
        if self.delay:
            await asyncio.sleep(self.delay)
        self.data += data

    def abort(self) -> None:
        self.aborted = True
        if self.stall and not self._never.done():
            self._never.set_exception(ConnectionResetError("aborted"))

    def frames(self) -> list[dict[str, Any]]:
        out = []
        for block in bytes(self.data).split(b"\n\n"):
            fields: dict[str, Any] = {}
            for line in block.split(b"\n"):
                name, _, value = line.partition(b": ")
                if name in (b"id", b"event", b"data"):
                    fields[name.decode()] = value.decode()
            if fields:
                out.append(fields)
        return out

    def ids(self) -> list[int]:
        return [json.loads(f["data"])["id"] for f in self.frames() if "data" in f]


class Table:
    """The daemon's side: commit to the table, then publish (or advance)."""

    def __init__(self, hub: Hub, history: ListHistory) -> None:
        self.hub = hub
        self.history = history
        self.last = 0

    def commit(
        self, count: int, table: str = "patient", publish: bool = True, size: int = 0
    ) -> None:
        batch = [event(self.last + k + 1, table, size) for k in range(count)]
        self.history.rows.extend(batch)
        self.last += count
        if publish:
            self.hub.publish(batch)
        else:
            self.hub.advance(self.last)


async def settle(*clients: Client, until: int) -> None:
    for _ in range(2000):
        if all((c.sub.cursor or 0) >= until and not c.sub.blocked for c in clients):
            for _ in range(5):
                await asyncio.sleep(0)
            return
        await asyncio.sleep(0.001)
    raise AssertionError([c.sub.cursor for c in clients])


async def test_live_client_gets_every_event_in_order() -> None:
    history = ListHistory()
    hub = Hub(last_id=0)
    table = Table(hub, history)
    client = Client(hub.subscribe(Filters(), None, history))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    for _ in range(20):
        table.commit(random.randint(1, 5))
        await asyncio.sleep(0)
    await settle(client, until=table.last)
    assert client.ids() == list(range(1, table.last + 1))
    assert history.reads == 0  # all from memory
    hub.close()
    await client.task
    assert hub.clients == 0


async def test_a_client_without_id_starts_at_the_newest_event() -> None:
    history = ListHistory()
    hub = Hub(last_id=0)
    table = Table(hub, history)
    table.commit(10)
    client = Client(hub.subscribe(Filters(), None, history))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    table.commit(3)
    await settle(client, until=13)
    assert client.ids() == [11, 12, 13]
    hub.close()
    await client.task


async def test_the_hub_learns_the_head_from_the_table_when_not_told() -> None:
    history = ListHistory()
    history.rows = [event(i) for i in range(1, 8)]
    hub = Hub()  # the daemon did not say where the table ends
    client = Client(hub.subscribe(Filters(), None, history))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    table = Table(hub, history)
    table.last = 7
    table.commit(2)
    await settle(client, until=9)
    assert client.ids() == [8, 9]
    hub.close()
    await client.task


@pytest.mark.parametrize("seed", range(30))
async def test_resume_while_events_keep_arriving(seed: int) -> None:
    """Replay from the table, events landing all along, advance() and a small window;
    clients with and without the push path, some of whose pushes are refused."""
    rng = random.Random(seed)
    history = ListHistory()
    hub = Hub(last_id=0, capacity=rng.choice([1, 5, 50, 10_000]))
    table = Table(hub, history)
    table.commit(rng.randint(0, 300), publish=False)
    filters = [Filters(), Filters(tables=((None, "visit"),))]
    clients = []
    for _ in range(6):
        chosen = rng.choice(filters)
        start = rng.randint(0, table.last)
        sub = hub.subscribe(chosen, start, history, buffer=10**9)  # type: ignore[arg-type]
        push = rng.choice([None, 1.0, 0.7])
        clients.append((Client(sub, delay=rng.choice([0, 0, 0.001]), push=push), chosen, start))
    for _ in range(rng.randint(5, 40)):
        step = rng.random()
        if step < 0.1:
            table.commit(rng.randint(1, 30), publish=False)  # a huge transaction
        else:
            table.commit(rng.randint(1, 8), table=rng.choice(["patient", "visit"]))
        for _ in range(rng.randint(0, 3)):
            await asyncio.sleep(0)
    await settle(*(c for c, _, _ in clients), until=table.last)
    for client, chosen, start in clients:
        expected = [e.id for e in history.rows if e.id > start and chosen.matches(e)]
        assert client.ids() == expected
    hub.close()
    await asyncio.gather(*(c.task for c, _, _ in clients))


async def test_a_stalled_client_is_dropped_and_does_not_hold_up_the_others() -> None:
    history = ListHistory()
    hub = Hub(last_id=0, stuck_after=0)
    table = Table(hub, history)
    stalled = Client(hub.subscribe(Filters(), None, history, buffer=100), stall=True)  # type: ignore[arg-type]
    others = [Client(hub.subscribe(Filters(), None, history, buffer=100)) for _ in range(3)]  # type: ignore[arg-type]
    await asyncio.sleep(0)
    for _ in range(30):
        table.commit(10)
        await settle(*others, until=table.last)  # each batch reaches them while one is stuck
    with pytest.raises(ConnectionResetError):  # as aiohttp's write raises on a cut connection
        await stalled.task
    assert stalled.aborted and stalled.sub.dropped == "slow"
    assert hub.clients == 3
    for client in others:
        assert client.ids() == list(range(1, 301))
    hub.close()
    await asyncio.gather(*(c.task for c in others))


async def test_filtered_client_heartbeat_moves_its_resume_point() -> None:
    history = ListHistory()
    hub = Hub(last_id=0)
    table = Table(hub, history)
    sub = hub.subscribe(Filters(tables=((None, "visit"),)), None, history, heartbeat=0.03)  # type: ignore[arg-type]
    client = Client(sub)
    await asyncio.sleep(0)
    table.commit(1, table="visit")
    table.commit(5, table="patient")
    await settle(client, until=6)
    await asyncio.sleep(0.03)
    hub.tick()
    await asyncio.sleep(0.01)
    frames = client.frames()
    assert client.ids() == [1]
    assert frames[-1] == {"id": "6"}  # an id-only frame: Last-Event-ID moves, nothing shown
    hub.close()
    await client.task


async def test_the_window_is_bounded_by_count_and_bytes() -> None:
    hub = Hub(last_id=0, capacity=100, max_bytes=50_000)
    history = ListHistory()
    table = Table(hub, history)
    for _ in range(50):
        table.commit(7)
    assert len(hub._frames) - hub._off == 100
    table.commit(20, size=10_000)
    held = hub._frames[hub._off :]
    assert sum(map(len, held)) <= 50_000 + 11_000 and len(held) >= 1
    assert hub._base + len(held) - 1 == hub.head == table.last
    # A client behind the window reads the rest from the table.
    client = Client(hub.subscribe(Filters(), 0, history))  # type: ignore[arg-type]
    await settle(client, until=table.last)
    assert client.ids() == list(range(1, table.last + 1))
    hub.close()
    await client.task


async def test_publish_tolerates_repeats_and_holes() -> None:
    history = ListHistory()
    hub = Hub(last_id=0)
    history.rows = [event(i) for i in range(1, 11)]
    client = Client(hub.subscribe(Filters(), 0, history))  # type: ignore[arg-type]
    hub.publish(history.rows[:3])
    hub.publish(history.rows[1:4])  # 2, 3 again
    hub.publish(history.rows[6:])  # 5, 6, 7 never handed over: read from the table
    await settle(client, until=10)
    assert client.ids() == list(range(1, 11))
    hub.close()
    await client.task


async def test_a_resume_before_anything_is_published_reads_the_table() -> None:
    """After a restart, the daemon may publish nothing for a while: resumes still catch up."""
    history = ListHistory()
    history.rows = [event(i) for i in range(1, 11)]
    hub = Hub()
    client = Client(hub.subscribe(Filters(), 5, history))  # type: ignore[arg-type]
    await settle(client, until=10)
    assert client.ids() == [6, 7, 8, 9, 10]
    hub.publish(history.rows[8:])  # 9, 10 again, published late: already sent
    history.rows.append(event(11))
    hub.publish(history.rows[10:])
    await settle(client, until=11)
    assert client.ids() == [6, 7, 8, 9, 10, 11]
    hub.close()
    await client.task


async def test_a_slow_client_that_keeps_reading_is_not_dropped() -> None:
    """Far behind but making progress: it catches up (from the table), not cut off."""
    history = ListHistory()
    hub = Hub(last_id=0, capacity=20, stuck_after=0.1)
    table = Table(hub, history)
    slow = Client(hub.subscribe(Filters(), None, history, buffer=10), delay=0.002)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    for _ in range(100):
        table.commit(5)
        await asyncio.sleep(0.001)
        hub.tick()
    await settle(slow, until=table.last)
    assert slow.sub.dropped is None
    assert slow.ids() == list(range(1, 501))
    hub.close()
    await slow.task


async def test_clients_waiting_at_the_head_are_pushed_new_events_in_order() -> None:
    history = ListHistory()
    hub = Hub(last_id=0)
    table = Table(hub, history)
    visits = Filters(tables=((None, "visit"),))
    everyone = Client(hub.subscribe(Filters(), None, history), push=1.0)  # type: ignore[arg-type]
    some = Client(hub.subscribe(visits, None, history), push=1.0)  # type: ignore[arg-type]
    refused = Client(hub.subscribe(Filters(), None, history), push=0.0)  # type: ignore[arg-type]
    await settle(everyone, some, refused, until=0)
    for k in range(30):
        table.commit(1 + k % 3, table=("visit", "patient")[k % 2])
        await settle(everyone, some, refused, until=table.last)
    assert everyone.ids() == list(range(1, table.last + 1))
    assert some.ids() == [e.id for e in history.rows if e.table_name == "visit"]
    assert refused.ids() == everyone.ids()  # the ordinary way, when a push is refused
    assert everyone.pushed == 30 and some.pushed == 15 and refused.pushed == 0
    assert history.reads == 0
    hub.close()
    await asyncio.gather(everyone.task, some.task, refused.task)

"""Live fan-out: committed events to every stream client, gapless across replay and live.

The hub keeps one shared window of the latest events, each rendered once as an SSE frame.
A client is a cursor into it: the id of the last event it has dealt with. Whatever the
window no longer holds (a resume from long ago, a transaction too big to keep in
memory) the client reads from the event table through `History`, then comes back to the
window. A client that stops reading is dropped once it lags too far; its memory stays
bounded meanwhile, since the window is shared and each client writes one chunk at a time.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
import structlog

from cdc import metrics
from cdc.store.reader import HistoryUnavailable
from cdc.wire import sse_frame

if TYPE_CHECKING:
    from cdc.models import StoredEvent
    from cdc.store.reader import Filters, History

log = structlog.get_logger(__name__)

CHUNK_BYTES = 64 * 1024  # most written to one client at once
REPLAY_BATCH = 1000  # events read from the table per query while catching up
HEARTBEAT = b": heartbeat\n\n"


class Hub:
    """Holds the latest events as SSE frames and wakes the clients when more arrive.

    `last_id` is the id of the last event already in the table when the daemon starts
    (or call `advance(last_id)` then); clients that connect without an id start there.
    `capacity` and `max_bytes` bound the shared window (events and bytes). A client
    more than its buffer behind that has taken no data for `stuck_after` seconds is
    dropped.
    """

    def __init__(
        self,
        last_id: int | None = None,
        capacity: int = 10_000,
        max_bytes: int = 64 * 2**20,
        stuck_after: float = 1.0,
    ) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.stuck_after = stuck_after
        self._head = last_id  # newest event committed to the table, if known
        # The window: frames[off:] are the events base .. head, with cumulative sizes.
        self._base = (last_id or 0) + 1
        self._off = 0
        self._events: list[StoredEvent] = []
        self._frames: list[bytes] = []
        self._ends: list[int] = []
        self._total = 0
        self._waiters: list[asyncio.Future[None]] = []
        # Clients waiting at the head that can take a frame without a task switch: new
        # events are pushed to them in `publish` (see `Subscription.push`).
        self._parked: dict[Subscription, asyncio.Future[None]] = {}
        self._subscriptions: set[Subscription] = set()
        self._swept_at = time.monotonic()
        self.closed = False

    @property
    def head(self) -> int | None:
        """The id of the newest committed event the hub knows of."""
        return self._head

    @property
    def clients(self) -> int:
        return len(self._subscriptions)

    def publish(self, events: Sequence[StoredEvent]) -> None:
        """Hand over events just committed, in id order, ids following on without gaps."""
        if not events:
            return
        if self._head is None:
            self._head = events[0].id - 1
            self._base = events[0].id
        if events[0].id <= self._head:
            # Already known to be in the table (the head was learnt from it meanwhile).
            log.debug("hub_events_repeated", first_id=events[0].id, head=self._head)
            events = [e for e in events if e.id > self._head]
            if not events:
                return
        previous: int | None = self._head
        if events[0].id != self._head + 1:
            # Not in memory, but committed: clients read the missing ids from the table.
            log.warning("hub_events_missing", first_id=events[0].id, head=self._head)
            self._reset(events[0].id - 1)
            previous = None  # nobody parked at the old head can be pushed the new ones
        first = len(self._frames)
        for e in events:
            frame = sse_frame(e)
            self._total += len(frame)
            self._events.append(e._replace(data=""))  # kept for the filters only
            self._frames.append(frame)
            self._ends.append(self._total)
        self._head = events[-1].id
        if self._parked:
            self._push(previous, first)
        self._trim()
        metrics.hub_last_event_id.set(self._head)
        self._maybe_sweep()
        self._wake(parked=False)

    def advance(self, last_id: int) -> None:
        """Events up to `last_id` are committed but not handed over (a huge transaction).

        Clients behind it read them from the table.
        """
        if self._head is not None and last_id <= self._head:
            return
        self._reset(last_id)
        self._head = last_id
        metrics.hub_last_event_id.set(last_id)
        self._maybe_sweep()
        self._wake()

    def _learn(self, last_id: int) -> None:
        if self._head is None:
            self._reset(last_id)
            self._head = last_id

    def tick(self) -> None:
        """Wake the clients that may owe a heartbeat, and drop those stuck too far
        behind. A parked client written to lately stays parked: with many clients, waking
        each of them every few seconds costs as much as an event does."""
        self._maybe_sweep()
        now = time.monotonic()
        for sub in list(self._parked):
            if sub.ended or sub.dropped or now - sub.last_write >= sub.heartbeat / 2:
                self._unpark(sub)
        self._wake(parked=False)

    def _maybe_sweep(self) -> None:
        if time.monotonic() - self._swept_at >= self.stuck_after:
            self.sweep()

    def sweep(self) -> None:
        """Drop the clients lagging more than their buffer and stuck in one write.

        Stuck: inside the same write since the previous sweep (at least `stuck_after`
        seconds ago), its client reading nothing. A client far behind but reading
        (catching up from the table) is left alone.
        """
        self._swept_at = time.monotonic()
        head = self._head
        if head is None:
            return
        for sub in list(self._subscriptions):
            stuck = sub.blocked and sub.writes == sub.writes_at_sweep
            if stuck and sub.cursor is not None and head - sub.cursor > sub.buffer:
                sub.drop("slow")
            sub.writes_at_sweep = sub.writes

    def close(self) -> None:
        """End every stream (at shutdown); stuck clients are cut off."""
        self.closed = True
        for sub in list(self._subscriptions):
            if sub.blocked:
                sub.drop("shutdown")
        self._wake()

    def subscribe(
        self,
        filters: Filters,
        after: int | None,
        history: History,
        buffer: int = 10_000,
        heartbeat: float = 15.0,
    ) -> Subscription:
        """A new client that wants the events after id `after` (None: from now on)."""
        self.capacity = max(self.capacity, buffer)
        sub = Subscription(self, filters, after, history, buffer, heartbeat)
        self._subscriptions.add(sub)
        metrics.stream_clients.set(len(self._subscriptions))
        return sub

    # -- internals used by Subscription --------------------------------------------

    def _unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)
        metrics.stream_clients.set(len(self._subscriptions))

    def _wait(self, sub: Subscription | None = None) -> asyncio.Future[None]:
        """A future resolved at the next wake; `sub` parks there (it can be pushed to)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if sub is None:
            self._waiters.append(future)
        else:
            self._parked[sub] = future
        return future

    def _wake(self, parked: bool = True) -> None:
        """Resolves the waiters' futures (and the parked clients' unless `parked` is
        False: after a publish, those pushed to have nothing more to do)."""
        waiters, self._waiters = self._waiters, []
        if parked and self._parked:
            waiters.extend(self._parked.values())
            self._parked = {}
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def _unpark(self, sub: Subscription) -> None:
        future = self._parked.pop(sub, None)
        if future is not None and not future.done():
            future.set_result(None)

    def _push(self, previous: int | None, first: int) -> None:
        """Writes the events just published (frames `first:`) straight to each parked
        client whose cursor was at the previous head; any other (behind, closing, with
        too much unsent, or the frames too big for one write) is woken and goes the
        ordinary way."""
        frames, events = self._frames[first:], self._events[first:]
        everything: bytes | None = None
        now = time.monotonic()
        for sub in list(self._parked):
            push = sub.push
            if push is None or previous is None or sub.cursor != previous or sub.ended:
                self._unpark(sub)
                continue
            sent: int | None
            if sub.match is None:
                if everything is None:
                    everything = b"".join(frames)
                data, sent, count = everything, events[-1].id, len(events)
            else:
                picked = [k for k, e in enumerate(events) if sub.match.matches(e)]
                data = b"".join(frames[k] for k in picked)
                sent, count = (events[picked[-1]].id, len(picked)) if picked else (None, 0)
            if sub.dropped or (data and (len(data) > CHUNK_BYTES or not push(data))):
                self._unpark(sub)
                continue
            sub.cursor = events[-1].id
            if sent is not None:
                sub.sent = sent
                sub.events_sent += count
                sub.writes += 1
                sub.last_write = now

    def _reset(self, last_id: int) -> None:
        self._events.clear()
        self._frames.clear()
        self._ends.clear()
        self._off = 0
        self._base = last_id + 1

    def _before(self, i: int) -> int:
        """Bytes published before frame i (cumulative)."""
        return self._ends[i] - len(self._frames[i])

    def _trim(self) -> None:
        """Forget the oldest events beyond `capacity` or `max_bytes` (keeping the newest)."""
        last = len(self._frames) - 1
        if last < self._off:
            return
        keep_from = max(self._off, last + 1 - self.capacity)
        if self._total - self._before(keep_from) > self.max_bytes:
            # The first frame whose start leaves at most max_bytes after it.
            keep_from = bisect.bisect_left(self._ends, self._total - self.max_bytes, lo=keep_from)
            keep_from += 1
        keep_from = min(keep_from, last)
        self._base += keep_from - self._off
        self._off = keep_from
        if self._off > 1024 and self._off * 2 > len(self._frames):
            del self._events[: self._off], self._frames[: self._off], self._ends[: self._off]
            self._off = 0

    def _take(
        self, after: int, filters: Filters | None
    ) -> tuple[bytes, int, int | None, int] | None:
        """Frames after id `after` from the window: (data, last id taken, last id sent,
        events sent).

        None when `after` is older than the window holds.
        """
        if after + 1 < self._base:
            return None
        i = self._off + (after + 1 - self._base)
        if i >= len(self._frames):
            return b"", after, None, 0
        j = bisect.bisect_right(self._ends, self._before(i) + CHUNK_BYTES, lo=i)
        j = max(j, i + 1)
        last_taken = self._events[j - 1].id
        if filters is None:
            return b"".join(self._frames[i:j]), last_taken, last_taken, j - i
        picked = [k for k in range(i, j) if filters.matches(self._events[k])]
        if not picked:
            return b"", last_taken, None, 0
        data = b"".join(self._frames[k] for k in picked)
        return data, last_taken, self._events[picked[-1]].id, len(picked)


Write = Callable[[bytes], Awaitable[None]]
Push = Callable[[bytes], bool]


@dataclass(frozen=True, slots=True)
class Reset:
    """A resume from history the store does not hold: `pruned` (older than its oldest
    event) or `unknown` (beyond its newest: never issued by this store). The stream
    goes on from `first_id`."""

    first_id: int
    reason: str

    @property
    def frame(self) -> bytes:
        """The reset frame (no `id:` line), then an id-only frame that moves the client's
        Last-Event-ID to just before `first_id`, so that a reconnection before the next
        event resumes from there instead of being reset again."""
        data = orjson.dumps({"first_id": self.first_id, "reason": self.reason})
        return b"event: reset\ndata: %s\n\n: resumed\nid: %d\n\n" % (data, self.first_id - 1)


def reset_of(after: int, oldest: int | None, newest: int) -> Reset | None:
    """The reset a client resuming after id `after` gets (None: its next id is held, or
    is the next to come). Beyond the newest, it goes on with the next event committed."""
    if after > newest:
        return Reset(newest + 1, "unknown")
    if oldest is not None and after + 1 < oldest:
        return Reset(oldest, "pruned")
    return None


class Subscription:
    """One stream client: its filters, its cursor, and the loop that feeds it."""

    def __init__(
        self,
        hub: Hub,
        filters: Filters,
        after: int | None,
        history: History,
        buffer: int,
        heartbeat: float,
    ) -> None:
        self.hub = hub
        self.filters = filters
        if after is None and hub.head is not None:
            after = hub.head  # live from the newest event committed (see `attach`)
        self.cursor = after  # every event up to here was sent, or does not pass the filters
        self.sent = after  # the id of the last event sent
        self.history = history
        self.buffer = buffer
        self.heartbeat = heartbeat
        self.blocked = False  # inside a write, waiting for the client to read
        self.writes = 0  # writes completed
        self.writes_at_sweep = -1
        self.dropped: str | None = None
        self.ended: str | None = None  # why it was ended cleanly (see `end`)
        self.events_sent = 0  # for the access log
        self.reset: Reset | None = None  # said first, when the resume point is not held
        self.match = None if filters.selects_all else filters  # None: every event passes
        # Writes a chunk now, without waiting, or says False (see `run`).
        self.push: Push | None = None
        self.last_write = time.monotonic()
        # A Last-Event-ID to check (a `since` start is found by time, not resumed).
        self._resume = after is not None and filters.since is None
        self._abort: Callable[[], None] | None = None

    async def attach(self) -> None:
        """Take the position of a client that starts live (no id): the newest event
        committed. Once attached, every later commit reaches it; the app attaches before
        it sends the first bytes, so a client that has read them misses nothing."""
        if self.hub.head is None:
            # The daemon has not said where the table ends: ask the table.
            self.hub._learn(await self.history.last_id())
        if self.cursor is None:
            self.cursor = self.sent = self.hub.head
        if self._resume and self.cursor is not None:
            self._resume = False
            try:
                oldest, newest = await self.history.bounds()
            except HistoryUnavailable as error:
                # Not knowable now: the stream goes on as asked (replay waits for the table).
                log.warning("stream_reset_unchecked", error=str(error))
                return
            self.reset = reset_of(self.cursor, oldest, max(newest, self.hub.head or 0))
            if self.reset is not None:
                log.info(
                    "stream_reset",
                    after=self.cursor,
                    first_id=self.reset.first_id,
                    reason=self.reset.reason,
                )
                self.cursor = self.reset.first_id - 1

    def drop(self, reason: str) -> None:
        """Cut the client off; it comes back with `Last-Event-ID`."""
        if self.dropped:
            return
        self.dropped = reason
        if reason == "slow":
            metrics.stream_clients_dropped.inc()
            log.info("stream_client_dropped", reason=reason, cursor=self.cursor, head=self.hub.head)
        if self._abort is not None:
            self._abort()

    def end(self, reason: str) -> None:
        """End the stream cleanly at its next turn (its credential expired or was
        revoked); a client stuck in a write is cut off instead."""
        if self.ended or self.dropped:
            return
        self.ended = reason
        if self.blocked:
            self.drop(reason)
        else:
            self.hub._wake()

    def close(self) -> None:
        """Forget the client (the stream has ended)."""
        self.hub._unsubscribe(self)

    async def run(self, write: Write, abort: Callable[[], None], push: Push | None = None) -> None:
        """Feed the client through `write` until the hub closes or the client is dropped.

        `abort` cuts the connection (used to drop a client stuck in `write`). `push`, when
        given, writes a chunk at once if the connection has room (False otherwise): while
        this client waits at the head, the hub writes new events with it in `publish`,
        saving a task switch per client per event (the cost of a big fan-out).
        """
        self._abort = abort
        self.push = push
        hub = self.hub
        try:
            await self.attach()
            assert self.cursor is not None
            if self.reset is not None:
                await self._write(write, self.reset.frame)
            while not (hub.closed or self.dropped or self.ended):
                taken = hub._take(self.cursor, self.match)
                if taken is None:
                    await self._replay(write)
                    continue
                data, self.cursor, sent, count = taken
                if sent is not None:
                    self.sent = sent
                    self.events_sent += count
                if data:
                    await self._write(write, data)
                    continue
                if hub.head is not None and self.cursor < hub.head:
                    continue  # filtered out; more to look at
                if time.monotonic() - self.last_write >= self.heartbeat * 2 / 3:
                    await self._write(write, self._heartbeat())
                await hub._wait(self if push is not None else None)
        finally:
            hub._unpark(self)
            self.close()

    def _heartbeat(self) -> bytes:
        # An id-only frame moves the client's Last-Event-ID past the events its filters
        # skipped, so that a resume does not read them from the table again.
        if self.cursor is not None and self.sent is not None and self.cursor > self.sent:
            self.sent = self.cursor
            return b": heartbeat\nid: %d\n\n" % self.cursor
        return HEARTBEAT

    async def _write(self, write: Write, data: bytes) -> None:
        self.blocked = True
        try:
            await write(data)
        finally:
            self.blocked = False
        self.writes += 1
        self.last_write = time.monotonic()

    async def _replay(self, write: Write) -> None:
        """Catch up from the table: the events after the cursor, up to the window."""
        assert self.cursor is not None
        head = self.hub.head  # committed already, so the query below sees all up to it
        rows, read_to = await self.history.after(self.cursor, self.filters, REPLAY_BATCH)
        if rows:
            chunk: list[bytes] = []
            size = 0
            for e in rows:
                frame = sse_frame(e)
                chunk.append(frame)
                size += len(frame)
                if size >= CHUNK_BYTES:
                    await self._write(write, b"".join(chunk))
                    chunk, size = [], 0
                    if self.dropped or self.ended or self.hub.closed:
                        return
            if chunk:
                await self._write(write, b"".join(chunk))
            self.sent = rows[-1].id
            self.events_sent += len(rows)
        if len(rows) == REPLAY_BATCH:
            self.cursor = rows[-1].id
        else:
            # The table was read up to `read_to` (a window of a narrow filter) or its end.
            seen = (head or 0) if read_to is None else min(read_to, head or 0)
            self.cursor = max(rows[-1].id if rows else self.cursor, seen)

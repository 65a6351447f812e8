"""Shared pieces of the HTTP tests: an event database, a running server, an SSE reader.
 The server runs for real (aiohttp on a free port, History on MariaDB);
events reach the hub as the daemon hands them over: committed to the table, then
published.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from cdc._testing.mariadb import MariaDB
from cdc.models import CaptureState, CaptureStatus, StoredEvent
from cdc.sections import AuthSettings
from cdc.serve import app as server
from cdc.serve.hub import Hub
from cdc.settings import Dsn, HttpSettings
from cdc.store.reader import History
from cdc.store.schema import init_schema

_numbers = itertools.count(1)


@dataclass
class EventDb:
    """A fresh database holding an empty event table, and a connection to it."""

    server: MariaDB
    name: str
    conn: Any
    last: int = 0

    def dsn(self) -> Dsn:
        return Dsn.parse(f"mysql://root@127.0.0.1:{self.server.port}/{self.name}")

    def insert(self, events: list[StoredEvent]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO `{self.name}`.event (id, timestamp, user_id, type, schema_name,"
                " table_name, row_id, data, txn, context)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                events,
            )
        self.last = max(self.last, *(e.id for e in events))

    def new_events(self, count: int, **fields: Any) -> list[StoredEvent]:
        batch = [make_event(self.last + k + 1, **fields) for k in range(count)]
        self.insert(batch)
        return batch


def make_event(
    i: int,
    table: str = "patient",
    schema: str = "bhima",
    type: str = "UPDATE",
    timestamp: str = "2026-05-12 12:19:40.000000",
    row_id: str | None = None,
    user_id: str | None = "7",
    pad: int = 0,
) -> StoredEvent:
    data: dict[str, Any] = {"after": {"id": i, "name": f"patient {i}"}}
    if type == "UPDATE":
        data["before"] = {"id": i, "name": f"old {i}"}
        data["changed"] = ["name"]
    elif type == "DELETE":
        data = {"before": data["after"]}
    if pad:
        data["pad"] = "x" * pad
    return StoredEvent(
        i,
        timestamp,
        user_id,
        type,
        schema,
        table,
        str(i) if row_id is None else row_id,
        json.dumps(data),
        f"0-1-{i}",
    )


@contextlib.contextmanager
def new_event_db(mariadb: MariaDB) -> Iterator[EventDb]:
    """A fresh event database (removed afterwards); the `event_db` fixture."""
    name = f"srv_{next(_numbers)}"
    init_schema(Dsn.parse(f"mysql://root@127.0.0.1:{mariadb.port}/{name}"))
    conn = mariadb.connect(name)
    try:
        yield EventDb(mariadb, name, conn)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@dataclass
class Running:
    """A started HTTP server with its hub and history."""

    http: server.HttpServer
    hub: Hub
    history: History
    db: EventDb
    status: CaptureStatus = field(default_factory=CaptureStatus)

    @property
    def url(self) -> str:
        return self.http.url

    def commit(self, count: int, **fields: Any) -> list[StoredEvent]:
        """As the daemon does: write events to the table, then hand them to the hub."""
        batch = self.db.new_events(count, **fields)
        self.hub.publish(batch)
        return batch


@contextlib.asynccontextmanager
async def running(
    db: EventDb,
    auth: AuthSettings | None = None,
    clock: Callable[[], float] = time.time,
    **settings: Any,
) -> AsyncIterator[Running]:
    """The real server on a free port over `db`; `auth` configures its credentials and
    `clock` is the wall clock it judges expiry by (tests move it forward)."""
    with db.conn.cursor() as cur:
        cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM `{db.name}`.event")
        last = int(cur.fetchone()[0])
    hub = Hub(last_id=last)
    history = History(db.dsn())
    status = CaptureStatus(
        state=CaptureState.CAPTURING,
        position="binlog.000003:1234",
        lag_seconds=0.5,
        last_event_id=last,
    )
    options: dict[str, Any] = {"listen": "127.0.0.1:0", **settings}
    running_ = Running(None, hub, history, db, status)  # type: ignore[arg-type]
    http_settings = HttpSettings(**options)
    authenticator = server.prepare_auth(http_settings, auth or AuthSettings(), clock)
    http = await server.start(
        http_settings, hub, history, lambda: running_.status, auth=authenticator
    )
    running_.http = http
    try:
        yield running_
    finally:
        await http.stop()
        await history.close()


class Sse:
    """Reads server-sent events from an open response, frame by frame."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.last_id: str | None = None
        self.retry: int | None = None
        self.comments = 0

    async def attached(self) -> None:
        """Reads up to the `retry:` hint, which the server sends once the stream is
        positioned: every event committed from now on reaches this client."""
        while self.retry is None:
            raw = await self.response.content.readline(max_line_length=2**30)
            if not raw:
                raise AssertionError("the stream ended before its retry: hint")
            line = raw.decode().rstrip("\n")
            if line.startswith("retry:"):
                self.retry = int(line.partition(":")[2])

    async def frame(self) -> dict[str, str] | None:
        """The next frame with an id or data (None at the end of the stream)."""
        fields: dict[str, str] = {}
        while True:
            raw = await self.response.content.readline(max_line_length=2**30)
            if not raw:
                return None
            line = raw.decode().rstrip("\n")
            if not line:
                if "id" in fields or "data" in fields:
                    if "id" in fields:
                        self.last_id = fields["id"]
                    return fields
                fields = {}
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "retry":
                self.retry = int(value)
            elif name in ("id", "event", "data"):
                fields[name] = value

    async def events(self, count: int) -> list[dict[str, Any]]:
        """The next `count` events (skipping id-only frames), parsed."""
        out: list[dict[str, Any]] = []
        while len(out) < count:
            frame = await self.frame()
            if frame is None:
                raise AssertionError(f"stream ended after {len(out)} of {count} events")
            if "data" in frame:
                event = json.loads(frame["data"])
                assert frame["id"] == str(event["id"]) and frame["event"] == event["type"]
                out.append(event)
        return out


@contextlib.asynccontextmanager
async def stream(
    session: aiohttp.ClientSession,
    url: str,
    params: Any = None,
    last_event_id: int | None = None,
    token: str | None = None,
) -> AsyncIterator[Sse]:
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with session.get(f"{url}/stream", params=params, headers=headers) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"] == "text/event-stream"
        sse = Sse(response)
        await sse.attached()
        yield sse


def all_ids(db: EventDb, where: str = "1") -> list[int]:
    with db.conn.cursor() as cur:
        cur.execute(f"SELECT id FROM `{db.name}`.event WHERE {where} ORDER BY id")
        return [int(r[0]) for r in cur.fetchall()]


__all__ = [
    "EventDb",
    "Running",
    "Sse",
    "all_ids",
    "make_event",
    "new_event_db",
    "running",
    "stream",
]

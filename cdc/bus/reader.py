"""`cdc serve`'s side of the bus: new entries of the Redis stream (`XREAD BLOCK`), with
the asyncio client. Redis errors become `BusDown`, so callers need not know `redis`."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import redis.asyncio
import structlog
from redis.exceptions import RedisError

from cdc.bus.entries import BadEntry, stored_event

if TYPE_CHECKING:
    from cdc.models import StoredEvent
    from cdc.settings import BusSettings

log = structlog.get_logger(__name__)

START = "0-0"  # before every entry
READ_SLACK = 10.0  # seconds a busy worker may take to come back to a read's answer


class BusDown(Exception):
    """Redis cannot be read right now (down, restarting, unreachable)."""


class BusReader:
    """Reads the stream of `settings` from a cursor (a stream entry id)."""

    def __init__(self, settings: BusSettings) -> None:
        assert settings.url is not None
        self.settings = settings
        timeout = settings.timeout
        self._client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            settings.url,
            socket_connect_timeout=timeout,
            # XREAD BLOCK holds the socket open this long before it answers; and a worker
            # busy writing to thousands of clients may come back to the answer seconds
            # late (an asyncio timeout counts that too), which is not Redis being down.
            socket_timeout=timeout + settings.block_ms / 1000 + READ_SLACK,
        )

    async def tail(self) -> str:
        """The id of the stream's newest entry (`0-0` when there is none): read from
        there to get what is added from now on."""
        try:
            newest: Any = await self._client.xrevrange(self.settings.stream, count=1)
        except RedisError as error:
            raise BusDown(type(error).__name__) from None
        return newest[0][0].decode() if newest else START

    async def read(self, cursor: str, count: int = 1000) -> tuple[list[StoredEvent], str]:
        """The events of the entries after `cursor` (waiting up to `block_ms` for one),
        and the cursor to read on from."""
        try:
            answer: Any = await self._client.xread(
                {self.settings.stream: cursor}, count=count, block=self.settings.block_ms
            )
        except RedisError as error:
            raise BusDown(type(error).__name__) from None
        events: list[StoredEvent] = []
        for _stream, entries in answer or ():
            for entry_id, fields in entries:
                cursor = entry_id.decode()
                try:
                    events.append(stored_event(fields))
                except BadEntry as error:
                    log.warning("bus_entry_ignored", entry=cursor, problem=str(error))
        return events, cursor

    async def close(self) -> None:
        with contextlib.suppress(RedisError):
            await self._client.aclose()

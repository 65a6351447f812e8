"""The seams between the roles: where changes come from (`Source`), where committed
events go (`Publish`), and how a serving process learns of them (`Feed` into a `LiveSink`).

The binlog is one `Source`; the in-process hand-over is one `Feed`. Each role depends on
these, never on another role's classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import threading

    from cdc.models import Item, Position, StoredEvent


class Source(Protocol):
    """Row changes of the captured server, grouped by source transaction."""

    def current(self) -> Position:
        """Where the source is now: the start when nothing is stored yet."""
        ...

    def read(self, start: Position, stop: threading.Event) -> Iterator[Item]:
        """`Changes`, `Commit` and `Heartbeat` items from `start` on, until `stop` is set
        (checked at least every few seconds) or the source fails (it raises)."""
        ...


Publish = Callable[["Sequence[StoredEvent] | None", int], None]
"""Called after each commit to the event table, from the capture thread: the events
committed (None when there were too many to hold: read them from the table) and the
id of the last one."""


class LiveSink(Protocol):
    """What a feed hands committed events to (the stream hub)."""

    def publish(self, events: Sequence[StoredEvent]) -> None:
        """Events just committed, in id order."""
        ...

    def advance(self, last_id: int) -> None:
        """Events up to `last_id` are committed, but not handed over: read them from the table."""
        ...


class Feed(Protocol):
    """How a serving process learns of committed events."""

    async def run(self, sink: LiveSink) -> None:
        """Hand every committed event to `sink`, in id order, until cancelled."""
        ...

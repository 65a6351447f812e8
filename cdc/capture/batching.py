"""When the writer commits: the batching policy of the capture loop, pure.

Source transactions are grouped into one sink transaction (one commit of events and
checkpoint) while they arrive in bursts, up to a number of events or an age; a trickle
is committed at once, so an idle system adds no latency. Work that captured nothing
(other tables) moves the checkpoint now and then only, and the daemon's own writes alone
only once the binlog has moved to another file (each checkpoint write would otherwise
cause the next: a feedback loop; but the stored file must not be purged under a running
daemon).

`Batcher` is told what arrived and when (`changes`, `commit`, `nothing`) and answers
what to do; it holds no I/O and no clock of its own, so it is tested by tables.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from cdc.models import Commit

POLL = 0.5  # seconds the writer waits for an item when no sink transaction is open


class Action(enum.Enum):
    NONE = "none"
    COMMIT = "commit"  # commit the open sink transaction at `Batcher.last_commit`
    STORE_IDLE = "store_idle"  # store `Batcher.idle` alone (nothing to write)
    ROLLBACK = "rollback"  # forget the open sink transaction (read again next time)


@dataclass(slots=True)
class Batcher:
    """The state of the open sink transaction, and the decisions about it.

    `max_events` and `max_seconds` bound a sink transaction; `linger` is how long to wait
    for the next source transaction while they come in a burst (closer together than
    `linger`); `idle_every` is how often a position with nothing to write is stored.
    """

    max_events: int
    max_seconds: float
    linger: float
    idle_every: float
    open: bool = False  # a sink transaction holds events
    clean: bool = True  # ... and only whole source transactions
    events: int = 0  # events in it
    opened_at: float = 0.0
    last_commit: Commit | None = None  # newest source commit inside it
    idle: Commit | None = None  # newest source commit with nothing to write, not stored
    stored_at: float = 0.0  # when a position was last stored
    stored_file: str = ""  # the binlog file of the position last stored
    last_arrival: float = -math.inf  # when the last source commit arrived
    bursting: bool = False  # source commits arrive closer together than `linger`

    def timeout(self, queue_empty: bool) -> float:
        """How long to wait for the next item: `linger` while a burst (or a queue that
        is not empty) may add to the open batch, 0 when it is open otherwise (commit what
        is there when nothing is waiting), `POLL` when nothing is open."""
        if self.open and (self.bursting or not queue_empty):
            return self.linger
        if self.open:
            return 0.0
        return POLL

    def changes(self, now: float, count: int) -> None:
        """`count` events of a source transaction were added to the sink transaction."""
        if not self.open:
            self.open, self.opened_at, self.events = True, now, 0
        self.events += count
        self.clean = False

    def commit(self, now: float, commit: Commit) -> None:
        """A source transaction ended (after its changes, if any)."""
        self.bursting = now - self.last_arrival < self.linger
        self.last_arrival = now
        if commit.captured or self.open:
            self.last_commit, self.clean = commit, True
        elif commit.foreign or self.idle is not None or self._moved_on(commit):
            self.idle = commit
        # Our own writes alone (the checkpoint's own binlog events) are not worth storing,
        # unless they are in a newer file than the stored position.

    def _moved_on(self, commit: Commit) -> bool:
        log_file = commit.position.log_file
        return bool(self.stored_file) and log_file != self.stored_file

    def decide(self, now: float, arrived: bool) -> Action:
        """After an item (`arrived`) or a wait that timed out: commit, store, or go on."""
        if (
            self.open
            and self.clean
            and self.last_commit is not None
            and (
                not arrived
                or self.events >= self.max_events
                or now - self.opened_at >= self.max_seconds
            )
        ):
            return Action.COMMIT
        if not self.open and self.idle is not None and now - self.stored_at >= self.idle_every:
            return Action.STORE_IDLE
        return Action.NONE

    def finish(self) -> Action:
        """The read ends (a stop, or a failure after it): whole source transactions are
        committed, a partial one is forgotten (and read again next time)."""
        if not self.open:
            return Action.NONE
        return Action.COMMIT if self.clean and self.last_commit is not None else Action.ROLLBACK

    def stored(self, now: float) -> None:
        """The sink transaction was committed, or the idle position stored."""
        done = self.last_commit if self.open else self.idle
        if done is not None:
            self.stored_file = done.position.log_file
        self.open, self.clean, self.events = False, True, 0
        self.last_commit = self.idle = None
        self.stored_at = now

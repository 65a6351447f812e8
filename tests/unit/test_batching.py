"""The capture loop's batching policy, without a server: when it commits, lingers, stores
an idle position, or forgets a partial transaction."""

from __future__ import annotations

import pytest

from cdc.capture.batching import POLL, Action, Batcher
from cdc.models import Commit, Position

LINGER = 0.005


def batcher(**overrides: float) -> Batcher:
    options = {"max_events": 10, "max_seconds": 0.2, "linger": LINGER, "idle_every": 30.0}
    options.update(overrides)
    return Batcher(**options)  # type: ignore[arg-type]


def commit(pos: int, captured: bool = True, foreign: bool = True) -> Commit:
    return Commit(Position("binlog.000001", pos), 1_700_000_000.0, captured, foreign)


# Each step: (time, what arrived, the action expected after it). What arrived is
# ("changes", n), ("commit", pos), ("uncaptured", pos), ("own", pos) or None (the wait
# for an item timed out).
Step = tuple[float, tuple[str, int] | None, Action]
CASES: dict[str, list[Step]] = {
    "a trickle is committed as soon as nothing more is waiting": [
        (0.0, ("changes", 1), Action.NONE),
        (0.0001, ("commit", 100), Action.NONE),
        (0.0002, None, Action.COMMIT),
    ],
    "a partial transaction is never committed, however long it waits": [
        (0.0, ("changes", 3), Action.NONE),
        (0.5, None, Action.NONE),
        (1.0, None, Action.NONE),
    ],
    "a full batch is committed without waiting for a pause": [
        (0.0, ("changes", 6), Action.NONE),
        (0.001, ("commit", 100), Action.NONE),
        (0.002, ("changes", 6), Action.NONE),
        (0.003, ("commit", 200), Action.COMMIT),
    ],
    "an old batch is committed without waiting for a pause": [
        (0.0, ("changes", 1), Action.NONE),
        (0.001, ("commit", 100), Action.NONE),
        (0.25, ("changes", 1), Action.NONE),
        (0.251, ("commit", 200), Action.COMMIT),
    ],
    "work that captured nothing is stored now and then only": [
        (0.0, ("uncaptured", 100), Action.NONE),
        (10.0, None, Action.NONE),
        (31.0, None, Action.STORE_IDLE),
    ],
    "our own writes alone are never stored (no feedback loop)": [
        (0.0, ("own", 100), Action.NONE),
        (31.0, None, Action.NONE),
        (62.0, ("own", 200), Action.NONE),
    ],
    "our own writes after foreign work move the idle position on": [
        (0.0, ("uncaptured", 100), Action.NONE),
        (1.0, ("own", 200), Action.NONE),
        (31.0, None, Action.STORE_IDLE),
    ],
}


@pytest.mark.parametrize("steps", CASES.values(), ids=CASES.keys())
def test_decisions(steps: list[Step]) -> None:
    b = batcher()
    for now, arrived, expected in steps:
        if arrived is not None:
            kind, value = arrived
            if kind == "changes":
                b.changes(now, value)
            else:
                b.commit(now, commit(value, captured=kind == "commit", foreign=kind != "own"))
        action = b.decide(now, arrived=arrived is not None)
        assert action is expected, (now, arrived)
        if action is not Action.NONE:
            b.stored(now)


def test_the_commit_is_at_the_newest_whole_transaction() -> None:
    b = batcher()
    b.changes(0.0, 1)
    b.commit(0.0, commit(100))
    b.changes(0.001, 1)
    b.commit(0.001, commit(200))
    assert b.decide(0.002, arrived=False) is Action.COMMIT
    assert b.last_commit is not None and b.last_commit.position.log_pos == 200


def test_waits_linger_in_a_burst_and_poll_when_idle() -> None:
    b = batcher()
    assert b.timeout(queue_empty=True) == POLL
    b.changes(0.0, 1)
    b.commit(0.0, commit(100))
    assert b.timeout(queue_empty=True) == 0.0  # a trickle: commit at once
    assert b.timeout(queue_empty=False) == LINGER  # more is waiting: take it along
    b.changes(0.001, 1)
    b.commit(0.001, commit(200))  # 1 ms after the last: a burst
    assert b.bursting
    assert b.timeout(queue_empty=True) == LINGER
    b.changes(1.0, 1)
    b.commit(1.0, commit(300))  # a second later: the burst is over
    assert not b.bursting and b.timeout(queue_empty=True) == 0.0


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([], Action.NONE),
        ([("changes", 1)], Action.ROLLBACK),
        ([("changes", 1), ("commit", 100)], Action.COMMIT),
        ([("changes", 1), ("commit", 100), ("changes", 1)], Action.ROLLBACK),
    ],
)
def test_at_the_end_whole_transactions_are_kept(
    steps: list[tuple[str, int]], expected: Action
) -> None:
    b = batcher()
    for kind, value in steps:
        if kind == "changes":
            b.changes(0.0, value)
        else:
            b.commit(0.0, commit(value))
    assert b.finish() is expected


def test_stored_starts_a_new_batch() -> None:
    b = batcher()
    b.changes(0.0, 4)
    b.commit(0.0, commit(100))
    b.stored(0.1)
    assert (b.open, b.events, b.last_commit, b.idle, b.stored_at) == (False, 0, None, None, 0.1)
    b.changes(0.2, 2)
    assert (b.open, b.events, b.opened_at, b.clean) == (True, 2, 0.2, False)

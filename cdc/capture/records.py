"""Row changes to the events written to the event table: `data` (images and the changed
columns), `row_id` from the primary key, `user_id` from the user column. Pure."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import orjson

from cdc.models import ChangeRecord, Op, Row, RowChange

_MISSING: Any = object()
_DEEP = frozenset({list, dict, float})
_CONTAINERS = (dict, list)
MAX_JSON_DEPTH = 29
"""The most nested arrays and objects a value may hold inside an event: MariaDB's JSON
type refuses documents nested deeper than 31 levels, and the event's `data` and its
image are two. A deeper value (MySQL allows 100) is written as its JSON text instead."""


def _deeper_than(value: Any, limit: int) -> bool:
    if limit < 0:
        return True
    children = value.values() if value.__class__ is dict else value
    return any(
        child.__class__ in _CONTAINERS and _deeper_than(child, limit - 1) for child in children
    )


def fit_depth(row: Row) -> Row:
    """The row with each value nested deeper than `MAX_JSON_DEPTH` as its JSON text."""
    for name, value in row.items():
        if value.__class__ in _CONTAINERS and _deeper_than(value, MAX_JSON_DEPTH - 1):
            row[name] = orjson.dumps(value).decode()
    return row


MAX_EVENT_BYTES = 12 * 2**20
"""The most an event's images may hold: its INSERT must fit the server's
max_allowed_packet (16 MiB by default on MariaDB). Past it the largest values are
replaced by `omitted` (a 16 MiB blob is 32 MiB of hex)."""


def _size(value: Any) -> int:
    if value.__class__ is str:
        return len(value) if value.isascii() else len(value.encode())
    if value.__class__ in _CONTAINERS:
        return len(orjson.dumps(value))
    return 8


def omitted(value: Any) -> dict[str, Any]:
    """What stands for a value too large for an event: its size and SHA-256 (of its JSON
    text), so that equal values still compare equal."""
    text = orjson.dumps(value)
    return {"omitted": "too_large", "bytes": len(text), "sha256": hashlib.sha256(text).hexdigest()}


def fit_size(*rows: Row, budget: int = MAX_EVENT_BYTES) -> None:
    """Replaces the largest values of the images until they fit in `budget` bytes."""
    sizes = [(_size(value), i, name) for i, row in enumerate(rows) for name, value in row.items()]
    total = sum(size for size, _, _ in sizes)
    if total <= budget:
        return
    for size, i, name in sorted(sizes, reverse=True):
        rows[i][name] = omitted(rows[i][name])
        total -= size
        if total <= budget:
            return


def _differs(before: Any, after: Any) -> bool:
    # Equal by ==, same class: JSON containers may still differ (1 vs true vs 1.0 inside)
    # and floats may differ in the sign of zero.
    if after.__class__ is float:
        return math.copysign(1.0, before) != math.copysign(1.0, after)
    option = orjson.OPT_SORT_KEYS
    return orjson.dumps(before, option=option) != orjson.dumps(after, option=option)


def changed_columns(before: Row, after: Row) -> list[str]:
    """Names whose values differ between two rendered images, in the after image's order."""
    changed = []
    for name, value in after.items():
        old = before.get(name, _MISSING)
        if (
            value != old
            or value.__class__ is not old.__class__
            or (value.__class__ in _DEEP and _differs(old, value))
        ):
            changed.append(name)
    return changed


def to_record(
    change: RowChange, timestamp: float, txn: str, user_column: str = "user_id"
) -> ChangeRecord:
    """The event of one row change (id assigned later by the store).

    `row_id` and `user_id` come from the after image (the before image for DELETE):
    `row_id` is the key value, a list in key order for a composite key, None without a
    key; `user_id` is the `user_column` value, None when the table has no such column.
    """
    op = change.op
    if op is Op.UPDATE:
        before, row = change.before, change.after
        if before is None or row is None:
            raise ValueError("an UPDATE needs both images")
        before, row = fit_depth(before), fit_depth(row)
        data: dict[str, Any] = {
            "before": before,
            "after": row,
            "changed": changed_columns(before, row),
        }
        fit_size(before, row)
    elif op is Op.CREATE:
        row = change.after
        if row is None:
            raise ValueError("a CREATE needs the after image")
        data = {"after": fit_depth(row)}
        fit_size(row)
    else:
        row = change.before
        if row is None:
            raise ValueError("a DELETE needs the before image")
        data = {"before": fit_depth(row)}
        fit_size(row)
    table = change.table
    key = table.primary_key
    if not key:
        row_id = None
    elif len(key) == 1:
        row_id = row[key[0]]
    else:
        row_id = [row[name] for name in key]
    return ChangeRecord(
        op, table.schema, table.name, row_id, row.get(user_column), data, timestamp, txn, key=key
    )

"""Row changes to the events written to the event table: `data` (images and the changed
columns), `row_id` from the primary key, `user_id` from the user column. Pure."""

from __future__ import annotations

import math
from typing import Any

import orjson

from cdc.models import ChangeRecord, Op, Row, RowChange

_MISSING: Any = object()
_DEEP = frozenset({list, dict, float})


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
        data: dict[str, Any] = {
            "before": before,
            "after": row,
            "changed": changed_columns(before, row),
        }
    elif op is Op.CREATE:
        row = change.after
        if row is None:
            raise ValueError("a CREATE needs the after image")
        data = {"after": row}
    else:
        row = change.before
        if row is None:
            raise ValueError("a DELETE needs the before image")
        data = {"before": row}
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

"""Changes a foreign key's cascade makes, as `CASCADE` events: InnoDB applies
`ON DELETE CASCADE`, `ON DELETE SET NULL` and `ON UPDATE CASCADE` / `SET NULL` itself and
writes no row events (nor fires triggers) for the child rows, so the daemon says which
rows went, as a predicate a replay can apply and a DBA can read. Pure.

For each cascading foreign key of a parent row's DELETE (or of an UPDATE that changes the
referenced key), one event on the child table:

    {"action": "DELETE" | "SET NULL" | "UPDATE",
     "where": {child column: the parent's old key value, or {"in": {...}}},
     "set": {child column: new value},          (SET NULL and UPDATE)
     "cause": <id of the parent's event>}

A cascade of a cascade (grandchildren) refers to the rows the step above changed:
`{"in": {"schema": s, "table": t, "column": c, "where": <that step's where>}}` means "the
values of column c of the rows of s.t matching that where, before this cascade". The
events of one parent change follow it deepest first, so each one's rows still exist when
it is applied. A cycle (a table referring to itself) is followed one step, then logged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import structlog

from cdc.models import CASCADE, ChangeRecord, Op, Row

log = structlog.get_logger("cdc.capture")

Key = tuple[str, str]  # (schema, table)
CASCADING = {"CASCADE": "DELETE", "SET NULL": "SET NULL"}  # rule -> action of a delete


@dataclass(frozen=True, slots=True)
class ForeignKey:
    name: str
    child: Key
    columns: tuple[str, ...]  # the child's columns, in key order
    parent: Key
    referenced: tuple[str, ...]  # the parent's columns they refer to
    on_delete: str  # CASCADE, SET NULL, RESTRICT, NO ACTION, SET DEFAULT
    on_update: str


def foreign_keys(rows: Iterable[tuple[Any, ...]]) -> list[ForeignKey]:
    """From `mysql.foreign_keys` rows (one per column, in key order)."""
    grouped: dict[tuple[str, str, str], list[tuple[Any, ...]]] = {}
    for row in rows:
        grouped.setdefault((row[0], row[1], row[2]), []).append(row)
    keys = []
    for (schema, table, name), parts in grouped.items():
        first = parts[0]
        keys.append(
            ForeignKey(
                name=f"{schema}.{table}.{name}",
                child=(schema, table),
                columns=tuple(p[3] for p in parts),
                parent=(first[4], first[5]),
                referenced=tuple(p[6] for p in parts),
                on_delete=str(first[7]).upper(),
                on_update=str(first[8]).upper(),
            )
        )
    return keys


Values = dict[str, Any]  # column -> a value, or an {"in": ...} reference


@dataclass(frozen=True, slots=True)
class _Step:
    """Rows of `table` that one cascade step changes: which (`where`), and for each of
    their columns the value before (`old`) and, where it changes, after (`new`)."""

    table: Key
    where: Values
    new: Values
    path: tuple[str, ...]  # the foreign keys followed to get here

    def old(self, column: str) -> Any:
        if column in self.where and not isinstance(self.where[column], dict):
            return self.where[column]
        return {
            "in": {
                "schema": self.table[0],
                "table": self.table[1],
                "column": column,
                "where": self.where,
            }
        }


class Cascades:
    """The cascading foreign keys of the tables, and the events they imply."""

    def __init__(self, keys: Iterable[ForeignKey], captured: Callable[[str, str], bool]) -> None:
        self.captured = captured
        self.by_parent: dict[Key, list[ForeignKey]] = {}
        for key in keys:
            if key.on_delete in CASCADING or key.on_update in CASCADING:
                self.by_parent.setdefault(key.parent, []).append(key)
        self._cycles: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.by_parent)

    def after(self, record: ChangeRecord) -> list[ChangeRecord]:
        """The CASCADE events a row change implies, deepest first (to follow it)."""
        table = (record.schema, record.table)
        if table not in self.by_parent or record.type not in (Op.DELETE, Op.UPDATE):
            return []
        before: Row = record.data["before"]
        after: Row | None = record.data.get("after")
        root = _Step(table, dict(before), dict(after or {}), ())
        steps = self._children(root, deleted=record.type is Op.DELETE)
        return [
            self._record(record, step, action)
            for step, action in reversed(steps)
            if self.captured(*step.table)
        ]

    def _children(self, parent: _Step, deleted: bool) -> list[tuple[_Step, str]]:
        """The steps below `parent`, in order (each step before its own children)."""
        out: list[tuple[_Step, str]] = []
        for key in self.by_parent.get(parent.table, ()):
            if key.name in parent.path:
                if key.name not in self._cycles:
                    self._cycles.add(key.name)
                    log.warning("cascade_cycle_not_followed", foreign_key=key.name)
                continue
            step = self._step(parent, key, deleted)
            if step is None:
                continue
            child, action = step
            out.append((child, action))
            out += self._children(child, deleted=action == "DELETE")
        return out

    def _step(self, parent: _Step, key: ForeignKey, deleted: bool) -> tuple[_Step, str] | None:
        olds = [parent.old(c) for c in key.referenced]
        if any(v is None for v in olds):
            return None  # NULL matches no child row
        where = dict(zip(key.columns, olds, strict=True))
        if deleted:
            action = CASCADING.get(key.on_delete)
            if action is None:
                return None
            new: Values = dict.fromkeys(key.columns) if action == "SET NULL" else {}
        else:
            changed = [c for c in key.referenced if c in parent.new]
            if not changed or all(parent.new[c] == parent.old(c) for c in key.referenced):
                return None  # the referenced key did not change
            rule = key.on_update
            if rule == "CASCADE":
                action = "UPDATE"
                pairs = zip(key.columns, key.referenced, strict=True)
                new = {c: parent.new.get(r) for c, r in pairs}
            elif rule == "SET NULL":
                action, new = "SET NULL", dict.fromkeys(key.columns)
            else:
                return None
        return _Step(key.child, where, new, (*parent.path, key.name)), action

    def _record(self, cause: ChangeRecord, step: _Step, action: str) -> ChangeRecord:
        data: dict[str, Any] = {"action": action, "where": step.where}
        if action != "DELETE":
            data["set"] = step.new
        return replace(
            cause,
            type=CASCADE,
            schema=step.table[0],
            table=step.table[1],
            row_id=None,
            key=(),
            data=data,
            id=0,
            cause=cause,
        )

    def tables_changed(self) -> list[tuple[Key, Key, str]]:
        """(child, parent, rules) of every cascading key, for `cdc check`."""
        return [
            (k.child, k.parent, f"ON DELETE {k.on_delete}, ON UPDATE {k.on_update}")
            for keys in self.by_parent.values()
            for k in keys
        ]

"""Redaction at capture: configured columns are dropped, masked or hashed in each event
before anything is written, sent or logged.

- `drop`: the column is absent (and never in `changed`);
- `mask`: the JSON string `"***"`, whatever the column's type;
- `hash`: the 64-hex-digit HMAC-SHA256 of the value's JSON text as it would otherwise be
  written, keyed with the key file's content (so equal values still correlate).

`changed` is computed on the clear values, then pruned of dropped columns. A hashed key
column is hashed in `row_id` too; a dropped or masked one is refused. When the user
column is redacted, `user_id` is redacted the same way. Pure: keys come in as bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from cdc.errors import ConfigError
from cdc.globs import Glob
from cdc.models import CASCADE, ChangeRecord, Op
from cdc.sections import RedactAction, RedactRule

MASK = "***"
_STRENGTH = {RedactAction.DROP: 3, RedactAction.MASK: 2, RedactAction.HASH: 1}
_DROPPED: Any = object()
_TABLE_EVENTS = frozenset({*(str(op) for op in Op), CASCADE})


@dataclass(frozen=True, slots=True)
class _Rule:
    globs: tuple[Glob, ...]
    action: RedactAction
    key: bytes | None


def hash_value(key: bytes, value: Any) -> str:
    """HMAC-SHA256 (hex) of the value's JSON text, as the event table would hold it."""
    return hmac.new(key, orjson.dumps(value), hashlib.sha256).hexdigest()


class RedactionPlan:
    """The `[[redact]]` rules, resolved per column once and applied to each record.

    `keys` holds the content of every `hash_key_file`, by path. When several rules name
    a column the strongest wins (drop, then mask, then hash; the first hash rule's key).
    """

    def __init__(
        self, rules: Sequence[RedactRule], keys: Mapping[str, bytes], user_column: str
    ) -> None:
        self._rules = [
            _Rule(
                tuple(Glob(c) for c in rule.columns),
                rule.action,
                keys[rule.hash_key_file] if rule.hash_key_file else None,
            )
            for rule in rules
        ]
        self.user_column = user_column
        self._columns: dict[tuple[str, str], dict[str, _Rule | None]] = {}

    def rule(self, schema: str, table: str, column: str) -> _Rule | None:
        """The rule that applies to `schema.table.column`, if any (cached)."""
        columns = self._columns.get((schema, table))
        if columns is None:
            columns = self._columns[(schema, table)] = {}
        if column in columns:
            return columns[column]
        name = f"{schema}.{table}.{column}"
        found = None
        for candidate in self._rules:
            if any(g.matches(name) for g in candidate.globs) and (
                found is None or _STRENGTH[candidate.action] > _STRENGTH[found.action]
            ):
                found = candidate
        if len(columns) < 4096:  # a table has at most 4096 columns: the cache stays bounded
            columns[column] = found
        return found

    def hash_keys(self) -> list[bytes]:
        """The keys of the hash rules, each once."""
        return list(dict.fromkeys(r.key for r in self._rules if r.key is not None))

    def excluding(self, schema: str, table: str, columns: Iterable[str]) -> RedactionPlan:
        """This plan, with no rule for `columns` of `schema.table` (redacted already:
        the capture triggers redact them before staging)."""
        plan = RedactionPlan.__new__(RedactionPlan)
        plan._rules, plan.user_column = self._rules, self.user_column
        plan._columns = {(schema, table): dict.fromkeys(columns)}
        return plan

    def check_keys(self, keys: Mapping[tuple[str, str], Iterable[str]]) -> None:
        """Refuses rules that drop or mask a primary-key column of these tables (its
        value is the event's `row_id`: hash it instead)."""
        refused = [
            f"{schema}.{table}.{column} ({rule.action})"
            for (schema, table), columns in sorted(keys.items())
            for column in columns
            if (rule := self.rule(schema, table, column)) is not None
            and rule.action is not RedactAction.HASH
        ]
        if refused:
            raise ConfigError(
                "[[redact]] would drop or mask primary-key column(s) "
                + ", ".join(refused[:10])
                + (f" and {len(refused) - 10} more" if len(refused) > 10 else "")
                + ": the key is the event's row_id",
                fix='use action = "hash" for key columns (row_id then carries the hash), or '
                "narrow the columns patterns",
            )

    def apply(self, records: Iterable[ChangeRecord]) -> None:
        """Redacts each record in place."""
        for record in records:
            self._redact(record)

    def _redact(self, record: ChangeRecord) -> None:
        schema, table, data = record.schema, record.table, record.data
        if schema is None or table is None or record.type not in _TABLE_EVENTS:
            return  # an application's own event: its data is its own, not a table's columns
        if record.type == CASCADE:
            self._cascade(record)
            return
        dropped: set[str] = set()
        for part in ("before", "after"):
            image = data.get(part)
            if isinstance(image, dict):
                data[part], gone = self._image(schema, table, image)
                dropped |= gone
        if dropped and isinstance(data.get("changed"), list):
            data["changed"] = [c for c in data["changed"] if c not in dropped]
        if record.key and record.row_id is not None:
            record.row_id = self._row_id(record)
        if record.user_id is not None:
            rule = self.rule(schema, table, self.user_column)
            if rule is not None:
                value = self._value(rule, record.user_id)
                record.user_id = None if value is _DROPPED else value

    def _cascade(self, record: ChangeRecord) -> None:
        assert record.schema is not None and record.table is not None
        """A CASCADE event: its `where` and `set` by the child table's rules (a grandchild's
        `{"in": {schema, table, column, where}}` by the rules of the table it names), its
        `user_id` (the cause's) by the cause's table's rule."""
        data = record.data
        for part in ("where", "set"):
            if isinstance(data.get(part), dict):
                data[part] = self._cascade_values(record.schema, record.table, data[part])
        cause = record.cause
        if cause is not None and cause.schema and cause.table and record.user_id is not None:
            rule = self.rule(cause.schema, cause.table, self.user_column)
            if rule is not None:
                value = self._value(rule, record.user_id)
                record.user_id = None if value is _DROPPED else value

    def _cascade_values(self, schema: str, table: str, values: dict[str, Any]) -> dict[str, Any]:
        out, _ = self._image(schema, table, values)
        nested = {}  # new values, never written into dicts other events may share
        for column, value in out.items():
            inner = value.get("in") if isinstance(value, dict) and len(value) == 1 else None
            if isinstance(inner, dict) and isinstance(inner.get("where"), dict):
                where = self._cascade_values(
                    str(inner.get("schema")), str(inner.get("table")), inner["where"]
                )
                nested[column] = {"in": {**inner, "where": where}}
        return {**out, **nested} if nested else out

    def _image(
        self, schema: str, table: str, image: dict[str, Any]
    ) -> tuple[dict[str, Any], set[str]]:
        """The image redacted (a new dict, in column order) and the columns dropped."""
        out: dict[str, Any] | None = None
        dropped: set[str] = set()
        for column, value in image.items():
            rule = self.rule(schema, table, column)
            if rule is None:
                if out is not None:
                    out[column] = value
                continue
            if out is None:  # copy the clear columns before the first redacted one
                out = {}
                for earlier, clear in image.items():
                    if earlier == column:
                        break
                    out[earlier] = clear
            redacted = self._value(rule, value)
            if redacted is _DROPPED:
                dropped.add(column)
            else:
                out[column] = redacted
        return (image if out is None else out), dropped

    @staticmethod
    def _value(rule: _Rule, value: Any) -> Any:
        if rule.action is RedactAction.DROP:
            return _DROPPED
        if rule.action is RedactAction.MASK:
            return MASK
        assert rule.key is not None
        return hash_value(rule.key, value)

    def _row_id(self, record: ChangeRecord) -> Any:
        """`row_id` with its hashed key columns hashed (a composite key element-wise)."""
        key, row_id = record.key, record.row_id
        assert record.schema is not None and record.table is not None
        values = list(row_id) if len(key) > 1 and isinstance(row_id, list) else [row_id]
        for i, column in enumerate(key[: len(values)]):
            rule = self.rule(record.schema, record.table, column)
            if rule is None:
                continue
            if rule.action is not RedactAction.HASH:
                raise ConfigError(
                    f"[[redact]] would {rule.action} the key column "
                    f"{record.schema}.{record.table}.{column}: the key is the event's row_id",
                    fix='use action = "hash" for key columns, or narrow the columns patterns',
                )
            values[i] = self._value(rule, values[i])
        return values if len(key) > 1 and isinstance(row_id, list) else values[0]

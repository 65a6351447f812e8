"""A table version as the capture triggers stage it (`TableSpec`): its columns in order,
its key, how each column is staged and redacted, and who the user is. Stored as JSON
in `cdc_trigger_specs` by its `version`, which every staging row carries, so that rows
staged before an `ALTER TABLE` are still read by the version that wrote them. Pure.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from cdc.capture.triggers.columns import Redact, StagedColumn, column_kind, staged_column
from cdc.store.schema import REDACT_KEYS, STAGING, qualified

if TYPE_CHECKING:
    from cdc.policy.redaction import RedactionPlan

FORMAT = 1
"""The version of the spec's JSON form (the triggers' SQL is in each version's digest)."""

OUTBOX = "OUTBOX"  # the staging type of an outbox row


def key_id(key: bytes) -> str:
    """The name of a hash key in the keys table (not the key, nor a plain hash of it)."""
    return hmac.new(key, b"cdc redaction key id", hashlib.sha256).hexdigest()[:16]


def key_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer pads of `key` (RFC 2104): the trigger computes
    SHA2(opad || SHA2(ipad || message)), the same digest as `hmac.new(key, message)`."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


@dataclass(frozen=True, slots=True)
class UserSource:
    """How a trigger computes the user when the user column is redacted: from
    `@cdc_user_id`, else the column, redacted as the column is (the clear value never
    reaches the staging table)."""

    column: str
    redact: Redact
    key: str | None = None


@dataclass(frozen=True, slots=True)
class TableSpec:
    schema: str
    table: str
    columns: tuple[StagedColumn, ...]
    key: tuple[str, ...] = ()
    outbox: bool = False  # the outbox table: its rows become application events
    user: UserSource | None = None  # None: the mover reads @cdc_user_id, else the column
    staging: str = ""  # `db`.`cdc_staging`, the table the triggers write to
    keys_table: str = ""  # `db`.`cdc_redact_keys`
    version: str = field(default="", compare=False)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def redacted(self) -> frozenset[str]:
        """The columns the triggers redact (the mover redacts none of them again)."""
        return frozenset(c.name for c in self.columns if c.redact is not None)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": FORMAT,
            "schema": self.schema,
            "table": self.table,
            "columns": [c.to_dict() for c in self.columns],
            "key": list(self.key),
            "staging": self.staging,
            "keys_table": self.keys_table,
        }
        if self.outbox:
            data["outbox"] = True
        if self.user is not None:
            user = {"column": self.user.column, "redact": str(self.user.redact)}
            data["user"] = user | ({"key": self.user.key} if self.user.key else {})
        return data

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict()).decode()

    @classmethod
    def from_json(cls, text: str | bytes, version: str) -> TableSpec:
        data = orjson.loads(text)
        user = data.get("user")
        return cls(
            schema=data["schema"],
            table=data["table"],
            columns=tuple(StagedColumn.from_dict(c) for c in data["columns"]),
            key=tuple(data.get("key", ())),
            outbox=bool(data.get("outbox")),
            user=UserSource(user["column"], Redact(user["redact"]), user.get("key"))
            if user
            else None,
            staging=data.get("staging", ""),
            keys_table=data.get("keys_table", ""),
            version=version,
        )

    def with_version(self, statements: str) -> TableSpec:
        """This spec with its version: a digest of it and of the triggers' `statements`
        (so that a cdc writing other SQL makes the installed triggers out of date)."""
        digest = hashlib.sha256(f"{self.to_json()}\n{statements}".encode()).hexdigest()[:16]
        return TableSpec(
            self.schema,
            self.table,
            self.columns,
            self.key,
            self.outbox,
            self.user,
            self.staging,
            self.keys_table,
            digest,
        )


ColumnRow = tuple[str, str, str | None, Any, Any]
"""(name, DATA_TYPE, CHARACTER_SET_NAME, NUMERIC_SCALE, DATETIME_PRECISION), in order."""


def table_spec(
    schema: str,
    table: str,
    rows: Iterable[ColumnRow],
    key: tuple[str, ...],
    json_columns: frozenset[str],
    is_mariadb: bool,
    *,
    database: str,
    plan: RedactionPlan | None = None,
    keys: Mapping[bytes, str] | None = None,
    user_column: str = "user_id",
    outbox: bool = False,
) -> TableSpec:
    """The spec of a table from its information_schema columns, with the `[[redact]]`
    rules of `plan` (`keys`: each hash key's id); without its version (sql.versioned)."""
    columns = []
    for name, data_type, charset, scale, fsp in rows:
        kind = column_kind(schema, table, name, data_type, name in json_columns, is_mariadb)
        column = staged_column(kind, name, charset, scale, fsp)
        if plan is not None and not outbox:
            column = _redacted(column, plan, schema, table, keys or {})
        columns.append(column)
    user = None
    for column in columns:
        if column.name == user_column and column.redact is not None:
            user = UserSource(column.name, column.redact, column.key)
    return TableSpec(
        schema,
        table,
        tuple(columns),
        key,
        outbox,
        user,
        staging=qualified(database, STAGING),
        keys_table=qualified(database, REDACT_KEYS),
    )


def _redacted(
    column: StagedColumn, plan: RedactionPlan, schema: str, table: str, keys: Mapping[bytes, str]
) -> StagedColumn:
    rule = plan.rule(schema, table, column.name)
    if rule is None:
        return column
    action = Redact(str(rule.action))
    key = keys[rule.key] if action is Redact.HASH and rule.key is not None else None
    return StagedColumn(
        column.name, column.kind, column.charset, column.scale, column.fsp, action, key
    )

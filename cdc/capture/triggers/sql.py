"""The capture triggers' SQL for one table version (`TableSpec`). Pure.

Each captured table gets an AFTER INSERT, an AFTER UPDATE and an AFTER DELETE trigger
(the outbox an AFTER INSERT one) that inserts one row into the staging table:

    INSERT INTO `cdc`.`cdc_staging` (type, schema_name, table_name, version, user_id, txn, ts, data)
    VALUES ('UPDATE', 'app', 'patient', '<version>', LEFT(CAST(@cdc_user_id AS CHAR), 255),
            CONCAT('connection ', CONNECTION_ID()), UTC_TIMESTAMP(6),
            JSON_OBJECT('before', JSON_OBJECT('id', OLD.`id`, ...),
                        'after',  JSON_OBJECT('id', NEW.`id`, ...)))

Each value in its staged form (columns.py); a dropped column is left out, a masked one
is `'***'` (`redacted_changed` names those of an UPDATE that changed), a hashed one
its HMAC.
Ours PRECEDES the application's AFTER triggers of the same event, which keep their
order: the row change is staged before what those triggers then change, as the binlog
logs them.

On MariaDB each is `CREATE OR REPLACE TRIGGER`, atomic: a table is never without its
trigger while a new version replaces the old one. MySQL has no OR REPLACE: the table is
locked for writes while the old trigger is dropped and the new one created.
"""

from __future__ import annotations

import hashlib

from cdc.capture.triggers.columns import (
    Redact,
    hmac_sql,
    quote_name,
    quote_text,
    staged_sql,
    value_sql,
)
from cdc.capture.triggers.spec import OUTBOX, TableSpec
from cdc.models import Op

EVENTS = {Op.CREATE: ("INSERT", "ai"), Op.UPDATE: ("UPDATE", "au"), Op.DELETE: ("DELETE", "ad")}
NAME_LIMIT = 64  # MySQL's and MariaDB's longest identifier
SQL_MODE = "STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
"""The session's sql_mode when the triggers are created, which they keep: a staging row
that cannot be written fails the application's statement rather than losing the change
(strict), and string literals take backslash escapes (no NO_BACKSLASH_ESCAPES)."""
USER = "LEFT(CAST(@cdc_user_id AS CHAR), 255)"
TXN = "CONCAT('connection ', CONNECTION_ID())"


def ops(spec: TableSpec) -> tuple[Op, ...]:
    """The row changes a table's triggers stage (an outbox row is staged once, inserted)."""
    return (Op.CREATE,) if spec.outbox else (Op.CREATE, Op.UPDATE, Op.DELETE)


def versioned(spec: TableSpec) -> TableSpec:
    """`spec` with its version, a digest of it and of its triggers' statements."""
    return spec.with_version("\n".join(body_sql(spec, op) for op in ops(spec)))


def trigger_name(table: str, op: Op) -> str:
    """`cdc_<table>_ai` (after insert), `_au`, `_ad`; shortened with a digest to fit."""
    suffix = EVENTS[op][1]
    name = f"cdc_{table}_{suffix}"
    if len(name) <= NAME_LIMIT:
        return name
    digest = hashlib.sha256(table.encode()).hexdigest()[:8]
    return f"cdc_{table[: NAME_LIMIT - 17]}_{digest}_{suffix}"


def image_sql(spec: TableSpec, ref: str) -> str:
    """JSON_OBJECT of a row image (`ref` NEW or OLD), in column order, redacted."""
    parts = []
    for column in spec.columns:
        value = staged_sql(column, f"{ref}.{quote_name(column.name)}", spec.keys_table)
        if value is not None:
            parts.append(f"{quote_text(column.name)}, {value}")
    return f"JSON_OBJECT({', '.join(parts)})"


def _redacted_changed(spec: TableSpec) -> str | None:
    """For an UPDATE: which masked or dropped columns changed (their staged value does
    not say, and an UPDATE that changed nothing is not an event)."""
    tests = [
        f"IF({value_sql(c, 'OLD.' + quote_name(c.name))} <=> "
        f"{value_sql(c, 'NEW.' + quote_name(c.name))}, NULL, {quote_text(c.name)})"
        for c in spec.columns
        if c.redact in (Redact.MASK, Redact.DROP)
    ]
    return f"JSON_ARRAY({', '.join(tests)})" if tests else None


def data_sql(spec: TableSpec, op: Op) -> str:
    if op is Op.CREATE:
        return f"JSON_OBJECT('after', {image_sql(spec, 'NEW')})"
    if op is Op.DELETE:
        return f"JSON_OBJECT('before', {image_sql(spec, 'OLD')})"
    parts = [f"'before', {image_sql(spec, 'OLD')}", f"'after', {image_sql(spec, 'NEW')}"]
    redacted = _redacted_changed(spec)
    if redacted is not None:
        parts.append(f"'redacted_changed', {redacted}")
    return f"JSON_OBJECT({', '.join(parts)})"


def user_sql(spec: TableSpec, op: Op) -> str:
    """`@cdc_user_id`; when the user column is redacted, the user as the trigger sees it
    (the variable, else the column), redacted the same way."""
    user = spec.user
    if user is None:
        return USER
    if user.redact is Redact.DROP:
        return "NULL"
    ref = "OLD" if op is Op.DELETE else "NEW"
    clear = f"COALESCE({USER}, CAST({ref}.{quote_name(user.column)} AS CHAR))"
    if user.redact is Redact.MASK:
        return f"IF({clear} IS NULL, NULL, '***')"
    assert user.key is not None
    return f"IF({clear} IS NULL, NULL, {hmac_sql(clear, user.key, spec.keys_table)})"


def body_sql(spec: TableSpec, op: Op) -> str:
    """The trigger's statement: one staging row."""
    kind = OUTBOX if spec.outbox else str(op)
    values = ", ".join(
        (
            quote_text(kind),
            quote_text(spec.schema),
            quote_text(spec.table),
            quote_text(spec.version),
            user_sql(spec, op),
            TXN,
            "UTC_TIMESTAMP(6)",
            data_sql(spec, op),
        )
    )
    return (
        f"INSERT INTO {spec.staging} (`type`, `schema_name`, `table_name`, `version`,"
        f" `user_id`, `txn`, `ts`, `data`) VALUES ({values})"
    )


def create_sql(
    spec: TableSpec, op: Op, precedes: str | None, is_mariadb: bool, replace: bool
) -> list[str]:
    """The statements that create (or replace: `replace`) one trigger, before `precedes`."""
    event = EVENTS[op][0]
    name = quote_name(spec.schema) + "." + quote_name(trigger_name(spec.table, op))
    table = quote_name(spec.schema) + "." + quote_name(spec.table)
    order = f" PRECEDES {quote_name(precedes)}" if precedes else ""
    head = "CREATE OR REPLACE TRIGGER" if is_mariadb else "CREATE TRIGGER"
    create = f"{head} {name} AFTER {event} ON {table} FOR EACH ROW{order}\n{body_sql(spec, op)}"
    if is_mariadb or not replace:
        return [create]
    # MySQL: no write lands between the drop and the create.
    return [f"LOCK TABLES {table} WRITE", f"DROP TRIGGER IF EXISTS {name}", create, "UNLOCK TABLES"]


def drop_sql(schema: str, name: str) -> str:
    return f"DROP TRIGGER IF EXISTS {quote_name(schema)}.{quote_name(name)}"

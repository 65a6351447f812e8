"""Trigger mode's tables (sql/trigger_tables.sql): the staging rows the capture triggers
write, the table versions they stage, the tables they are installed on, and the
redaction keys' pads. Every statement on them is here; each takes the caller's cursor.
"""

from __future__ import annotations

from typing import Any

import orjson

from cdc.store.schema import REDACT_KEYS, STAGING, TRIGGER_SPECS, TRIGGER_TABLES, TRIGGERS
from cdc.store.schema import qualified as q

STAGED_COLUMNS = "id, type, schema_name, table_name, version, user_id, txn, ts, data"


def pending_ids(cur: Any, database: str, limit: int, after: int = 0, up_to: int = 0) -> list[int]:
    """Ids of committed staging rows (an index-only read), lowest first: above `after`,
    and not above `up_to` when it is given."""
    where = f"id > {int(after)}" + (f" AND id <= {int(up_to)}" if up_to else "")
    cur.execute(
        f"SELECT id FROM {q(database, STAGING)} WHERE {where} ORDER BY id LIMIT {int(limit)}"
    )
    return [int(row[0]) for row in cur.fetchall()]


def staged_rows(cur: Any, database: str, ids: list[int]) -> list[tuple[Any, ...]]:
    """The staging rows of `ids`, in id order: (id, type, schema, table, version,
    user_id, txn, ts, data)."""
    if not ids:
        return []
    cur.execute(
        f"SELECT {STAGED_COLUMNS} FROM {q(database, STAGING)}"
        f" WHERE id IN ({','.join(map(str, ids))}) ORDER BY id"
    )
    return list(cur.fetchall())


def staged_count(
    cur: Any, database: str, schema: str | None = None, table: str | None = None
) -> int:
    """Staging rows not yet moved (of one table, when named)."""
    where = ""
    if schema is not None:
        where = " WHERE schema_name = %s AND table_name = %s"
    cur.execute(
        f"SELECT COUNT(*) FROM {q(database, STAGING)}{where}", (schema, table) if where else ()
    )
    return int(cur.fetchone()[0])


def specs(cur: Any, database: str, versions: list[str]) -> dict[str, str]:
    """The stored table versions among `versions`: version -> spec JSON."""
    if not versions:
        return {}
    cur.execute(
        f"SELECT version, spec FROM {q(database, TRIGGER_SPECS)}"
        f" WHERE version IN ({', '.join(['%s'] * len(versions))})",
        versions,
    )
    return {row[0]: row[1] for row in cur.fetchall()}


def save_spec(cur: Any, database: str, version: str, schema: str, table: str, spec: str) -> None:
    """Store a table version (kept: staging rows of it may still be uncommitted)."""
    cur.execute(
        f"INSERT IGNORE INTO {q(database, TRIGGER_SPECS)}"
        " (version, schema_name, table_name, spec, created_at)"
        " VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(6))",
        (version, schema, table, spec),
    )


def installed(cur: Any, database: str) -> dict[tuple[str, str], tuple[str, tuple[str, ...]]]:
    """(schema, table) -> (version, trigger names) of every table with capture triggers."""
    cur.execute(f"SELECT schema_name, table_name, version, triggers FROM {q(database, TRIGGERS)}")
    return {(row[0], row[1]): (row[2], tuple(orjson.loads(row[3]))) for row in cur.fetchall()}


def save_installed(
    cur: Any, database: str, schema: str, table: str, version: str, names: list[str]
) -> None:
    cur.execute(
        f"INSERT INTO {q(database, TRIGGERS)}"
        " (schema_name, table_name, version, triggers, installed_at)"
        " VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE"
        " version = VALUES(version), triggers = VALUES(triggers),"
        " installed_at = VALUES(installed_at)",
        (schema, table, version, orjson.dumps(names).decode()),
    )


def forget_installed(cur: Any, database: str, schema: str, table: str) -> None:
    cur.execute(
        f"DELETE FROM {q(database, TRIGGERS)} WHERE schema_name = %s AND table_name = %s",
        (schema, table),
    )


def delete_staged(cur: Any, database: str, schema: str, table: str) -> int:
    """Drop a table's unmoved staging rows (`cdc triggers remove --force`)."""
    cur.execute(
        f"DELETE FROM {q(database, STAGING)} WHERE schema_name = %s AND table_name = %s",
        (schema, table),
    )
    return int(cur.rowcount)


def save_key(cur: Any, database: str, key_id: str, ipad: bytes, opad: bytes) -> None:
    cur.execute(
        f"INSERT INTO {q(database, REDACT_KEYS)} (id, ipad, opad) VALUES (%s, %s, %s)"
        " ON DUPLICATE KEY UPDATE ipad = VALUES(ipad), opad = VALUES(opad)",
        (key_id, ipad, opad),
    )


def existing_tables(cur: Any, database: str) -> set[str]:
    """Which of trigger mode's tables exist."""
    cur.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
        f" AND TABLE_NAME IN ({', '.join(['%s'] * len(TRIGGER_TABLES))})",
        (database, *TRIGGER_TABLES),
    )
    return {row[0] for row in cur.fetchall()}


def ready(cur: Any, database: str) -> bool:
    """Whether every one of trigger mode's tables exists."""
    return len(existing_tables(cur, database)) == len(TRIGGER_TABLES)


def drop_tables(cur: Any, database: str) -> None:
    """Drop trigger mode's tables (when no trigger is left and nothing is staged)."""
    for table in TRIGGER_TABLES:
        cur.execute(f"DROP TABLE IF EXISTS {q(database, table)}")

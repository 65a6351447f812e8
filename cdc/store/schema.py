"""The event tables' names, columns and DDL (`sql/event_table.sql`), and `init_schema`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import structlog

from cdc import mysql

if TYPE_CHECKING:
    from cdc.settings import Dsn

log = structlog.get_logger("cdc.store")

EVENT = "event"
CHECKPOINT = "cdc_checkpoint"
OUTBOX = "cdc_outbox"
# Trigger mode (`cdc triggers install`, sql/trigger_tables.sql): what the triggers stage,
# the table versions they stage (the columns, how each is staged), the tables they are
# installed on, and the pads of the redaction keys they hash with.
STAGING = "cdc_staging"
TRIGGER_SPECS = "cdc_trigger_specs"
TRIGGERS = "cdc_triggers"
REDACT_KEYS = "cdc_redact_keys"
TRIGGER_TABLES = (STAGING, TRIGGER_SPECS, TRIGGERS, REDACT_KEYS)
# Standby failover (sql/failover_tables.sql): who captures, and the running processes.
LEASE = "cdc_lease"
REGISTRY = "cdc_registry"
FAILOVER_TABLES = (LEASE, REGISTRY)
FAILOVER_SQL = "failover_tables.sql"
OWN_TABLES = (EVENT, CHECKPOINT, OUTBOX, *TRIGGER_TABLES, *FAILOVER_TABLES)
"""The daemon's own tables, in the DSN's database: never captured as row changes (the
outbox's inserts become application events)."""

EVENT_COLUMNS = (
    "id",
    "timestamp",
    "user_id",
    "type",
    "schema_name",
    "table_name",
    "row_id",
    "data",
    "txn",
    "context",
)
"""The event table's columns in the order the writer and the reader use."""


def columns(quoted: bool = True) -> str:
    """The event columns as a SELECT or INSERT list."""
    return ", ".join(f"`{c}`" if quoted else c for c in EVENT_COLUMNS)


def qualified(database: str, table: str) -> str:
    """`database`.`table`, quoted (names from the DSN never hold a backtick: see `Dsn`)."""
    return f"`{database}`.`{table}`"


def ddl_statements(name: str = "event_table.sql") -> list[str]:
    """The statements of `sql/<name>`, comments removed."""
    text = resources.files("cdc").joinpath(f"sql/{name}").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def column_type(cur: Any, database: str, table: str, column: str) -> str | None:
    """A column's full type as information_schema shows it (`enum('a','b')`), or None."""
    cur.execute(
        "SELECT COLUMN_TYPE FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND COLUMN_NAME = %s",
        (database, table, column),
    )
    row = cur.fetchone()
    return str(row[0]).lower() if row else None


@dataclass(frozen=True, slots=True)
class Migration:
    """One change to an installation made by an older version: `needed` looks (read
    only), `statements` change it. Each keeps every row and every id."""

    name: str
    needed: Callable[[Any, str], bool]  # (cursor, database)
    statements: Callable[[str], list[str]]  # (database)


def table_exists(cur: Any, database: str, table: str) -> bool:
    cur.execute(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (database, table),
    )
    return cur.fetchone() is not None


def _failover_table(table: str) -> Callable[[str], list[str]]:
    """The CREATE statement of a failover table, in `database`."""

    def statements(database: str) -> list[str]:
        found = [s for s in ddl_statements(FAILOVER_SQL) if f"`{table}`" in s.split("(")[0]]
        return [f"USE `{database}`", *found]

    return statements


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "event_type_any_name",
        lambda cur, db: (column_type(cur, db, EVENT, "type") or "").startswith("enum("),
        lambda db: [f"ALTER TABLE {qualified(db, EVENT)} MODIFY `type` VARCHAR(32) NOT NULL"],
    ),
    Migration(
        "event_context_and_application_events",
        lambda cur, db: column_type(cur, db, EVENT, "context") is None,
        lambda db: [
            f"ALTER TABLE {qualified(db, EVENT)} ADD COLUMN `context` JSON NULL AFTER `txn`,"
            " MODIFY `schema_name` VARCHAR(64) NULL, MODIFY `table_name` VARCHAR(64) NULL"
        ],
    ),
    Migration(
        "checkpoint_column_facts",
        lambda cur, db: column_type(cur, db, CHECKPOINT, "column_facts") is None,
        lambda db: [
            f"ALTER TABLE {qualified(db, CHECKPOINT)} ADD COLUMN `column_facts` LONGTEXT NULL"
            " AFTER `server_uuid`"
        ],
    ),
    Migration(
        "checkpoint_owner",
        lambda cur, db: column_type(cur, db, CHECKPOINT, "owner") is None,
        lambda db: [
            f"ALTER TABLE {qualified(db, CHECKPOINT)} ADD COLUMN `owner` VARCHAR(255) NULL"
            " AFTER `column_facts`"
        ],
    ),
    *(
        Migration(
            f"{table}_table",
            lambda cur, db, table=table: not table_exists(cur, db, table),  # type: ignore[misc]
            _failover_table(table),
        )
        for table in FAILOVER_TABLES
    ),
)


def pending_migrations(cur: Any, database: str) -> list[Migration]:
    return [m for m in MIGRATIONS if m.needed(cur, database)]


def migrate(cur: Any, database: str) -> list[str]:
    """Apply the migrations an existing installation needs, in order; their names."""
    applied = []
    for migration in pending_migrations(cur, database):
        log.info("schema_migration", name=migration.name, database=database)
        for statement in migration.statements(database):
            cur.execute(statement)
        applied.append(migration.name)
    return applied


def init_schema(dsn: Dsn) -> list[str]:
    """Create the DSN's database and the event tables in it, or bring an older
    installation up to date (idempotent); the names of the migrations applied."""
    conn = mysql.connect_for_command(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{dsn.database}`")
            cur.execute(f"USE `{dsn.database}`")
            for statement in ddl_statements() + ddl_statements(FAILOVER_SQL):
                cur.execute(statement)
            return migrate(cur, dsn.database)
    finally:
        conn.close()


def init_trigger_tables(cur: Any, database: str) -> None:
    """Create trigger mode's tables (`sql/trigger_tables.sql`) in `database` (idempotent)."""
    cur.execute(f"USE `{database}`")
    for statement in ddl_statements("trigger_tables.sql"):
        cur.execute(statement)

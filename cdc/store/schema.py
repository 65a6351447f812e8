"""The event tables' names, columns and DDL (`sql/event_table.sql`), and `init_schema`."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from cdc import mysql

if TYPE_CHECKING:
    from cdc.settings import Dsn

EVENT = "event"
CHECKPOINT = "cdc_checkpoint"
OWN_TABLES = (EVENT, CHECKPOINT)
"""The daemon's own tables, in the DSN's database: never captured."""

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
)
"""The event table's columns in the order the writer and the reader use."""


def columns(quoted: bool = True) -> str:
    """The event columns as a SELECT or INSERT list."""
    return ", ".join(f"`{c}`" if quoted else c for c in EVENT_COLUMNS)


def qualified(database: str, table: str) -> str:
    """`database`.`table`, quoted (names from the DSN never hold a backtick: see `Dsn`)."""
    return f"`{database}`.`{table}`"


def ddl_statements() -> list[str]:
    """The statements of `sql/event_table.sql`, comments removed."""
    text = resources.files("cdc").joinpath("sql/event_table.sql").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def init_schema(dsn: Dsn) -> None:
    """Create the DSN's database and the event tables in it (idempotent)."""
    conn = mysql.connect_for_command(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{dsn.database}`")
            cur.execute(f"USE `{dsn.database}`")
            for statement in ddl_statements():
                cur.execute(statement)
    finally:
        conn.close()

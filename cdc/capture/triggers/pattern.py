"""The documented trigger pattern (`sql/triggers.sql`): what `cdc triggers install`
creates, shown on an example table for MariaDB and MySQL 8, from the same generator.

A test keeps the file equal to `render()`, so what a DBA reads is what install runs.
"""

from __future__ import annotations

from cdc.capture.triggers import sql
from cdc.capture.triggers.spec import TableSpec, table_spec

EXAMPLE_TABLE = """CREATE TABLE hosp.patient (
  id         INT PRIMARY KEY,
  name       VARCHAR(100) CHARACTER SET utf8mb4,
  born       DATE,
  balance    DECIMAL(10,2),
  weight_kg  FLOAT,
  photo      BLOB,
  updated_by VARCHAR(32)
);"""

_COLUMNS = (
    ("id", "int", None, 0, None),
    ("name", "varchar", "utf8mb4", None, None),
    ("born", "date", None, None, None),
    ("balance", "decimal", None, 2, None),
    ("weight_kg", "float", None, None, None),
    ("photo", "blob", None, None, None),
    ("updated_by", "varchar", "utf8mb4", None, None),
)

_HEAD = """-- cdc trigger capture: the pattern `cdc triggers install` follows, readable by a DBA.
-- Generated from cdc's own trigger generator (cdc/capture/triggers/pattern.py); a test
-- keeps this file equal to it. Do not install it by hand: `cdc triggers install` makes
-- these for every included table from information_schema, records them (so `status`
-- and `remove` know exactly what is cdc's), and keeps them up to date after ALTER TABLE.
--
-- Each trigger inserts one row into the staging table (sql/trigger_tables.sql) inside
-- the application's transaction: the change's type, table, the table version the row
-- was staged by, the user (@cdc_user_id, set by the application per transaction), the
-- connection as the transaction's identity, the statement's UTC time, and the row
-- images as JSON_OBJECT('before', ..., 'after', ...). Values are staged losslessly:
-- text and binary as HEX, FLOAT as DOUBLE, DECIMAL and dates as text; the daemon turns
-- them into the same values binlog capture gives. Triggers never write `event`: the
-- daemon moves committed staging rows there with gapless ids, in one transaction.
--
-- Example table:
"""


def example_spec(is_mariadb: bool) -> TableSpec:
    """The example table's spec, with `user_id` taken from its `updated_by` column."""
    spec = table_spec(
        "hosp",
        "patient",
        _COLUMNS,
        ("id",),
        frozenset(),
        is_mariadb,
        database="cdc",
        user_column="updated_by",
    )
    return sql.versioned(spec)


def _server(title: str, is_mariadb: bool) -> list[str]:
    spec = example_spec(is_mariadb)
    lines = [f"-- {title}", f"SET SESSION sql_mode = '{sql.SQL_MODE}';"]
    for op in sql.ops(spec):
        lines.extend(s + ";" for s in sql.create_sql(spec, op, None, is_mariadb, replace=False))
    return lines


def render() -> str:
    """The text of sql/triggers.sql."""
    head = _HEAD + "".join(f"--   {line}\n" for line in EXAMPLE_TABLE.splitlines())
    mariadb = _server("MariaDB 10.5+ (CREATE OR REPLACE TRIGGER on reinstall: atomic)", True)
    mysql = _server(
        "MySQL 8 (reinstall: LOCK TABLES ... WRITE, DROP TRIGGER, CREATE TRIGGER, UNLOCK TABLES)",
        False,
    )
    return head + "\n" + "\n".join(mariadb) + "\n\n" + "\n".join(mysql) + "\n"

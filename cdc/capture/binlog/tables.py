"""Table versions as the row decoders see them: our `Table` from a library TableMap, with
the column facts the binlog does not carry (MariaDB's JSON, UUID, INET4, INET6), read
from information_schema."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from cdc import mysql
from cdc.models import Column, Table

if TYPE_CHECKING:
    from cdc.settings import Dsn

_JSON_CHECK = re.compile(r"json_valid\(`((?:[^`]|``)+)`\)", re.IGNORECASE)

Logical = dict[tuple[str, str], dict[str, str]]
"""(schema, table) -> column -> "uuid" | "inet4" | "inet6" | "json"."""


def table_from_library(lib_table: Any, logical: dict[str, str] | None = None) -> Table:
    """Our `Table` from a pymysqlreplication TableMap table (columns as of that event)."""
    logical = logical or {}
    columns = []
    for index, col in enumerate(lib_table.columns):
        name = col.name or f"UNKNOWN_COL{index}"
        charset = "binary" if col.collation_name == "binary" else col.character_set_name
        enum_values = tuple(col.enum_values[1:]) if col.enum_values else ()
        columns.append(
            Column(
                name=name,
                type=col.type,
                unsigned=bool(col.unsigned),
                charset=charset,
                max_length=getattr(col, "max_length", 0),
                length_size=getattr(col, "length_size", 0),
                fsp=getattr(col, "fsp", 0),
                precision=getattr(col, "precision", 0),
                decimals=getattr(col, "decimals", 0),
                bits=getattr(col, "bits", 0),
                size=getattr(col, "size", 0),
                enum_values=enum_values,
                set_values=tuple(col.set_values or ()),
                logical=logical.get(name),
            )
        )
    key = lib_table.primary_key
    primary_key = (key,) if isinstance(key, str) and key else tuple(key or ())
    return Table(lib_table.schema, lib_table.table, tuple(columns), primary_key)


def load_logical_types(dsn: Dsn, is_mariadb: bool) -> Logical:
    """Types the binlog does not tell: MariaDB's UUID/INET4/INET6 travel as BINARY, its
    JSON as LONGTEXT (recognised by the `json_valid` check MariaDB adds)."""
    found: Logical = {}
    if not is_mariadb:
        return found
    conn = mysql.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE"
                " FROM information_schema.COLUMNS"
                " WHERE DATA_TYPE IN ('uuid', 'inet4', 'inet6')"
            )
            rows = [(s, t, c, kind.lower()) for s, t, c, kind in cur.fetchall()]
            cur.execute(
                "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE"
                " FROM information_schema.CHECK_CONSTRAINTS"
                " WHERE CHECK_CLAUSE LIKE 'json\\_valid(%%'"
            )
            for schema, table, clause in cur.fetchall():
                match = _JSON_CHECK.fullmatch(clause.strip())
                if match:
                    rows.append((schema, table, match.group(1).replace("``", "`"), "json"))
    finally:
        conn.close()
    for schema, table, column, kind in rows:
        found.setdefault((schema, table), {})[column] = kind
    return found

"""Table versions as the row decoders see them: our `Table` from a library TableMap, with
the column facts the binlog does not carry (facts.py), and reading those facts from
information_schema."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cdc import mysql
from cdc.capture.binlog.facts import ColumnFacts
from cdc.capture.binlog.rows.types import ENUM, SET
from cdc.capture.charsets import text_decoder
from cdc.capture.filters import SYSTEM_SCHEMAS
from cdc.models import Column, Table

if TYPE_CHECKING:
    from cdc.settings import Dsn


Labels = tuple[list[list[bytes]], list[list[bytes]]]
"""The raw labels of a table's ENUM columns and SET columns (table_map.py)."""


def _labels(
    raw: list[bytes] | None, charset: str | None, shown: str | None, binary: str
) -> tuple[Any, ...] | None:
    if raw is None or not charset:
        return None
    decode = text_decoder(charset, binary, shown)
    return tuple(decode(label) for label in raw)


def table_from_library(
    lib_table: Any,
    logical: dict[str, str] | None = None,
    labels: Labels | None = None,
    binary: str = "hex",
) -> Table:
    """Our `Table` from a pymysqlreplication TableMap table (columns as of that event).

    `labels` are the TableMap's raw ENUM/SET labels, decoded here with each column's
    character set (the library's own are UTF-8 only); without them the library's are kept.
    """
    logical = logical or {}
    enums, sets = (iter(part) for part in (labels or ([], [])))
    columns = []
    for index, col in enumerate(lib_table.columns):
        name = col.name or f"UNKNOWN_COL{index}"
        charset = "binary" if col.collation_name == "binary" else col.character_set_name
        # The collation names its character set: utf8mb4_general_ci is utf8mb4's.
        charset_name = col.collation_name.split("_")[0] if col.collation_name else None
        enum_values = tuple(col.enum_values[1:]) if col.enum_values else ()
        set_values = tuple(col.set_values or ())
        if col.type == ENUM:
            enum_values = _labels(next(enums, None), charset, charset_name, binary) or enum_values
        elif col.type == SET:
            set_values = _labels(next(sets, None), charset, charset_name, binary) or set_values
        columns.append(
            Column(
                name=name,
                type=col.type,
                unsigned=bool(col.unsigned),
                charset=charset,
                charset_name=charset_name if charset_name != charset else None,
                max_length=getattr(col, "max_length", 0),
                length_size=getattr(col, "length_size", 0),
                fsp=getattr(col, "fsp", 0),
                precision=getattr(col, "precision", 0),
                decimals=getattr(col, "decimals", 0),
                bits=getattr(col, "bits", 0),
                size=getattr(col, "size", 0),
                enum_values=enum_values,
                set_values=set_values,
                logical=logical.get(name),
            )
        )
    key = lib_table.primary_key
    primary_key = (key,) if isinstance(key, str) and key else tuple(key or ())
    return Table(lib_table.schema, lib_table.table, tuple(columns), primary_key)


def load_facts(dsn: Dsn, tables: list[tuple[str, str]] | None = None) -> ColumnFacts:
    """The column facts information_schema gives now: of every table outside the system
    schemas, or of `tables`."""
    facts = ColumnFacts()
    read_facts(dsn, facts, tables)
    return facts


def read_facts(dsn: Dsn, facts: ColumnFacts, tables: list[tuple[str, str]] | None) -> None:
    """Replace the facts of `tables` (None: of every table) with information_schema's."""
    if tables is None:
        where = f"TABLE_SCHEMA NOT IN ({', '.join(['%s'] * len(SYSTEM_SCHEMAS))})"
        args: list[str] = sorted(SYSTEM_SCHEMAS)
    elif not tables:
        return
    else:
        where = " OR ".join(["(TABLE_SCHEMA = %s AND TABLE_NAME = %s)"] * len(tables))
        args = [part for pair in tables for part in pair]
    conn = mysql.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE"
                f" FROM information_schema.COLUMNS WHERE {where}",
                args,
            )
            columns = list(cur.fetchall())
            checks_where = where.replace("TABLE_SCHEMA", "CONSTRAINT_SCHEMA")
            cur.execute(
                "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE"
                f" FROM information_schema.CHECK_CONSTRAINTS WHERE ({checks_where})"
                " AND CHECK_CLAUSE LIKE 'json\\_valid(%%'",
                args,
            )
            checks = list(cur.fetchall())
    finally:
        conn.close()
    for key in tables or ():
        facts.tables.pop(key, None)  # gone from information_schema: gone
    facts.absorb(columns, checks)

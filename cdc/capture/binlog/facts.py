"""Column facts the binlog does not carry (MariaDB's JSON, UUID, INET4, INET6 columns),
as of a binlog position.

They start from information_schema at the first start (the baseline is the server's
current position, so "now" is right then) and are stored with every checkpoint that
follows a change; each DDL statement of the binlog changes them as it says (ddl.py), so a
backlog read later sees each table as it was when its rows were written. Before a table
version is used, its facts are checked against the table map's column names; a table
whose facts do not match is read again from information_schema and checked again, and
where that does not match either its columns get no logical type (logged), never a
guessed one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from cdc.capture.binlog import ddl

_JSON_CHECK = re.compile(r"json_valid\(`((?:[^`]|``)+)`\)", re.IGNORECASE)

Key = tuple[str, str]  # (schema, table)


@dataclass(slots=True)
class TableFacts:
    """One table's columns (lower-cased name -> logical type or None) and its json_valid
    checks (lower-cased constraint name -> lower-cased column)."""

    columns: dict[str, str | None] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)

    def logical(self) -> dict[str, str]:
        json_checked = set(self.checks.values())
        found = {c: kind for c, kind in self.columns.items() if kind}
        found.update((c, "json") for c in json_checked if c in self.columns)
        return found


Rows = Iterable[tuple[str, str, str, str]]  # (schema, table, column, data_type)
Checks = Iterable[tuple[str, str, str, str]]  # (schema, table, constraint, clause)


class ColumnFacts:
    """The facts of every table, by (schema, table)."""

    def __init__(self, tables: dict[Key, TableFacts] | None = None) -> None:
        self.tables: dict[Key, TableFacts] = tables or {}
        self.version = 0  # bumped at every change, so the text is made once per change
        self._text: tuple[int, str] | None = None

    # -- building ---------------------------------------------------------------------

    @classmethod
    def from_schema(cls, columns: Rows, checks: Checks) -> ColumnFacts:
        """From information_schema.COLUMNS and CHECK_CONSTRAINTS rows."""
        facts = cls()
        facts.absorb(columns, checks)
        return facts

    def absorb(self, columns: Rows, checks: Checks) -> None:
        """Replace the facts of the tables these rows describe."""
        fresh: dict[Key, TableFacts] = {}
        for schema, table, column, data_type in columns:
            kind = data_type.lower()
            entry = fresh.setdefault((schema, table), TableFacts())
            entry.columns[column.lower()] = kind if kind in ddl.LOGICAL_TYPES else None
        for schema, table, constraint, clause in checks:
            match = _JSON_CHECK.fullmatch(clause.strip())
            if match and (schema, table) in fresh:
                column = match.group(1).replace("``", "`").lower()
                fresh[schema, table].checks[constraint.lower()] = column
        self.tables.update(fresh)
        self.version += 1

    # -- the checkpoint's copy ----------------------------------------------------------

    def to_text(self) -> str:
        if self._text is None or self._text[0] != self.version:
            data: dict[str, dict[str, Any]] = {}
            for (schema, table), entry in self.tables.items():
                data.setdefault(schema, {})[table] = [entry.columns, entry.checks]
            self._text = (self.version, orjson.dumps(data).decode())
        return self._text[1]

    @classmethod
    def from_text(cls, text: str) -> ColumnFacts:
        tables: dict[Key, TableFacts] = {}
        for schema, by_table in orjson.loads(text).items():
            for table, (columns, checks) in by_table.items():
                tables[schema, table] = TableFacts(dict(columns), dict(checks))
        return cls(tables)

    # -- DDL ----------------------------------------------------------------------------

    def apply(self, change: ddl.Change | None, default_schema: str) -> list[Key]:
        """Apply one DDL statement's change; the tables whose facts it left unknown."""
        if change is None:
            return []
        self.version += 1

        def key(name: ddl.Name) -> Key:
            return (name[0] or default_schema, name[1])

        if isinstance(change, ddl.Unknown):
            return [key(change.table)] if change.table else list(self.tables)
        if isinstance(change, ddl.CreateTable):
            entry = TableFacts({c.name.lower(): c.logical for c in change.columns})
            for constraint, column in change.checks:
                entry.checks[(constraint or f"check_{column}").lower()] = column.lower()
            self.tables[key(change.table)] = entry
        elif isinstance(change, ddl.CreateLike):
            source = self.tables.get(key(change.source))
            if source is None:
                return [key(change.table)]
            self.tables[key(change.table)] = TableFacts(dict(source.columns), dict(source.checks))
        elif isinstance(change, ddl.AlterTable):
            return self._alter(key(change.table), change.actions, key)
        elif isinstance(change, ddl.RenameTable):
            for old, new in change.pairs:
                moved = self.tables.pop(key(old), None)
                if moved is not None:
                    self.tables[key(new)] = moved
        elif isinstance(change, ddl.DropTables):
            for name in change.tables:
                self.tables.pop(key(name), None)
        elif isinstance(change, ddl.DropDatabase):
            for gone in [k for k in self.tables if k[0] == change.schema]:
                del self.tables[gone]
        return []

    def _alter(
        self, table: Key, actions: tuple[ddl.Action, ...], key: Callable[[ddl.Name], Key]
    ) -> list[Key]:
        entry = self.tables.get(table)
        if entry is None:
            return [table]
        for action in actions:
            if isinstance(action, ddl.AddColumn):
                entry.columns[action.column.name.lower()] = action.column.logical
            elif isinstance(action, ddl.ChangeColumn):
                old = action.old.lower()
                entry.columns.pop(old, None)
                # A new definition drops the column's own check (its name is the column's).
                entry.checks.pop(old, None)
                entry.columns[action.column.name.lower()] = action.column.logical
            elif isinstance(action, ddl.DropColumn):
                entry.columns.pop(action.name.lower(), None)
                entry.checks = {k: c for k, c in entry.checks.items() if c != action.name.lower()}
            elif isinstance(action, ddl.RenameColumn):
                old, new = action.old.lower(), action.new.lower()
                if old in entry.columns:
                    entry.columns[new] = entry.columns.pop(old)
                entry.checks = {k: new if c == old else c for k, c in entry.checks.items()}
            elif isinstance(action, ddl.AddCheck):
                name = (action.constraint or f"check_{action.column}").lower()
                entry.checks[name] = action.column.lower()
            elif isinstance(action, ddl.DropCheck):
                name = action.constraint.lower()
                if entry.checks.pop(name, None) is not None:
                    continue
                if entry.columns.get(name) == "json":
                    entry.columns[name] = None  # a column's own check bears its name
                    continue
                return [table]  # an unnamed check's generated name: not known here
            elif isinstance(action, ddl.RenameTo):
                self.tables[key(action.table)] = self.tables.pop(table)
                table = key(action.table)
        return []

    # -- use ------------------------------------------------------------------------------

    def logical(self, schema: str, table: str, names: Iterable[str]) -> dict[str, str] | None:
        """Column name (as the table map spells it) -> logical type, when the facts
        describe exactly these columns; None when they do not (or are missing)."""
        entry = self.tables.get((schema, table))
        if entry is None:
            return None
        by_lower = {name.lower(): name for name in names}
        if set(by_lower) != set(entry.columns):
            return None
        return {by_lower[c]: kind for c, kind in entry.logical().items()}

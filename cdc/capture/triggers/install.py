"""`cdc triggers install | remove | status`: the capture triggers of the chosen tables,
generated from information_schema, next to the application's own triggers.

`install` creates (or brings up to date) the triggers of every included table and of
the outbox, recording each table version it stages and the names it created; run again
on a live table it loses no change (each trigger is replaced atomically). `remove` drops
exactly the triggers it recorded, and refuses while their changes are not yet moved.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pymysql

from cdc import mysql
from cdc.capture.filters import SYSTEM_SCHEMAS, TableFilter
from cdc.capture.triggers import sql
from cdc.capture.triggers.columns import StagedColumn
from cdc.capture.triggers.spec import TableSpec, key_id, key_pads, table_spec
from cdc.errors import CdcError, StartupError, server_code
from cdc.store import staging
from cdc.store.schema import OUTBOX, OWN_TABLES, init_schema, init_trigger_tables

if TYPE_CHECKING:
    from cdc.policy.redaction import RedactionPlan
    from cdc.settings import CaptureSettings, Dsn

Key = tuple[str, str]
_JSON_CHECK = re.compile(r"json_valid\(`((?:[^`]|``)+)`\)", re.I)
_DENIED = {1142, 1044, 1227}  # command denied, access denied to a database, needs a privilege
_NEEDS_SUPER = 1419  # binary logging on: creating a trigger needs SUPER


@dataclass(frozen=True, slots=True)
class TableState:
    """One line of `cdc triggers status`."""

    schema: str
    table: str
    state: str  # ok, missing, out of date
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def line(self) -> str:
        text = f"{self.state:<11} {self.schema}.{self.table}"
        return f"{text}  ({self.detail})" if self.detail else text


def _included(settings: CaptureSettings, database: str) -> TableFilter:
    own = frozenset((database, table) for table in OWN_TABLES)
    return TableFilter(own, settings.include, settings.exclude)


def _differences(old: TableSpec | None, new: TableSpec) -> str:
    """What makes an installed table version out of date, in a few words."""
    if old is None:
        return "its table version is not recorded"
    before = {c.name: c for c in old.columns}
    after = {c.name: c for c in new.columns}
    both = [n for n in after if n in before]

    def shape(c: StagedColumn) -> tuple[Any, ...]:
        return (c.kind, c.charset, c.scale, c.fsp)

    def redaction(c: StagedColumn) -> tuple[Any, ...]:
        return (c.redact, c.key)

    parts = []
    for label, names in (
        ("columns added", [n for n in after if n not in before]),
        ("columns removed", [n for n in before if n not in after]),
        ("columns changed", [n for n in both if shape(after[n]) != shape(before[n])]),
        ("redaction changed", [n for n in both if redaction(after[n]) != redaction(before[n])]),
    ):
        if names:
            parts.append(f"{label}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}")
    if old.key != new.key:
        parts.append("primary key changed")
    if not parts:
        parts.append("installed by another version of cdc, or for another event database")
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Step:
    """What `install` or `remove` did (or would do) to one table."""

    table: TableState  # the state it was in (or `removed`)
    statements: list[str]


class Triggers:
    """The capture triggers of one server, as `settings.include`/`exclude` choose the
    tables; `plan` holds the `[[redact]]` rules the triggers apply."""

    def __init__(self, dsn: Dsn, settings: CaptureSettings, plan: RedactionPlan | None) -> None:
        self.dsn = dsn
        self.database = dsn.database
        self.settings = settings
        self.plan = plan
        self.captured = _included(settings, dsn.database)
        self.notes: list[str] = []  # what `remove` did beyond the tables

    # -- reading the server -----------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        conn = mysql.connect_for_command(self.dsn)
        try:
            with conn.cursor() as cur:
                yield conn, cur
        except pymysql.err.OperationalError as error:
            raise _privilege_error(error, self.database) from error
        finally:
            conn.close()

    def _specs(self, cur: Any, is_mariadb: bool) -> list[TableSpec]:
        """The table versions the triggers should stage now: the included tables and the
        outbox, from information_schema."""
        system = sorted(SYSTEM_SCHEMAS)
        marks = ", ".join(["%s"] * len(system))
        cur.execute(
            "SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE,"
            " c.CHARACTER_SET_NAME, c.NUMERIC_SCALE, c.DATETIME_PRECISION"
            " FROM information_schema.COLUMNS c JOIN information_schema.TABLES t"
            " ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME"
            f" WHERE t.TABLE_TYPE = 'BASE TABLE' AND c.TABLE_SCHEMA NOT IN ({marks})"
            " ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION",
            system,
        )
        columns: dict[Key, list[Any]] = {}
        outbox = (self.database, OUTBOX)
        for schema, table, *column in cur.fetchall():
            if (schema, table) == outbox or self.captured(schema, table):
                columns.setdefault((schema, table), []).append(tuple(column))
        json_columns = self._json_columns(cur) if is_mariadb else {}
        keys = mysql.primary_keys(cur.connection)
        if self.plan is not None:
            self.plan.check_keys({k: keys.get(k, ()) for k in columns if k != outbox})
        hash_keys = {key: key_id(key) for key in (self.plan.hash_keys() if self.plan else ())}
        return [
            sql.versioned(
                table_spec(
                    schema,
                    table,
                    rows,
                    keys.get((schema, table), ()),
                    json_columns.get((schema, table), frozenset()),
                    is_mariadb,
                    database=self.database,
                    plan=self.plan,
                    keys=hash_keys,
                    user_column=self.settings.user_column,
                    outbox=(schema, table) == outbox,
                )
            )
            for (schema, table), rows in columns.items()
        ]

    @staticmethod
    def _json_columns(cur: Any) -> dict[Key, frozenset[str]]:
        """MariaDB's JSON columns: LONGTEXT with a `json_valid` check."""
        cur.execute(
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE"
            " FROM information_schema.CHECK_CONSTRAINTS WHERE CHECK_CLAUSE LIKE 'json\\_valid(%%'"
        )
        found: dict[Key, set[str]] = {}
        for schema, table, clause in cur.fetchall():
            match = _JSON_CHECK.fullmatch(str(clause).strip())
            if match:
                found.setdefault((schema, table), set()).add(match.group(1).replace("``", "`"))
        return {key: frozenset(names) for key, names in found.items()}

    @staticmethod
    def _existing(cur: Any) -> dict[Key, list[tuple[str, str, int]]]:
        """Every table's AFTER triggers: (name, event, order), in order."""
        cur.execute(
            "SELECT EVENT_OBJECT_SCHEMA, EVENT_OBJECT_TABLE, TRIGGER_NAME,"
            " EVENT_MANIPULATION, ACTION_ORDER FROM information_schema.TRIGGERS"
            " WHERE ACTION_TIMING = 'AFTER' ORDER BY ACTION_ORDER"
        )
        found: dict[Key, list[tuple[str, str, int]]] = {}
        for schema, table, name, event, order in cur.fetchall():
            found.setdefault((schema, table), []).append((name, str(event), int(order)))
        return found

    def _states(self, cur: Any, specs: list[TableSpec]) -> list[TableState]:
        if not staging.ready(cur, self.database):
            return [TableState(s.schema, s.table, "missing") for s in specs]
        installed = staging.installed(cur, self.database)
        existing = self._existing(cur)
        stored = staging.specs(cur, self.database, sorted({v for v, _ in installed.values()}))
        states = []
        for spec in specs:
            key = (spec.schema, spec.table)
            if key not in installed:
                states.append(TableState(spec.schema, spec.table, "missing"))
                continue
            version, names = installed[key]
            present = {name for name, _, _ in existing.get(key, ())}
            gone = [name for name in names if name not in present]
            if gone:
                detail = f"trigger(s) {', '.join(gone)} dropped"
                states.append(TableState(spec.schema, spec.table, "out of date", detail))
            elif version != spec.version:
                text = stored.get(version)
                old = TableSpec.from_json(text, version) if text else None
                detail = _differences(old, spec)
                states.append(TableState(spec.schema, spec.table, "out of date", detail))
            else:
                states.append(TableState(spec.schema, spec.table, "ok"))
        return states

    # -- the commands -----------------------------------------------------------------

    def status(self) -> list[TableState]:
        """One state per included table (and the outbox), in name order."""
        with self._connection() as (conn, cur):
            specs = self._specs(cur, mysql.server_info(conn).is_mariadb)
            return self._states(cur, specs)

    def install(self, dry_run: bool = False) -> list[Step]:
        """Installs or updates every table that is not `ok` (with `dry_run`, only says
        how). One step per table changed, with its statements."""
        if not dry_run:
            init_schema(self.dsn)
        with self._connection() as (conn, cur):
            is_mariadb = mysql.server_info(conn).is_mariadb
            if not dry_run:
                init_trigger_tables(cur, self.database)
                self._save_keys(cur)
            specs = self._specs(cur, is_mariadb)
            states = {(s.schema, s.table): s for s in self._states(cur, specs)}
            ready = staging.ready(cur, self.database)
            installed = staging.installed(cur, self.database) if ready else {}
            existing = self._existing(cur)
            steps = []
            for spec in specs:
                key = (spec.schema, spec.table)
                if states[key].ok:
                    continue
                plan = self._plan(spec, installed.get(key), existing.get(key, []), is_mariadb)
                steps.append(Step(states[key], plan))
                if dry_run:
                    continue
                staging.save_spec(cur, self.database, spec.version, *key, spec.to_json())
                for statement in plan:
                    self._execute(cur, statement, spec)
                names = [sql.trigger_name(spec.table, op) for op in sql.ops(spec)]
                staging.save_installed(cur, self.database, *key, spec.version, names)
            return steps

    @staticmethod
    def _plan(
        spec: TableSpec,
        installed: tuple[str, tuple[str, ...]] | None,
        present: list[tuple[str, str, int]],
        is_mariadb: bool,
    ) -> list[str]:
        """The statements that bring one table's triggers to `spec`: each before the
        application's own AFTER triggers of its event."""
        ours = set(installed[1] if installed else ()) | {
            sql.trigger_name(spec.table, op) for op in sql.ops(spec)
        }
        statements = []
        for op in sql.ops(spec):
            name, event = sql.trigger_name(spec.table, op), sql.EVENTS[op][0]
            theirs = [n for n, e, _ in present if e == event and n not in ours]
            exists = any(n == name for n, _, _ in present)
            statements += sql.create_sql(
                spec, op, theirs[0] if theirs else None, is_mariadb, exists
            )
        return statements

    def remove(self, force: bool = False) -> list[Step]:
        """Drops the recorded triggers of the included tables (the outbox's with the last
        table's); refuses while their staged changes are not moved, unless `force` (then
        they are dropped). Drops trigger mode's tables when nothing is left in them."""
        with self._connection() as (_conn, cur):
            if not staging.ready(cur, self.database):
                return []
            installed = staging.installed(cur, self.database)
            outbox = (self.database, OUTBOX)
            chosen = [k for k in installed if k != outbox and self.captured(*k)]
            if outbox in installed and all(k in chosen for k in installed if k != outbox):
                chosen.append(outbox)  # the outbox's trigger goes with the last table's
            waiting = {k: n for k in chosen if (n := staging.staged_count(cur, self.database, *k))}
            if waiting and not force:
                listed = ", ".join(f"{s}.{t} ({n})" for (s, t), n in sorted(waiting.items()))
                raise StartupError(
                    f"changes staged by the triggers are not moved yet: {listed}",
                    fix="let `cdc run --capture triggers` move them (the stream shows them), "
                    "then remove again; or --force to drop them",
                )
            steps = []
            for key in chosen:
                statements = [sql.drop_sql(key[0], name) for name in installed[key][1]]
                for statement in statements:
                    cur.execute(statement)
                staging.forget_installed(cur, self.database, *key)
                dropped = staging.delete_staged(cur, self.database, *key) if force else 0
                detail = f"{dropped} staged change(s) dropped" if dropped else ""
                steps.append(Step(TableState(*key, "removed", detail), statements))
            if not staging.installed(cur, self.database):
                if staging.staged_count(cur, self.database):
                    self.notes.append(
                        "changes staged meanwhile remain in the staging table: "
                        "`cdc run --capture triggers` moves them"
                    )
                else:
                    staging.drop_tables(cur, self.database)
                    self.notes.append(f"trigger mode's tables dropped from `{self.database}`")
            return steps

    def _save_keys(self, cur: Any) -> None:
        for key in self.plan.hash_keys() if self.plan else ():
            staging.save_key(cur, self.database, key_id(key), *key_pads(key))

    def _execute(self, cur: Any, statement: str, spec: TableSpec) -> None:
        try:
            cur.execute(f"SET SESSION sql_mode = '{sql.SQL_MODE}'")
            cur.execute(statement)
        except pymysql.err.OperationalError as error:
            raise _privilege_error(error, self.database, spec.qualified) from error


def _privilege_error(error: Exception, database: str, table: str | None = None) -> Exception:
    """A privilege the installing account lacks, with the GRANT that gives it."""
    code = server_code(error)
    where = f" on {table}" if table else ""
    schema = f"`{table.split('.')[0]}`.*" if table else "the captured schemas"
    if code == _NEEDS_SUPER:
        return StartupError(
            f"the server refused to create a trigger{where}: binary logging is on and the "
            "account has no SUPER privilege",
            fix="SET GLOBAL log_bin_trust_function_creators = 1 (and in my.cnf), or install "
            "as an account with SUPER",
        )
    if code in _DENIED:
        return StartupError(
            f"the server refused{where}: {error.args[-1] if error.args else error}",
            fix=f"GRANT TRIGGER, SELECT ON {schema} TO the installing account, and SELECT, "
            f"INSERT, UPDATE, DELETE, CREATE, DROP ON `{database}`.* (the triggers run with its "
            "rights: keep that account)",
        )
    if isinstance(error, CdcError):
        return error
    return error

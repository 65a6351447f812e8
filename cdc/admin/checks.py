"""Can this server be captured? One check per setting or privilege, each with its fix."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pymysql

from cdc import mysql
from cdc.errors import StartupError, classify
from cdc.mysql import ServerInfo
from cdc.store import staging
from cdc.store.schema import (
    CHECKPOINT,
    EVENT,
    OUTBOX,
    OWN_TABLES,
    STAGING,
    init_schema,
    pending_migrations,
)

REQUIRED = frozenset({EVENT, CHECKPOINT})  # what capture needs; the rest `cdc run` adds

if TYPE_CHECKING:
    from cdc.settings import Dsn


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False  # capture works, but something is not read (and how to fix it)

    def line(self) -> str:
        mark = "FAIL" if not self.ok else "warn" if self.warning else "ok  "
        text = f"[{mark}] {self.name}: {self.detail}"
        return (
            f"{text}\n       fix: {self.fix}"
            if (not self.ok or self.warning) and self.fix
            else text
        )


def _variables(conn: mysql.Connection) -> dict[str, str]:
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL VARIABLES")
        return {name.lower(): str(value) for name, value in cur.fetchall()}


def _grants(conn: mysql.Connection) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SHOW GRANTS")
        return [row[0].upper() for row in cur.fetchall()]


def _has(grants: list[str], privilege: str, on: str = "*.*") -> bool:
    scope = re.compile(r" ON (\S+) TO ")
    for grant in grants:
        match = scope.search(grant)
        if not match or match.group(1).replace("`", "") not in (on.upper(), "*.*"):
            continue
        head = grant.split(" ON ")[0]
        if "ALL PRIVILEGES" in head or privilege in head:
            return True
    return False


def run_checks(dsn: Dsn) -> tuple[ServerInfo, list[Check]]:
    """Everything capture needs from the server; `cdc check` prints it, `cdc run` enforces it."""
    conn = mysql.connect_for_command(dsn)
    try:
        info = mysql.server_info(conn)
        variables = _variables(conn)
        grants = _grants(conn)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
                f" AND TABLE_NAME IN ({', '.join(['%s'] * len(OWN_TABLES))})",
                (dsn.database, *OWN_TABLES),
            )
            tables = {row[0] for row in cur.fetchall()}
            pending = pending_migrations(cur, dsn.database) if tables >= REQUIRED else []
        cascading = _cascading(mysql.foreign_keys(conn))
    finally:
        conn.close()
    checks = _evaluate(info, variables, grants, tables, dsn.database)
    checks.append(cascading)
    if tables >= REQUIRED and OUTBOX not in tables:
        checks.append(Check("event table layout", True, f"no {OUTBOX} yet: `cdc run` creates it"))
    elif pending:
        names = ", ".join(m.name for m in pending)
        checks.append(
            Check("event table layout", True, f"older layout ({names}): `cdc run` updates it")
        )
    return info, checks


_CASCADING_RULES = ("CASCADE", "SET NULL")
_LISTED = 20


def _statement_tags(info: ServerInfo, variables: dict[str, str], cnf: str) -> Check:
    """Whether the binlog carries each statement's text, where the user tags are read
    (a warning: capture works without, `user_id` then comes from the row's column)."""
    name = "binlog_annotate_row_events" if info.is_mariadb else "binlog_rows_query_log_events"
    value = variables.get(name, "OFF").upper()
    on = value in ("ON", "1")
    return Check(
        name,
        True,
        "on: statement tags (/*user_id='7'*/) are read"
        if on
        else f"{value}: statement tags (/*user_id='7'*/) are not read, user_id comes from "
        "the row's --user-column",
        f"add `{name} = ON` under {cnf} in my.cnf (and SET GLOBAL {name} = ON)",
        warning=not on,
    )


def _cascading(keys: list[tuple[Any, ...]]) -> Check:
    """The tables that foreign-key cascades change (InnoDB writes no row events for
    them: cdc emits CASCADE events, see the README)."""
    found: dict[str, set[str]] = {}
    for schema, table, _name, _col, ref_schema, ref_table, _ref, on_delete, on_update in keys:
        rules = [
            f"ON {kind} {rule}"
            for kind, rule in (("DELETE", on_delete), ("UPDATE", on_update))
            if str(rule).upper() in _CASCADING_RULES
        ]
        if rules:
            found.setdefault(f"{schema}.{table}", set()).add(
                f"{ref_schema}.{ref_table} {', '.join(rules)}"
            )
    if not found:
        return Check("foreign-key cascades", True, "no table is changed by a cascade")
    listed = [
        f"{child} (from {'; '.join(sorted(parents))})" for child, parents in sorted(found.items())
    ]
    more = f" and {len(listed) - _LISTED} more" if len(listed) > _LISTED else ""
    return Check(
        "foreign-key cascades",
        True,
        f"{len(found)} table(s) changed by cascades, captured as CASCADE events: "
        + ", ".join(listed[:_LISTED])
        + more,
    )


def run_trigger_checks(dsn: Dsn) -> tuple[ServerInfo, list[Check]]:
    """What trigger mode needs: privileges, the event and staging tables, triggers
    installed on some table (`cdc check --capture triggers`; `cdc run` enforces it)."""
    conn = mysql.connect_for_command(dsn)
    try:
        info = mysql.server_info(conn)
        variables = _variables(conn)
        grants = _grants(conn)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
                f" AND TABLE_NAME IN ({', '.join(['%s'] * len(OWN_TABLES))})",
                (dsn.database, *OWN_TABLES),
            )
            tables = {row[0] for row in cur.fetchall()}
            ready = staging.ready(cur, dsn.database)
            installed = staging.installed(cur, dsn.database) if ready else {}
            waiting = staging.staged_count(cur, dsn.database) if ready else 0
        cascading = _cascading(mysql.foreign_keys(conn))
    finally:
        conn.close()
    checks = _evaluate_triggers(info, variables, grants, tables, dsn.database, installed, waiting)
    return info, [*checks, cascading]


def _evaluate_triggers(
    info: ServerInfo,
    variables: dict[str, str],
    grants: list[str],
    tables: set[str],
    database: str,
    installed: dict[Any, Any],
    waiting: int,
) -> list[Check]:
    grant = "GRANT TRIGGER, SELECT ON `app`.* TO 'cdc'@'%' (for each captured schema)"
    checks = []
    for name in ("TRIGGER", "SELECT"):
        has = _has_any(grants, name)
        checks.append(Check(f"privilege {name}", has, "granted" if has else "missing", grant))
    writes = all(_has(grants, p, f"{database}.*") for p in ("INSERT", "UPDATE", "DELETE"))
    checks.append(
        Check(
            f"privilege to write `{database}`",
            writes,
            "granted" if writes else "missing INSERT/UPDATE/DELETE",
            f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX ON `{database}`.* "
            "TO 'cdc'@'%'",
        )
    )
    log_bin = variables.get("log_bin", "OFF").upper() in ("ON", "1")
    trusted = variables.get("log_bin_trust_function_creators", "OFF").upper() in ("ON", "1")
    if log_bin and not trusted and not _has(grants, "SUPER"):
        cnf = "[mariadb]" if info.is_mariadb else "[mysqld]"
        checks.append(
            Check(
                "log_bin_trust_function_creators",
                True,
                "OFF with the binary log on: creating triggers needs SUPER",
                f"SET GLOBAL log_bin_trust_function_creators = 1 (and under {cnf} in my.cnf)",
                warning=True,
            )
        )
    missing = REQUIRED - tables
    checks.append(
        Check(
            "event tables",
            not missing,
            f"`{database}`.event and cdc_checkpoint exist"
            if not missing
            else f"missing in `{database}`: {', '.join(sorted(missing))}",
            "run `cdc init --dsn ...`",
        )
    )
    covered = sum(1 for key in installed if key != (database, OUTBOX))
    checks.append(
        Check(
            "capture triggers",
            bool(installed),
            f"installed on {covered} table(s) and the outbox; {waiting} change(s) staged, "
            "not yet moved"
            if installed
            else f"none installed (no `{STAGING}` table, or no table recorded)",
            "run `cdc triggers install --dsn ...` (see `cdc triggers status`)",
        )
    )
    return checks


def _has_any(grants: list[str], privilege: str) -> bool:
    """A privilege granted on some database (or all)."""
    return any(
        " ON " in grant and ("ALL PRIVILEGES" in head or privilege in head)
        for grant in grants
        for head in (grant.split(" ON ")[0],)
    )


def ensure_trigger_capturable(dsn: Dsn) -> ServerInfo:
    """Creates the event tables if missing, then refuses a server trigger mode cannot read."""
    init_schema(dsn)
    info, results = run_trigger_checks(dsn)
    failed = [c for c in results if not c.ok and not c.name.startswith("privilege TRIGGER")]
    if failed:
        raise StartupError(
            "trigger capture cannot work:\n" + "\n".join(c.line() for c in failed),
            fix="apply the fixes above, then check again with `cdc check --capture triggers`",
        )
    return info


def ensure_capturable(dsn: Dsn) -> ServerInfo:
    """Creates the event tables if missing, then refuses a server that cannot be captured."""
    info, results = run_checks(dsn)
    if any(
        (c.name == "event tables" and not c.ok) or c.name == "event table layout" for c in results
    ):
        try:
            init_schema(dsn)
        except pymysql.err.OperationalError as error:
            verdict = classify(error)
            raise StartupError(
                f"cannot create or update the event tables in `{dsn.database}`: {error.args[-1]}",
                fix=f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON "
                f"`{dsn.database}`.* TO the capture user, or run `cdc init` as a user who may",
            ) from (verdict.error or error)
        info, results = run_checks(dsn)
    failed = [c for c in results if not c.ok]
    if failed:
        raise StartupError(
            "the server cannot be captured:\n" + "\n".join(c.line() for c in failed),
            fix="apply the fixes above, then check again with `cdc check`",
        )
    return info


def _evaluate(
    info: ServerInfo,
    variables: dict[str, str],
    grants: list[str],
    tables: set[str],
    database: str,
) -> list[Check]:
    cnf = "[mariadb]" if info.is_mariadb else "[mysqld]"
    checks: list[Check] = []

    def setting(name: str, want: str, fix: str) -> None:
        have = variables.get(name, "")
        checks.append(Check(name, have.upper() == want, f"{have or 'not set'} (need {want})", fix))

    log_bin = variables.get("log_bin", "OFF").upper()
    checks.append(
        Check(
            "log_bin",
            log_bin in ("ON", "1"),
            f"binary log {'on' if log_bin in ('ON', '1') else 'off'}",
            f"add `log_bin = binlog` under {cnf} in my.cnf and restart the server",
        )
    )
    setting("binlog_format", "ROW", f"add `binlog_format = ROW` under {cnf} in my.cnf")
    setting("binlog_row_image", "FULL", f"add `binlog_row_image = FULL` under {cnf} in my.cnf")
    if "binlog_row_metadata" in variables:
        setting(
            "binlog_row_metadata",
            "FULL",
            f"add `binlog_row_metadata = FULL` under {cnf} in my.cnf (without it column names "
            "are unknown after an ALTER TABLE)",
        )
    else:
        checks.append(
            Check(
                "binlog_row_metadata",
                False,
                f"the server ({info.version}) has no binlog_row_metadata",
                "use MySQL 8.0.14+ or MariaDB 10.5+",
            )
        )
    server_id = variables.get("server_id", "0")
    checks.append(
        Check(
            "server_id",
            server_id not in ("", "0"),
            f"server_id = {server_id}",
            f"add `server_id = 1` (any number unique among replicas) under {cnf} in my.cnf",
        )
    )
    # Settings whose events the binlog library cannot decode: it would drop them silently.
    for name, bad, fix in (
        ("binlog_transaction_compression", "ON", "set `binlog_transaction_compression = OFF`"),
        ("log_bin_compress", "ON", "set `log_bin_compress = OFF`"),
        ("binlog_row_value_options", "PARTIAL_JSON", "set `binlog_row_value_options = ''`"),
    ):
        value = variables.get(name)
        if value is not None:
            checks.append(
                Check(
                    name,
                    value.upper() != bad,
                    f"{value or 'empty'} (events written with {bad} cannot be decoded)",
                    f"{fix} under {cnf} in my.cnf",
                )
            )
    checks.append(_statement_tags(info, variables, cnf))
    grant = "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'cdc'@'%'"
    for privilege, names in (
        ("REPLICATION SLAVE", ("REPLICATION SLAVE",)),
        ("REPLICATION CLIENT", ("REPLICATION CLIENT", "BINLOG MONITOR")),
        ("SELECT", ("SELECT",)),
    ):
        has = any(_has(grants, name) for name in names)
        checks.append(Check(f"privilege {privilege}", has, "granted" if has else "missing", grant))
    writes = all(_has(grants, p, f"{database}.*") for p in ("INSERT", "UPDATE"))
    checks.append(
        Check(
            f"privilege to write `{database}`",
            writes,
            "granted" if writes else "missing INSERT/UPDATE",
            f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON `{database}`.* "
            "TO 'cdc'@'%'",
        )
    )
    missing = REQUIRED - tables
    checks.append(
        Check(
            "event tables",
            not missing,
            f"`{database}`.event and cdc_checkpoint exist"
            if not missing
            else f"missing in `{database}`: {', '.join(sorted(missing))}",
            "run `cdc init --dsn ...`",
        )
    )
    return checks

"""Test helpers: run the real daemon, wait for events, replay the event table onto copies."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pymysql

from cdc._testing.mariadb import MariaDB

ROOT = Path(__file__).resolve().parent.parent


def cdc_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cdc", *args]


class Daemon(subprocess.Popen[str]):
    """A `cdc run` process whose log goes to a file (a pipe could fill and block it)."""

    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


STARTED: list[Daemon] = []  # every daemon a test started; conftest kills and removes them


def start_daemon(
    server: MariaDB,
    *args: str,
    db: str = "cdc",
    dsn: str | None = None,
    http: int | str | None = None,
    env: dict[str, str] | None = None,
) -> Daemon:
    """`cdc run` as a real process, capturing into database `db` (or the `dsn` given),
    serving HTTP on 127.0.0.1:`http` when given, with `env` added to its environment
    (CDC_CONFIG...). Its log is a file that the conftest removes after the test."""
    url = dsn or f"mysql://root@127.0.0.1:{server.port}/{db}"
    env = dict(os.environ, CDC_DSN=url, **(env or {}))
    log_path = Path(tempfile.mkstemp(prefix="cdc-daemon-", suffix=".log")[1])
    address = http if isinstance(http, str) else f"127.0.0.1:{http}"  # a port, or host:port
    serving = ["--http", address] if http is not None else ["--no-http"]
    with open(log_path, "w") as log:
        proc = Daemon(
            cdc_command("run", *serving, *args),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
    proc.log_path = log_path
    STARTED.append(proc)
    return proc


def stop_daemon(proc: Daemon, sig: int = signal.SIGTERM) -> tuple[int, str]:
    """Stops the daemon (SIGTERM by default); returns its exit code and log."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"daemon did not stop within 30 s:\n{proc.log()[-3000:]}") from None
    return proc.returncode, proc.log()


def fresh_schema(server: MariaDB, name: str, *ddl: str) -> pymysql.Connection[Any]:
    """Drops `name` and `name_cdc`, creates `name` with `ddl` ({db} is the schema)."""
    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"DROP DATABASE IF EXISTS `{name}_cdc`")
        cur.execute(f"CREATE DATABASE `{name}`")
        for statement in ddl:
            cur.execute(statement.format(db=f"`{name}`"))
    return conn


def schema_snapshot(conn: pymysql.Connection[Any], schema: str) -> dict[str, Any]:
    """Everything a DBA would compare: each table's definition and each trigger's."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (schema,)
        )
        tables = sorted(row[0] for row in cur.fetchall())
        snapshot: dict[str, Any] = {}
        for table in tables:
            cur.execute(f"SHOW CREATE TABLE `{schema}`.`{table}`")
            # Rows written meanwhile move the AUTO_INCREMENT counter: not the schema.
            snapshot[f"table {table}"] = re.sub(r" AUTO_INCREMENT=\d+", "", cur.fetchone()[1])
        cur.execute(
            "SELECT TRIGGER_NAME, EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER,"
            " ACTION_STATEMENT, SQL_MODE, DEFINER FROM information_schema.TRIGGERS"
            " WHERE TRIGGER_SCHEMA = %s ORDER BY TRIGGER_NAME",
            (schema,),
        )
        snapshot["triggers"] = list(cur.fetchall())
    return snapshot


def event_count(conn: pymysql.Connection[Any], db: str = "cdc") -> int:
    with conn.cursor() as cur:
        try:
            cur.execute(f"SELECT COUNT(*) FROM `{db}`.event")
        except pymysql.err.ProgrammingError:
            return 0
        return int(cur.fetchone()[0])


def wait_for_events(
    conn: pymysql.Connection[Any],
    count: int,
    timeout: float = 120,
    proc: Daemon | None = None,
    db: str = "cdc",
) -> int:
    """Waits until the event table holds at least `count` rows; returns the count."""
    deadline = time.monotonic() + timeout
    while True:
        have = event_count(conn, db)
        if have >= count:
            return have
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"daemon exited {proc.returncode}:\n{proc.log()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"only {have} of {count} events after {timeout} s")
        time.sleep(0.2)


def wait_ready(conn: pymysql.Connection[Any], proc: Daemon, db: str = "cdc") -> None:
    """Waits until this daemon process says `capture_start`: its start position is stored
    (a `--from-now` baseline included), so every change committed from now on is captured.
    (A checkpoint row alone says nothing after a restart: an earlier run wrote it.)"""
    deadline = time.monotonic() + 120
    while '"capture_start"' not in proc.log():
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited {proc.returncode}:\n{proc.log()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"daemon did not start capturing in 120 s:\n{proc.log()[-3000:]}")
        time.sleep(0.1)


def events(conn: pymysql.Connection[Any], db: str = "cdc") -> list[dict[str, Any]]:
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(f"SELECT * FROM `{db}`.event ORDER BY id")
        rows = list(cur.fetchall())
    for row in rows:
        row["data"] = json.loads(row["data"])
    return rows


# -- replay: the event table, applied in id order to empty copies, must rebuild the tables --


def q(name: str) -> str:
    """A quoted identifier (a name may hold backticks)."""
    return "`" + name.replace("`", "``") + "`"


def _columns(conn: pymysql.Connection[Any], schema: str, table: str) -> dict[str, str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS"
            " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (schema, table),
        )
        return {name: kind.lower() for name, kind in cur.fetchall()}


def _sql_value(kind: str, value: Any) -> tuple[str, Any]:
    """A placeholder expression and its parameter, for a rendered value of a column type."""
    if value is None:
        return "%s", None
    if kind in ("binary", "varbinary", "blob", "tinyblob", "mediumblob", "longblob"):
        return "UNHEX(%s)", value
    if kind in ("json", "longtext") and not isinstance(value, str):
        return "%s", json.dumps(value)
    if kind == "set":
        return "%s", ",".join(value)
    if kind in ("timestamp", "datetime") and isinstance(value, str):
        return "%s", value.rstrip("Z").replace("T", " ")
    if kind == "bit":
        return "%s", int(value)
    return "%s", value


def replay(conn: pymysql.Connection[Any], tables: list[tuple[str, str]], db: str = "cdc") -> None:
    """Copies each `schema.table` to `schema.table__replay` (empty) and applies the events.

    The events are streamed in id order (a server-side cursor on a second connection);
    runs of CREATEs into one table go in multi-row INSERTs.
    """
    reader = pymysql.connect(
        host=conn.host, port=conn.port, user=conn.user, password=conn.password, charset="utf8mb4"
    )
    with conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute("SET sql_mode = ''")
        for schema, table in tables:
            cur.execute(f"DROP TABLE IF EXISTS {q(schema)}.{q(table + '__replay')}")
            cur.execute(
                f"CREATE TABLE {q(schema)}.{q(table + '__replay')} LIKE {q(schema)}.{q(table)}"
            )
        kinds = {t: _columns(conn, *t) for t in tables}
        keys = {t: _primary_key(conn, *t) for t in tables}
        batch: list[list[Any]] = []
        batch_sql = ""

        def flush() -> None:
            nonlocal batch, batch_sql
            if batch:
                cur.executemany(batch_sql, batch)
            batch, batch_sql = [], ""

        with reader.cursor(pymysql.cursors.SSCursor) as events_cur:
            events_cur.execute(
                f"SELECT type, schema_name, table_name, data FROM {q(db)}.event ORDER BY id"
            )
            for kind_of_event, schema, table, data_text in events_cur:
                target = (schema, table)
                if target not in kinds:
                    continue
                name = f"{q(schema)}.{q(table + '__replay')}"
                kind, key, data = kinds[target], keys[target], json.loads(data_text)
                if kind_of_event == "CASCADE":
                    flush()
                    apply_cascade(cur, target, data, kinds)
                    continue
                if kind_of_event == "CREATE":
                    row = data["after"]
                    parts = [_sql_value(kind[c], v) for c, v in row.items()]
                    sql = (
                        f"INSERT INTO {name} ({', '.join(f'{q(c)}' for c in row)})"
                        f" VALUES ({', '.join(p for p, _ in parts)})"
                    )
                    if sql != batch_sql or len(batch) >= 5000:
                        flush()
                        batch_sql = sql
                    batch.append([v for _, v in parts])
                    continue
                flush()
                before = data["before"]
                where, params = [], []
                for c in key or list(before):
                    p, v = _sql_value(kind[c], before[c])
                    if v is None:
                        where.append(f"{q(c)} IS NULL")
                    else:
                        where.append(f"{q(c)} <=> {p}")
                        params.append(v)
                if kind_of_event == "UPDATE":
                    after = data["after"]
                    sets = [_sql_value(kind[c], v) for c, v in after.items()]
                    assignments = ", ".join(
                        f"{q(c)} = {p}" for c, (p, _) in zip(after, sets, strict=True)
                    )
                    cur.execute(
                        f"UPDATE {name} SET {assignments} WHERE {' AND '.join(where)} LIMIT 1",
                        [v for _, v in sets] + params,
                    )
                else:
                    cur.execute(f"DELETE FROM {name} WHERE {' AND '.join(where)} LIMIT 1", params)
                    assert cur.rowcount == 1, (
                        f"replay of a DELETE of {table} matched no row: {data}"
                    )
        flush()
    reader.close()


def _predicate(
    where: dict[str, Any], kinds: dict[tuple[str, str], dict[str, str]], table: tuple[str, str]
) -> tuple[str, list[Any]]:
    """A CASCADE event's `where` as SQL on the replay copies (`{"in": ...}` as a subquery)."""
    parts, params = [], []
    for column, value in where.items():
        if isinstance(value, dict) and "in" in value:
            ref = value["in"]
            inner, inner_params = _predicate(ref["where"], kinds, (ref["schema"], ref["table"]))
            parts.append(
                f"{q(column)} IN (SELECT {q(ref['column'])} FROM"
                f" {q(ref['schema'])}.{q(ref['table'] + '__replay')} WHERE {inner})"
            )
            params += inner_params
        else:
            placeholder, param = _sql_value(kinds[table][column], value)
            parts.append(f"{q(column)} <=> {placeholder}")
            params.append(param)
    return " AND ".join(parts), params


def apply_cascade(
    cur: Any,
    target: tuple[str, str],
    data: dict[str, Any],
    kinds: dict[tuple[str, str], dict[str, str]],
) -> None:
    """What a foreign key's cascade did, applied to the replay copy of `target`."""
    schema, table = target
    name = f"{q(schema)}.{q(table + '__replay')}"
    where, params = _predicate(data["where"], kinds, (schema, table))
    if data["action"] == "DELETE":
        cur.execute(f"DELETE FROM {name} WHERE {where}", params)
        return
    sets = [_sql_value(kinds[schema, table][c], v) for c, v in data["set"].items()]
    assignments = ", ".join(f"{q(c)} = {p}" for c, (p, _) in zip(data["set"], sets, strict=True))
    cur.execute(f"UPDATE {name} SET {assignments} WHERE {where}", [v for _, v in sets] + params)


def _primary_key(conn: pymysql.Connection[Any], schema: str, table: str) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s"
            " AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        return [row[0] for row in cur.fetchall()]


def assert_replay_matches(
    conn: pymysql.Connection[Any], tables: list[tuple[str, str]], db: str = "cdc"
) -> None:
    replay(conn, tables, db)
    with conn.cursor() as cur:
        for schema, table in tables:
            cols = ", ".join(f"{q(c)}" for c in _columns(conn, schema, table))
            order = ", ".join(f"{q(c)}" for c in _columns(conn, schema, table))
            cur.execute(f"SELECT {cols} FROM {q(schema)}.{q(table)} ORDER BY {order}")
            original = cur.fetchall()
            cur.execute(f"SELECT {cols} FROM {q(schema)}.{q(table + '__replay')} ORDER BY {order}")
            copy = cur.fetchall()
            assert len(original) == len(copy), (
                f"{schema}.{table}: {len(original)} rows, replay {len(copy)}"
            )
            for a, b in zip(original, copy, strict=True):
                assert a == b, f"{schema}.{table}: replay differs: original {a!r}, replay {b!r}"

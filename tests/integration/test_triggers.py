"""`cdc triggers install | remove | status` on a real server: next to the application's own
triggers, out of date after an ALTER TABLE, safe on a live table, redaction before the
staging table, and a schema left exactly as it was."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pymysql

from cdc._testing.mariadb import MariaDB
from cdc.capture.triggers import pattern
from cdc.capture.triggers.mover import TriggerSource
from cdc.daemon import redaction_plan
from cdc.models import ChangeRecord, Changes
from cdc.sections import parse_redact
from cdc.settings import Dsn, Settings
from tests.support import cdc_command, fresh_schema, schema_snapshot

APP_DDL = (
    "CREATE TABLE {db}.patient (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(50),"
    " phone VARCHAR(20), note TEXT, user_id INT)",
    "CREATE TABLE {db}.visit (patient_id INT, day DATE, ward VARCHAR(10),"
    " PRIMARY KEY (patient_id, day),"
    " FOREIGN KEY (patient_id) REFERENCES {db}.patient (id) ON DELETE CASCADE)",
    "CREATE TABLE {db}.log (line VARCHAR(100))",  # no key
    "CREATE TABLE {db}.audit (n INT)",
    "INSERT INTO {db}.audit VALUES (0)",
    # The application's own triggers, which must keep working, in their order.
    "CREATE TRIGGER {db}.app_count AFTER INSERT ON {db}.patient FOR EACH ROW"
    " UPDATE {db}.audit SET n = n + 1",
    "CREATE TRIGGER {db}.app_upper BEFORE INSERT ON {db}.patient FOR EACH ROW"
    " SET NEW.name = UPPER(NEW.name)",
    "CREATE TRIGGER {db}.app_touch AFTER UPDATE ON {db}.patient FOR EACH ROW"
    " UPDATE {db}.audit SET n = n + 10",
)


def _run(server: MariaDB, db: str, *args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        cdc_command("triggers", *args),
        env=dict(os.environ, CDC_DSN=f"mysql://root@127.0.0.1:{server.port}/{db}", **(env or {})),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _staged(conn: pymysql.Connection[Any], db: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(f"SELECT type, table_name, user_id, data FROM `{db}`.cdc_staging ORDER BY id")
        return list(cur.fetchall())


def _move(server: MariaDB, db: str, settings: Settings | None = None) -> list[ChangeRecord]:
    """The events of the staged rows (read, not deleted)."""
    dsn = Dsn.parse(f"mysql://root@127.0.0.1:{server.port}/{db}")
    settings = settings or Settings(dsn=dsn)
    source = TriggerSource(dsn, settings.capture, redaction_plan(settings), blocking=False)
    items = source.read(source.current(), threading.Event())
    return [r for item in items if isinstance(item, Changes) for r in item.records]


def test_installed_next_to_the_applications_triggers_and_removed_exactly(
    mariadb: MariaDB,
) -> None:
    conn = fresh_schema(mariadb, "trg_app", *APP_DDL)
    before = schema_snapshot(conn, "trg_app")

    done = _run(mariadb, "trg_app_cdc", "install", "--include", "trg_app.*")
    assert done.returncode == 0, done.stderr
    assert "installed   trg_app.patient" in done.stdout
    status = _run(mariadb, "trg_app_cdc", "status", "--include", "trg_app.*")
    assert status.returncode == 0, status.stdout + status.stderr
    assert [line.split()[0] for line in status.stdout.splitlines()[:-1]] == ["ok"] * 5
    assert "5 of 5 table(s) ok" in status.stdout

    with conn.cursor() as cur:
        # Ours precede the application's triggers of the same event (as the binlog logs
        # the row before what the application's trigger changes).
        cur.execute(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA ="
            " 'trg_app' AND EVENT_OBJECT_TABLE = 'patient' AND ACTION_TIMING = 'AFTER'"
            " AND EVENT_MANIPULATION = 'INSERT' ORDER BY ACTION_ORDER"
        )
        assert [row[0] for row in cur.fetchall()] == ["cdc_patient_ai", "app_count"]
        cur.execute("INSERT INTO trg_app.patient (name, phone) VALUES ('ann', '555')")
        cur.execute("UPDATE trg_app.patient SET phone = '556'")
        cur.execute("INSERT INTO trg_app.visit VALUES (1, '2026-01-02', 'A')")
        cur.execute("INSERT INTO trg_app.log VALUES ('x'), ('x')")
        cur.execute("SELECT n FROM trg_app.audit")
        assert cur.fetchone()[0] == 11  # the application's triggers still ran
    records = _move(mariadb, "trg_app_cdc")
    assert [(r.type, r.table, r.row_id) for r in records] == [
        ("CREATE", "patient", 1),
        ("UPDATE", "audit", None),
        ("UPDATE", "patient", 1),
        ("UPDATE", "audit", None),
        ("CREATE", "visit", [1, "2026-01-02"]),
        ("CREATE", "log", None),
        ("CREATE", "log", None),
    ]
    assert records[0].data["after"]["name"] == "ANN"  # after the BEFORE trigger's change

    # After an ALTER TABLE the table is out of date (its new column is not staged yet).
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE trg_app.patient ADD COLUMN ward VARCHAR(10)")
    status = _run(mariadb, "trg_app_cdc", "status", "--include", "trg_app.*")
    assert status.returncode == 1
    assert "out of date trg_app.patient  (columns added: ward)" in status.stdout
    assert _run(mariadb, "trg_app_cdc", "install", "--include", "trg_app.*").returncode == 0
    assert _run(mariadb, "trg_app_cdc", "status", "--include", "trg_app.*").returncode == 0

    # Changes not moved yet: remove refuses, and says how to go on.
    refused = _run(mariadb, "trg_app_cdc", "remove")
    assert refused.returncode != 0
    waiting = "trg_app.audit (2), trg_app.log (2), trg_app.patient (2), trg_app.visit (1)"
    assert f"not moved yet: {waiting}" in refused.stderr
    assert "--force" in refused.stderr
    removed = _run(mariadb, "trg_app_cdc", "remove", "--force")
    assert removed.returncode == 0, removed.stderr
    assert "trigger mode's tables dropped" in removed.stdout
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE trg_app.patient DROP COLUMN ward")  # the DBA's own change
        cur.execute("SHOW TABLES FROM trg_app_cdc LIKE 'cdc\\_%%'")
        assert {row[0] for row in cur.fetchall()} == {
            "cdc_checkpoint",
            "cdc_outbox",
            "cdc_lease",
            "cdc_registry",
        }
    assert schema_snapshot(conn, "trg_app") == before
    conn.close()


def test_a_dry_run_prints_the_sql_and_changes_nothing(mariadb: MariaDB) -> None:
    conn = fresh_schema(mariadb, "trg_dry", *APP_DDL)
    before = schema_snapshot(conn, "trg_dry")
    done = _run(mariadb, "trg_dry_cdc", "install", "--include", "trg_dry.patient", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert (
        "CREATE OR REPLACE TRIGGER `trg_dry`.`cdc_patient_au` AFTER UPDATE ON `trg_dry`.`patient`"
        " FOR EACH ROW PRECEDES `app_touch`"
    ) in done.stdout
    assert "INSERT INTO `trg_dry_cdc`.`cdc_staging`" in done.stdout
    assert "nothing was changed (--dry-run)" in done.stdout
    assert schema_snapshot(conn, "trg_dry") == before
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE 'trg\\_dry\\_cdc'")
        assert cur.fetchall() == ()
    conn.close()


def test_redacted_columns_never_reach_the_staging_table(mariadb: MariaDB, tmp_path: Path) -> None:
    conn = fresh_schema(mariadb, "trg_red", *APP_DDL)
    key = tmp_path / "hash.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    config = tmp_path / "cdc.toml"
    config.write_text(
        '[[redact]]\ncolumns = ["trg_red.patient.phone"]\naction = "drop"\n'
        '[[redact]]\ncolumns = ["trg_red.patient.note"]\naction = "mask"\n'
        '[[redact]]\ncolumns = ["trg_red.patient.name", "trg_red.patient.user_id"]\n'
        f'action = "hash"\nhash_key_file = "{key}"\n'
    )
    env = {"CDC_CONFIG": str(config)}
    done = _run(mariadb, "trg_red_cdc", "install", "--include", "trg_red.patient", env=env)
    assert done.returncode == 0, done.stderr
    assert key.read_bytes().hex() not in done.stdout
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO trg_red.patient (name, phone, note, user_id)"
            "VALUES ('secretname', 'secretphone', 'secretnote', 987654321)"
        )
        cur.execute("UPDATE trg_red.patient SET note = 'secretnote2'")
        cur.execute("UPDATE trg_red.patient SET phone = 'secretphone2'")
        cur.execute("SET @cdc_user_id = 'nurse-secret'")
        cur.execute("UPDATE trg_red.patient SET name = 'other'")
        cur.execute("SET @cdc_user_id = NULL")
        cur.execute("SELECT ACTION_STATEMENT FROM information_schema.TRIGGERS")
        statements = " ".join(row[0] for row in cur.fetchall())
    assert key.read_bytes().hex().upper() not in statements.upper()
    staged = orjson.dumps(_staged(conn, "trg_red_cdc"), default=str).decode()
    for clear in ("secret", "987654321"):
        for form in (clear, clear.encode().hex().upper()):
            assert form not in staged, f"{clear} reached the staging table as {form}"
    dsn = Dsn.parse(f"mysql://root@127.0.0.1:{mariadb.port}/trg_red_cdc")
    rules = parse_redact(
        [
            {"columns": ["trg_red.patient.phone"], "action": "drop"},
            {"columns": ["trg_red.patient.note"], "action": "mask"},
            {
                "columns": ["trg_red.patient.name", "trg_red.patient.user_id"],
                "action": "hash",
                "hash_key_file": str(key),
            },
        ]
    )
    records = _move(mariadb, "trg_red_cdc", Settings(dsn=dsn, redact=rules))
    created, noted, phoned, renamed = records
    assert set(created.data["after"]) == {"id", "name", "note", "user_id"}
    assert created.data["after"]["note"] == "***"
    assert (
        len(created.data["after"]["name"]) == 64
        and created.user_id == created.data["after"]["user_id"]
    )
    assert noted.data["changed"] == ["note"]  # the mask hides the value, not the change
    assert phoned.data["changed"] == []  # a dropped column changed: an event, not a name
    assert renamed.data["changed"] == ["name"]
    assert renamed.user_id not in (None, "nurse-secret") and len(renamed.user_id) == 64
    assert renamed.user_id != created.user_id
    staged_text = orjson.dumps(records, default=lambda r: r.data).decode()
    assert "secret" not in staged_text

    # Another rule in the file: the tables are out of date until installed again.
    config.write_text(config.read_text().replace('"drop"', '"mask"'))
    status = _run(mariadb, "trg_red_cdc", "status", "--include", "trg_red.patient", env=env)
    assert status.returncode == 1
    assert "out of date trg_red.patient  (redaction changed: phone)" in status.stdout
    conn.close()


def test_installing_again_on_a_live_table_loses_no_change(mariadb: MariaDB) -> None:
    """A writer inserts without a pause while the table is altered and installed again
    and again: every row it wrote is staged exactly once."""
    conn = fresh_schema(mariadb, "trg_live", *APP_DDL)
    assert _run(mariadb, "trg_live_cdc", "install", "--include", "trg_live.*").returncode == 0
    stop = threading.Event()
    written: list[int] = []
    failures: list[BaseException] = []

    def write() -> None:
        writer = mariadb.connect()
        try:
            with writer.cursor() as cur:
                while not stop.is_set():
                    cur.execute("INSERT INTO trg_live.log (line) VALUES ('row')")
                    written.append(1)
        except BaseException as error:
            failures.append(error)
        finally:
            writer.close()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        with conn.cursor() as cur:
            for n in range(4):
                deadline = time.monotonic() + 60
                while len(written) < (n + 1) * 20:
                    assert not failures, failures
                    assert time.monotonic() < deadline, "the writer made no progress"
                    time.sleep(0.01)
                cur.execute(f"ALTER TABLE trg_live.log ADD COLUMN c{n} INT")
                done = _run(mariadb, "trg_live_cdc", "install", "--include", "trg_live.log")
                assert done.returncode == 0, done.stderr
                assert "installed   trg_live.log  (was out of date)" in done.stdout
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not failures, failures
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM trg_live.log")
        rows = cur.fetchone()[0]
        cur.execute("SELECT COUNT(*), COUNT(DISTINCT version) FROM trg_live_cdc.cdc_staging")
        staged, versions = cur.fetchone()
    assert rows == len(written) == staged
    assert versions == 5
    last = _staged(conn, "trg_live_cdc")[-1]
    assert set(orjson.loads(last[3])["after"]) == {"line", "c0", "c1", "c2", "c3"}
    conn.close()


def test_a_missing_privilege_names_the_grant(mariadb: MariaDB) -> None:
    conn = fresh_schema(mariadb, "trg_priv", *APP_DDL)
    with conn.cursor() as cur:
        cur.execute("DROP USER IF EXISTS 'trg_reader'@'127.0.0.1'")
        cur.execute("CREATE USER 'trg_reader'@'127.0.0.1'")
        cur.execute("GRANT SELECT ON *.* TO 'trg_reader'@'127.0.0.1'")
        cur.execute("GRANT ALL ON trg_priv_cdc.* TO 'trg_reader'@'127.0.0.1'")
    dsn = f"mysql://trg_reader@127.0.0.1:{mariadb.port}/trg_priv_cdc"

    def install() -> Any:
        return subprocess.run(
            cdc_command("triggers", "install", "--include", "trg_priv.*"),
            env=dict(os.environ, CDC_DSN=dsn),
            capture_output=True,
            text=True,
            timeout=120,
        )

    # With the binary log on, creating a trigger needs SUPER or the server's trust.
    done = install()
    assert done.returncode == 3, done.stdout + done.stderr
    assert "binary logging is on and the account has no SUPER privilege" in done.stderr
    assert "SET GLOBAL log_bin_trust_function_creators = 1" in done.stderr
    with conn.cursor() as cur:
        cur.execute("SET GLOBAL log_bin_trust_function_creators = 1")
    try:
        done = install()
    finally:
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL log_bin_trust_function_creators = 0")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "GRANT TRIGGER, SELECT ON `trg_priv`.*" in done.stderr
    assert "Traceback" not in done.stderr
    conn.close()


def _creates(text: str, schema: str) -> list[str]:
    """The CREATE TRIGGER statements of `schema`.patient in `text`, the version elided."""
    uncommented = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    statements = [s.strip() for s in uncommented.split(";")]
    head = f"CREATE OR REPLACE TRIGGER `{schema}`.`cdc_patient_"
    return [re.sub(r"'[0-9a-f]{16}'", "'<version>'", s) for s in statements if s.startswith(head)]


def test_install_writes_the_documented_pattern(mariadb: MariaDB) -> None:
    example = pattern.EXAMPLE_TABLE.rstrip(";").replace("hosp.patient", "{db}.patient")
    conn = fresh_schema(mariadb, "trg_pat", example)
    conn.close()
    done = _run(
        mariadb,
        "trg_pat_cdc",
        "install",
        "--include",
        "trg_pat.patient",
        "--user-column",
        "updated_by",
        "--dry-run",
    )
    assert done.returncode == 0, done.stderr
    documented = pattern.render().replace("`hosp`", "`trg_pat`").replace("'hosp'", "'trg_pat'")
    documented = documented.replace("`cdc`.`cdc_staging`", "`trg_pat_cdc`.`cdc_staging`")
    installed = _creates(done.stdout, "trg_pat")
    assert len(installed) == 3, done.stdout
    assert installed == _creates(documented, "trg_pat")

"""`cdc check` and `cdc run` refuse servers that cannot be captured, naming each fix."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from cdc._testing.mariadb import MariaDB
from tests.support import cdc_command


def check(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cdc_command("check", "--dsn", url), capture_output=True, text=True)


@pytest.fixture(scope="module")
def misconfigured() -> Iterator[MariaDB]:
    """Binlog on, but every setting capture needs is wrong."""
    server = MariaDB(
        extra=(
            "--binlog-format=STATEMENT",
            "--binlog-row-image=MINIMAL",
            "--binlog-row-metadata=MINIMAL",
            "--log-bin-compress=ON",
        )
    ).start()
    yield server
    server.stop()


def test_check_passes_on_a_good_server(mariadb: MariaDB) -> None:
    url = f"mysql://root@127.0.0.1:{mariadb.port}/check_ok"
    assert subprocess.run(cdc_command("init", "--dsn", url), capture_output=True).returncode == 0
    done = check(url)
    assert done.returncode == 0, done.stdout
    assert "FAIL" not in done.stdout
    assert "capture can work" in done.stdout


def test_check_names_each_misconfiguration(misconfigured: MariaDB) -> None:
    done = check(f"mysql://root@127.0.0.1:{misconfigured.port}/cdc")
    assert done.returncode == 1
    out = done.stdout
    for line in (
        "[FAIL] binlog_format: STATEMENT (need ROW)",
        "fix: add `binlog_format = ROW` under [mariadb] in my.cnf",
        "[FAIL] binlog_row_image: MINIMAL (need FULL)",
        "fix: add `binlog_row_image = FULL`",
        "[FAIL] binlog_row_metadata: MINIMAL (need FULL)",
        "fix: add `binlog_row_metadata = FULL`",
        "[FAIL] log_bin_compress: ON",
        "fix: set `log_bin_compress = OFF`",
        "[FAIL] event tables: missing in `cdc`",
        "fix: run `cdc init --dsn ...`",
    ):
        assert line in out, f"{line!r} not in:\n{out}"


def test_run_refuses_a_misconfigured_server(misconfigured: MariaDB) -> None:
    done = subprocess.run(
        cdc_command(
            "run", "--no-http", "--dsn", f"mysql://root@127.0.0.1:{misconfigured.port}/cdc"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    assert "the server cannot be captured" in done.stderr
    assert "binlog_format" in done.stderr and "need ROW" in done.stderr


def test_check_binlog_off() -> None:
    with MariaDB(capture=False) as server:
        done = check(f"mysql://root@127.0.0.1:{server.port}/cdc")
    assert done.returncode == 1
    assert "[FAIL] log_bin: binary log off" in done.stdout
    assert "add `log_bin = binlog` under [mariadb] in my.cnf" in done.stdout


def test_check_missing_privileges(mariadb: MariaDB) -> None:
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute("DROP USER IF EXISTS 'weak'@'%'")
        cur.execute("CREATE USER 'weak'@'%' IDENTIFIED BY 'pw'")
        cur.execute("GRANT SELECT ON mysql.* TO 'weak'@'%'")
    conn.close()
    done = check(f"mysql://weak:pw@127.0.0.1:{mariadb.port}/cdc")
    assert done.returncode == 1
    for privilege in ("REPLICATION SLAVE", "REPLICATION CLIENT", "SELECT"):
        assert f"[FAIL] privilege {privilege}: missing" in done.stdout
    assert "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO" in done.stdout
    assert "[FAIL] privilege to write `cdc`" in done.stdout


def test_bad_dsn_is_a_usage_error() -> None:
    done = subprocess.run(
        cdc_command("check", "--dsn", "postgres://x@h/db"), capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "must start with mysql://" in done.stderr
    done = subprocess.run(
        cdc_command("check", "--dsn", "mysql://x@h"), capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "names no database" in done.stderr


def test_wrong_password_says_so(mariadb: MariaDB) -> None:
    done = check(f"mysql://root:nope@127.0.0.1:{mariadb.port}/cdc")
    assert done.returncode == 3
    assert "cannot connect" in done.stderr and "password" in done.stderr


def test_check_lists_the_tables_cascades_change(mariadb: MariaDB) -> None:
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS check_fk")
        cur.execute("CREATE DATABASE check_fk")
        cur.execute("CREATE TABLE check_fk.parent (id INT PRIMARY KEY)")
        cur.execute(
            "CREATE TABLE check_fk.child (id INT PRIMARY KEY, p INT,"
            " FOREIGN KEY (p) REFERENCES check_fk.parent (id) ON DELETE CASCADE)"
        )
    conn.close()
    done = check(f"mysql://root@127.0.0.1:{mariadb.port}/check_ok")
    assert "foreign-key cascades" in done.stdout
    assert "check_fk.child (from check_fk.parent ON DELETE CASCADE)" in done.stdout

"""Settings: DSN parsing, TOML precedence, and the checks' verdicts (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cdc.admin.checks import _evaluate
from cdc.admin.status import bytes_behind
from cdc.cli import main
from cdc.errors import ConfigError
from cdc.mysql import ServerInfo
from cdc.settings import Dsn, parse_host_port


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://u:p@h:3307/cdc", ("h", 3307, "u", "p", "cdc")),
        ("mysql://u@h/cdc", ("h", 3306, "u", "", "cdc")),
        ("mariadb://u:p%40ss%2F@10.0.0.1:1/db", ("10.0.0.1", 1, "u", "p@ss/", "db")),
    ],
)
def test_dsn_parse(url: str, expected: tuple[object, ...]) -> None:
    dsn = Dsn.parse(url)
    assert (dsn.host, dsn.port, dsn.user, dsn.password, dsn.database) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "no server given"),
        ("postgres://u@h/db", "must start with mysql://"),
        ("mysql://u@h", "names no database"),
        ("mysql://u@h:99999/db", "bad port"),
    ],
)
def test_dsn_errors_name_the_fix(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Dsn.parse(url)
    assert message in str(raised.value)
    assert raised.value.fix


def test_password_never_shown() -> None:
    dsn = Dsn.parse("mysql://u:secret@h/db")
    assert "secret" not in repr(dsn) and "secret" not in str(dsn)


def test_host_port() -> None:
    assert parse_host_port("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_host_port("[::1]:8080") == ("::1", 8080)
    with pytest.raises(ConfigError):
        parse_host_port("8080x")


def test_flag_beats_environment_beats_file(tmp_path: Path) -> None:
    config = tmp_path / "cdc.toml"
    config.write_text('dsn = "mysql://file@h/fromfile"\n')
    runner = CliRunner()
    # Each run fails to connect (port 1), and the error names the DSN that won.
    result = runner.invoke(
        main, ["--config", str(config), "check", "--dsn", "mysql://flag@127.0.0.1:1/x"]
    )
    assert "127.0.0.1:1" in result.output
    result = runner.invoke(
        main, ["--config", str(config), "check"], env={"CDC_DSN": "mysql://env@127.0.0.1:2/x"}
    )
    assert "127.0.0.1:2" in result.output
    result = runner.invoke(main, ["--config", str(config), "check"], env={"CDC_DSN": None})
    assert "h:3306" in result.output


def test_unknown_config_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "cdc.toml"
    config.write_text('dns = "mysql://typo@h/db"\n')
    result = CliRunner().invoke(main, ["--config", str(config), "check"])
    assert result.exit_code == 2
    assert "unknown key(s) dns" in result.output


GOOD = {
    "log_bin": "ON",
    "binlog_format": "ROW",
    "binlog_row_image": "FULL",
    "binlog_row_metadata": "FULL",
    "server_id": "1",
}
ALL = ["GRANT ALL PRIVILEGES ON *.* TO `ROOT`@`LOCALHOST`"]


def verdicts(
    variables: dict[str, str], grants: list[str] = ALL, mariadb: bool = False
) -> dict[str, bool]:
    info = ServerInfo("8.0.36", mariadb)
    checks = _evaluate(info, variables, grants, {"event", "cdc_checkpoint"}, "cdc")
    return {c.name: c.ok for c in checks}


def test_mysql_compression_and_partial_json_are_refused() -> None:
    bad = dict(GOOD, binlog_transaction_compression="ON", binlog_row_value_options="PARTIAL_JSON")
    result = verdicts(bad)
    assert result["binlog_transaction_compression"] is False
    assert result["binlog_row_value_options"] is False
    assert all(v for k, v in verdicts(dict(GOOD, binlog_transaction_compression="OFF")).items())


def test_old_server_without_row_metadata() -> None:
    variables = dict(GOOD)
    del variables["binlog_row_metadata"]
    assert verdicts(variables)["binlog_row_metadata"] is False


def test_least_privilege_grants_pass() -> None:
    grants = [
        "GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `CDC`@`%`",
        "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX ON `CDC`.* TO `CDC`@`%`",
    ]
    assert all(verdicts(GOOD, grants, mariadb=True).values())
    mysql = [
        "GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `CDC`@`%`",
        "GRANT INSERT, UPDATE ON `CDC`.* TO `CDC`@`%`",
    ]
    assert all(verdicts(GOOD, mysql).values())


def test_bytes_behind_across_files() -> None:
    logs = [("b.000001", 1000), ("b.000002", 500), ("b.000003", 300)]
    assert bytes_behind(logs, "b.000003", 100, "b.000003", 300) == 200
    assert bytes_behind(logs, "b.000001", 900, "b.000003", 300) == 100 + 500 + 300
    assert bytes_behind(logs, "b.000000", 4, "b.000003", 300) is None


def test_server_id_zero_is_refused() -> None:
    """MariaDB forces server_id >= 1; MySQL accepts 0 and then refuses every replica."""
    assert verdicts(dict(GOOD, server_id="0"))["server_id"] is False

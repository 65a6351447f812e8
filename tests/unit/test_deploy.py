"""The deployment files: docker-compose.yml is valid and asks MySQL for exactly what
`cdc check` requires (and what the tests' server runs with), the systemd units pass
`systemd-analyze verify`, the Dockerfile and the supervisord example hold what they must."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from cdc._testing import mariadb
from cdc.admin.checks import REQUIRED, _evaluate
from cdc.mysql import ServerInfo

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _flags(command: list[str]) -> dict[str, str]:
    """`--binlog-format=ROW` -> {"binlog_format": "ROW"}, as SHOW VARIABLES names them."""
    out = {}
    for flag in command:
        name, _, value = flag.removeprefix("--").partition("=")
        out[name.replace("-", "_")] = value
    return out


def test_compose_is_valid() -> None:
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is missing: run scripts/install.sh --test (Debian's package)"
    result = subprocess.run(
        [tool, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_compose_services() -> None:
    services = _compose()["services"]
    assert services["mysql"]["image"] == "mysql:8.4"
    assert {"mysql", "redis", "cdc-init", "cdc", "serve-1", "serve-2"} <= set(services)
    assert services["cdc-init"]["command"] == ["init"]
    run = services["cdc"]["command"]
    assert run[0] == "run" and "redis://redis:6379/0" in run
    for name in ("serve-1", "serve-2"):
        serve = services[name]["command"]
        assert serve[0] == "serve" and "--bus" in serve and "--http" in serve
    for name in ("mysql", "redis", "cdc", "serve-1", "serve-2"):
        test = " ".join(services[name]["healthcheck"]["test"])
        assert name in ("mysql", "redis") or "/health" in test, name
    assert services["cdc"]["environment"]["CDC_DSN_FILE"].startswith("/run/secrets/")


def test_compose_server_settings_are_what_cdc_check_requires() -> None:
    """The MySQL flags and the init script's grants pass every check of `cdc check`,
    warnings included, and GTIDs are on."""
    variables = _flags(_compose()["services"]["mysql"]["command"])
    assert variables["gtid_mode"] == "ON" and variables["enforce_gtid_consistency"] == "ON"
    variables["log_bin"] = "ON" if variables.pop("log_bin", None) else "OFF"
    grants = [
        " ".join(statement.split()).upper().replace("'", "`")
        for statement in _sql_statements(DEPLOY / "mysql-init.sql")
        if statement.upper().startswith("GRANT")
    ]
    checks = _evaluate(ServerInfo("8.4.3", False), variables, grants, set(REQUIRED), "cdc")
    bad = [c.line() for c in checks if not c.ok or c.warning]
    assert not bad, bad


def test_compose_binlog_settings_match_the_test_server() -> None:
    """The tests' throwaway server runs with the same binlog options as the compose MySQL."""
    compose = _flags(_compose()["services"]["mysql"]["command"])
    tested = _flags(list(mariadb.CAPTURE_OPTIONS))
    assert tested and all(compose.get(name) == value for name, value in tested.items()), tested


def _sql_statements(path: Path) -> list[str]:
    body = "\n".join(
        line for line in path.read_text().splitlines() if not line.lstrip().startswith("--")
    )
    return [s.strip() for s in body.split(";") if s.strip()]


def test_init_script_creates_the_user_from_its_secret() -> None:
    text = (DEPLOY / "mysql-init.sh").read_text()
    assert "/run/secrets/cdc_db_password" in text and "CREATE USER IF NOT EXISTS 'cdc'@'%'" in text
    assert not (DEPLOY / "mysql-init.sh").stat().st_mode & 0o111, "sourced, so not executable"
    assert "IDENTIFIED BY" not in (DEPLOY / "mysql-init.sql").read_text()


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(_without_repeats((DEPLOY / name).read_text()))
    return parser


def _without_repeats(text: str) -> str:
    """configparser refuses repeated keys, which systemd allows: keep the first."""
    seen: set[tuple[str, str]] = set()
    section, lines = "", []
    for line in text.splitlines():
        if line.startswith("["):
            section = line
        key = line.partition("=")[0].strip()
        if "=" in line and not line.lstrip().startswith("#"):
            if (section, key) in seen:
                continue
            seen.add((section, key))
        lines.append(line)
    return "\n".join(lines)


def test_units_hold_the_required_keys() -> None:
    for name in ("cdc.service", "cdc-serve@.service"):
        service = _unit(name)["Service"]
        assert service["Type"] == "notify", name
        assert int(service["WatchdogSec"]) > 0 and service["Restart"] == "on-failure"
        assert int(service["LimitNOFILE"]) >= 65536
        assert service["User"] == "cdc" and service["LoadCredential"] == "dsn:/etc/cdc/dsn"
        assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
        assert "--dsn " not in service["ExecStart"], "the DSN never goes on the command line"
    assert "cdc run" in _unit("cdc.service")["Service"]["ExecStart"]
    serve = _unit("cdc-serve@.service")["Service"]["ExecStart"]
    assert re.search(r"cdc serve --http \S+:%i --workers ", serve)


def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing (Debian's systemd package)"
    cdc = Path(sys.executable).with_name("cdc")
    assert cdc.exists(), f"no cdc command beside {sys.executable}"
    units = []
    for name, as_name in (
        ("cdc.service", "cdc.service"),
        ("cdc-serve@.service", "cdc-serve@8081.service"),
    ):
        text = (DEPLOY / name).read_text().replace("/opt/cdc/.venv/bin/cdc", str(cdc))
        (tmp_path / as_name).write_text(text)
        units.append(str(tmp_path / as_name))
    result = subprocess.run([tool, "verify", *units], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_supervisord_example() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string((DEPLOY / "supervisord.conf").read_text())
    assert int(parser["supervisord"]["minfds"]) >= 65536
    for name, command in (("program:cdc", "cdc run"), ("program:cdc-serve", "cdc serve")):
        program = parser[name]
        assert command in program["command"] and "--dsn " not in program["command"]
        assert program["autorestart"] == "unexpected" and program["exitcodes"] == "0,2"
        assert program["stopsignal"] == "TERM" and "CDC_DSN_FILE" in program["environment"]


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert re.search(r"^USER cdc", text, re.M) and 'ENTRYPOINT ["cdc"]' in text
    assert "pip install ." in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"deploy/secrets", ".git", ".venv"} <= set(ignored)

"""The TOML sections that are not flags ([auth], [[redact]], [mysql]), the DSN's TLS
parameters, secret files and `--dsn-file`: each refusal names the key and the fix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

from cdc import cli
from cdc.errors import ConfigError
from cdc.policy.tokens import digest
from cdc.secret_files import read_secret
from cdc.sections import JwtAlgorithm, MysqlTls, TlsMode, parse_auth, parse_tls
from cdc.settings import Dsn, load_toml, parse_sections

DIGEST = digest("t")


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"tokens": [{"name": "a", "sha256": "12"}]}, r"auth.tokens\[0\].sha256"),
        ({"tokens": [{"sha256": DIGEST}]}, r"auth.tokens\[0\].name"),
        ({"tokens": [{"name": "a", "sha256": DIGEST, "tables": "x.*"}]}, "list of strings"),
        ({"tokens": [{"name": "a", "sha256": DIGEST, "types": ["create"]}]}, "not an event type"),
        ({"tokens": [{"name": "a", "sha256": DIGEST, "scopes": ["all"]}]}, "unknown scope"),
        ({"tokens": [{"name": "a", "sha256": DIGEST, "table": []}]}, "unknown key"),
        (
            {"tokens": [{"name": "a", "sha256": DIGEST}, {"name": "a", "sha256": digest("u")}]},
            "same name",
        ),
        (
            {"tokens": [{"name": "a", "sha256": DIGEST}, {"name": "b", "sha256": DIGEST}]},
            "same sha256",
        ),
        ({"jwt": {}}, "exactly one of hs256_secret_file and public_key_file"),
        ({"jwt": {"public_key_file": "/k"}}, "algorithm '' is not one of"),
        ({"jwt": {"hs256_secret_file": "/k", "algorithm": "RS256"}}, "does not go with"),
        ({"jwt": {"hs256_secret_file": "/k", "algorithm": "none"}}, "not one of"),
        ({"session_seconds": 0}, "session_seconds must be more than 0"),
        ({"cookie_secure": "yes"}, "cookie_secure must be true or false"),
        ({"cookies": True}, "unknown key"),
    ],
)
def test_bad_auth_sections_name_the_key(auth: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        parse_auth(auth)
    assert refused.value.fix


def test_a_good_auth_section() -> None:
    auth = parse_auth(
        {
            "cookie_secure": True,
            "tokens": [
                {"name": "ward-screen", "sha256": DIGEST, "tables": ["hosp.patient_visit"]},
                {"name": "none", "sha256": digest("u"), "tables": []},
            ],
            "jwt": {"public_key_file": "/etc/cdc/app.pem", "algorithm": "ES256", "audience": "cdc"},
        }
    )
    assert auth.enabled and auth.session_seconds == 8 * 3600 and auth.ticket_seconds == 30
    assert auth.tokens[1].tables == () and auth.tokens[0].types is None
    assert auth.jwt is not None and auth.jwt.algorithm is JwtAlgorithm.ES256
    assert auth.jwt.audience == "cdc" and auth.jwt.issuer is None
    assert not parse_auth({}).enabled


def test_the_file_holds_the_sections(tmp_path: Path) -> None:
    config = tmp_path / "cdc.toml"
    config.write_text(
        'dsn = "mysql://u@h/db"\n'
        "[mysql]\nssl_ca = '/etc/ca.pem'\n"
        "[auth]\n[[auth.tokens]]\n"
        f'name = "ward"\nsha256 = "{DIGEST}"\ntables = ["hosp.patient_visit"]\n'
        "[[redact]]\ncolumns = ['hosp.patient.phone']\naction = 'mask'\n"
    )
    loaded = load_toml(str(config))
    assert loaded.options == {"dsn": "mysql://u@h/db"}
    sections = parse_sections(loaded.sections)
    assert sections["mysql"] == MysqlTls(TlsMode.VERIFY_IDENTITY, ca="/etc/ca.pem")
    assert sections["auth"].tokens[0].name == "ward"
    assert sections["redact"][0].columns == ("hosp.patient.phone",)


def test_tls_in_the_dsn_wins_over_the_file() -> None:
    dsn = Dsn.parse("mysql://u:p@db/cdc?ssl_mode=VERIFY_CA&ssl_ca=%2Fetc%2Fca.pem")
    assert dsn.tls == MysqlTls(TlsMode.VERIFY_CA, ca="/etc/ca.pem")
    file_tls = MysqlTls(TlsMode.REQUIRED)
    assert dsn.with_tls(file_tls).tls == dsn.tls
    assert Dsn.parse("mysql://u@db/cdc").with_tls(file_tls).tls == file_tls
    assert Dsn.parse("mysql://u@db/cdc").tls is None
    for bad, message in (
        ("?sslmode=require", "unknown key"),
        ("?ssl_mode=prefer", "not required, verify_ca or verify_identity"),
        ("?ssl_cert=/c.pem", "ssl_cert and ssl_key go together"),
        ("?ssl_ca=a&ssl_ca=b", "twice"),
    ):
        with pytest.raises(ConfigError, match=message):
            Dsn.parse("mysql://u@db/cdc" + bad)
    with pytest.raises(ConfigError, match="unknown key"):
        parse_tls({"ca": "x"})


def test_a_secret_file_readable_by_others_is_used_with_a_warning(tmp_path: Path) -> None:
    secret = tmp_path / "jwt.secret"
    secret.write_bytes(b"the secret\n")
    secret.chmod(0o600)
    with structlog.testing.capture_logs() as logs:
        assert read_secret(str(secret), "the JWT key") == b"the secret"
    assert logs == []
    secret.chmod(0o644)
    with structlog.testing.capture_logs() as logs:
        assert read_secret(str(secret), "the JWT key") == b"the secret"
    (warning,) = logs
    assert warning["event"] == "secret_file_readable_by_others"
    assert warning["path"] == str(secret) and "the secret" not in str(warning)
    with pytest.raises(ConfigError, match="cannot read the JWT key"):
        read_secret(str(tmp_path / "missing"), "the JWT key")
    (tmp_path / "empty").write_bytes(b"\n")
    with pytest.raises(ConfigError, match="is empty"):
        read_secret(str(tmp_path / "empty"), "the JWT key")


def test_the_dsn_from_a_file_keeps_the_password_off_the_command_line(tmp_path: Path) -> None:
    dsn_file = tmp_path / "dsn"
    dsn_file.write_text("mysql://cdc:s3cret@127.0.0.1:1/x\n")
    os.chmod(dsn_file, 0o600)
    runner = CliRunner()
    result = runner.invoke(cli.main, ["status", "--dsn-file", str(dsn_file)], env={"CDC_DSN": None})
    assert "127.0.0.1:1" in result.output and "s3cret" not in result.output
    result = runner.invoke(
        cli.main,
        ["status"],
        env={"CDC_DSN_FILE": str(dsn_file), "CDC_DSN": "mysql://u@127.0.0.1:2/y"},
    )
    assert result.exit_code == 2 and "both --dsn and --dsn-file" in result.output
    result = runner.invoke(
        cli.main,
        ["status", "--dsn", "mysql://u@127.0.0.1:3/y"],
        env={"CDC_DSN_FILE": str(dsn_file)},
    )
    assert "127.0.0.1:3" in result.output  # the flag wins over the variable
    result = runner.invoke(cli.main, ["status"], env={"CDC_DSN": None, "CDC_DSN_FILE": None})
    assert result.exit_code == 2 and "--dsn-file" in result.output


def test_token_create_prints_the_token_once_and_the_block(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli.main,
        ["token", "create", "finance", "--tables", "hosp.invoice", "--tables", "hosp.cash"],
    )
    assert result.exit_code == 0, result.output
    token = result.output.splitlines()[0].removeprefix("token: ")
    config = tmp_path / "cdc.toml"
    config.write_text("[auth]\n" + result.output.split("\n\n", 1)[1])
    auth = parse_sections(load_toml(str(config)).sections)["auth"]
    (entry,) = auth.tokens
    assert entry.sha256 == digest(token) and entry.tables == ("hosp.invoice", "hosp.cash")
    assert token not in config.read_text()
    refused = CliRunner().invoke(cli.main, ["token", "create", "x", "--types", "NOT A TYPE"])
    assert refused.exit_code == 2 and "not an event type" in refused.output

"""The settings tree and the CLI agree: every option field is a flag, a CDC_* variable and
a TOML key with the same default, and nothing else is."""

from __future__ import annotations

import enum
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cdc import cli
from cdc.settings import (
    PARTS,
    Binary,
    CaptureSettings,
    Dsn,
    HttpSettings,
    Settings,
    default_of,
    option_name,
    options_of,
    toml_keys,
)


def run_params() -> dict[str, click.Parameter]:
    return {p.name: p for p in cli.run.params if p.name}


@pytest.mark.parametrize("part", PARTS, ids=lambda p: p.__name__)
def test_each_option_field_is_a_flag_with_its_default(part: type) -> None:
    params = run_params()
    for f in options_of(part):
        name = option_name(f)
        param = params[name]
        assert isinstance(param, click.Option)
        assert param.opts == [f"--{name.replace('_', '-')}"]
        assert param.envvar == f"CDC_{name.upper()}"
        default = default_of(f)
        expected = str(default.value) if isinstance(default, enum.Enum) else default
        assert param.default == expected, name
        assert param.help


def test_the_cli_has_no_option_the_settings_do_not_know() -> None:
    fields = {option_name(f) for part in PARTS for f in options_of(part)}
    assert set(run_params()) == fields | {"dsn", "dsn_file", "no_http"}
    assert toml_keys() == cli.run_option_names() | cli.serve_option_names()


def parsed(*args: str) -> Settings:
    context = cli.run.make_context("run", ["--dsn", "mysql://u@h/db", *args])
    return cli.settings_from(context.params)


def test_parsed_options_build_the_tree_with_the_defaults() -> None:
    assert parsed() == Settings(dsn=Dsn.parse("mysql://u@h/db"))
    no_http = parsed("--no-http", "--include", "a.* b.*", "--include", "c.d", "--binary", "base64")
    assert no_http.http is None
    assert no_http.capture.include == ("a.*", "b.*", "c.d")
    assert no_http.capture.binary is Binary.BASE64


def test_the_two_heartbeats_have_their_own_names() -> None:
    assert HttpSettings().heartbeat == 15.0  # the SSE comment frame
    assert CaptureSettings().binlog_heartbeat == 1.0  # the replica heartbeat
    assert "binlog_heartbeat" not in toml_keys()


def test_log_level_from_the_file(tmp_path: Path) -> None:
    config = tmp_path / "cdc.toml"
    config.write_text('log_level = "warning"\ndsn = "mysql://u@127.0.0.1:1/x"\n')
    seen: list[str] = []
    original = cli.logs.setup
    try:
        cli.logs.setup = lambda level="info", json=None: seen.append(level)  # type: ignore[assignment]
        CliRunner().invoke(cli.main, ["--config", str(config), "status"])
    finally:
        cli.logs.setup = original
    assert seen == ["warning"]


def test_no_secret_in_the_repr() -> None:
    settings = Settings(dsn=Dsn.parse("mysql://u:s3cret@h/db"))
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.dsn)

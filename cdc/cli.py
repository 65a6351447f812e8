"""The `cdc` command: parse flags, set up logging, call the library. Exit codes: 0 ok,
1 a check failed or capture stopped on an error, 2 usage, 3 could not start.

The options of `cdc run` are made from the settings tree (`cdc.settings`): a field with
an `option(...)` is a flag, a `CDC_*` variable and a TOML key of the same name.
"""

from __future__ import annotations

import datetime
import enum
import sys
import typing
from collections.abc import Callable
from typing import Any

import click

from cdc import logs
from cdc.errors import CdcError, ConfigError
from cdc.models import EVENT_TYPE
from cdc.secret_files import read_secret_text
from cdc.sections import AuthSettings
from cdc.settings import (
    PARTS,
    SECTIONS,
    SERVE_PARTS,
    BusSettings,
    CaptureMode,
    CaptureSettings,
    Dsn,
    HttpSettings,
    LogLevel,
    Option,
    ServeSettings,
    Settings,
    default_of,
    load_toml,
    option_name,
    options_of,
    parse_sections,
    toml_keys,
)

COMMANDS = ("init", "check", "run", "serve", "status", "prune", "demo", "tail", "token", "triggers")
TRIGGER_COMMANDS = ("install", "remove", "status")


def _load_config(ctx: click.Context, _param: click.Parameter, path: str | None) -> str | None:
    """Values of the TOML file become defaults, so flags and CDC_* variables win over them."""
    try:
        config = load_toml(path)
    except ConfigError as error:
        raise click.BadParameter(str(error)) from None
    data = config.options
    known = toml_keys()
    unknown = sorted(set(data) - known)
    if unknown:
        sections = ", ".join(f"[{name}]" for name in sorted(SECTIONS))
        raise click.BadParameter(
            f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            + (f"; sections: {sections}" if sections else "")
        )
    ctx.default_map = {**data, **{name: data for name in COMMANDS}}
    ctx.default_map["triggers"] = {**data, **{name: data for name in TRIGGER_COMMANDS}}
    ctx.meta[SECTIONS_KEY] = config.sections
    ctx.meta[CONFIG_KEY] = path
    return path


SECTIONS_KEY = "cdc.sections"
CONFIG_KEY = "cdc.config"


def file_sections() -> dict[str, Any]:
    """The TOML file's sections (`[auth]`, ...), for the command being run."""
    sections: dict[str, Any] = click.get_current_context().meta.get(SECTIONS_KEY, {})
    return sections


def _click_type(annotation: Any, spec: Option) -> tuple[Any, dict[str, Any]]:
    """The click type (and extra option arguments) of a settings field's annotation."""
    if annotation is bool:
        return None, {"is_flag": True}
    if typing.get_origin(annotation) is tuple:
        return None, {"multiple": True}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return click.Choice([str(member.value) for member in annotation]), {}
    if annotation is int:
        return click.IntRange(spec.minimum, spec.maximum), {}  # type: ignore[arg-type]
    if annotation is float:
        return click.FloatRange(spec.minimum, spec.maximum), {}
    return None, {}


def settings_options(part: type, only: tuple[str, ...] = ()) -> list[Callable[[Any], Any]]:
    """click options for the option fields of a settings class (those named `only`)."""
    hints = typing.get_type_hints(part)
    decorators = []
    for f in options_of(part):
        if only and f.name not in only:
            continue
        spec: Option = f.metadata["option"]
        name = option_name(f)
        kind, extra = _click_type(hints[f.name], spec)
        default = default_of(f)
        decorators.append(
            click.option(
                f"--{name.replace('_', '-')}",
                name,
                envvar=f"CDC_{name.upper()}",
                default=str(default.value) if isinstance(default, enum.Enum) else default,
                type=kind,
                show_default=not extra,
                help=spec.help,
                **extra,
            )
        )
    return decorators


def _patterns(values: tuple[str, ...]) -> tuple[str, ...]:
    # CDC_INCLUDE="a.* b.*" arrives as one value: split on whitespace and commas.
    return tuple(p for v in values for p in v.replace(",", " ").split())


def _part_from(part: type, options: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(part)
    values: dict[str, Any] = {}
    for f in options_of(part):
        value = options[option_name(f)]
        annotation = hints[f.name]
        if typing.get_origin(annotation) is tuple:
            value = _patterns(value)
        elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            value = annotation(value)
        values[f.name] = value
    return part(**values)


def settings_from(
    options: dict[str, Any], sections: dict[str, Any] | None = None, config: str | None = None
) -> Settings:
    """The settings tree from the options of `cdc run` and the file's parsed sections."""
    sections = sections or {}
    dsn = Dsn.parse(options["dsn"]) if options.get("dsn") else _dsn_from_file(options)
    return Settings(
        dsn=dsn.with_tls(sections.get("mysql")),
        capture=_part_from(CaptureSettings, options),
        http=None if options["no_http"] else _part_from(HttpSettings, options),
        auth=sections.get("auth", AuthSettings()),
        redact=sections.get("redact", ()),
        bus=_part_from(BusSettings, options),
        config_file=config,
    )


def serve_settings_from(
    options: dict[str, Any], sections: dict[str, Any] | None = None, config: str | None = None
) -> tuple[Settings, ServeSettings]:
    """The settings of `cdc serve` (its capture part unused) from its options."""
    sections = sections or {}
    dsn = Dsn.parse(options["dsn"]) if options.get("dsn") else _dsn_from_file(options)
    settings = Settings(
        dsn=dsn.with_tls(sections.get("mysql")),
        http=_part_from(HttpSettings, options),
        auth=sections.get("auth", AuthSettings()),
        bus=_part_from(BusSettings, options),
        config_file=config,
    )
    return settings, _part_from(ServeSettings, options)


def _dsn_from_file(options: dict[str, Any]) -> Dsn:
    path = options.get("dsn_file")
    if not path:
        raise ConfigError(
            "no server given",
            fix="pass --dsn mysql://user:pass@host:3306/cdc, or --dsn-file FILE holding it "
            "(CDC_DSN / CDC_DSN_FILE)",
        )
    return Dsn.parse(read_secret_text(path, "the DSN").strip())


def _choose_dsn(options: dict[str, Any]) -> dict[str, Any]:
    """--dsn and --dsn-file from the same place (both flags, both variables...) are
    refused; otherwise the one given with the higher precedence wins."""
    if not (options.get("dsn") and options.get("dsn_file")):
        return options
    ctx = click.get_current_context()
    dsn, dsn_file = (
        _PRECEDENCE.index(getattr(ctx.get_parameter_source(name), "name", "DEFAULT"))
        for name in ("dsn", "dsn_file")
    )
    if dsn == dsn_file:
        raise ConfigError("both --dsn and --dsn-file are given", fix="give one of them")
    return {**options, "dsn_file" if dsn < dsn_file else "dsn": None}


# Where a value came from, most explicit first (click's ParameterSource names).
_PRECEDENCE = ("PROMPT", "COMMANDLINE", "ENVIRONMENT", "DEFAULT_MAP", "DEFAULT")


def command_dsn(dsn: str | None, dsn_file: str | None) -> Dsn:
    """The DSN of a command (`init`, `check`, `status`), with the file's `[mysql]` TLS."""
    options = _choose_dsn({"dsn": dsn, "dsn_file": dsn_file})
    parsed = Dsn.parse(options["dsn"]) if options["dsn"] else _dsn_from_file(options)
    tls = parse_sections(file_sections()).get("mysql")
    return parsed.with_tls(tls)


def run_option_names() -> set[str]:
    """Every option of `cdc run` (for the test that the CLI and the settings agree)."""
    return {p.name for p in run.params if p.name} | {"log_level"}


def serve_option_names() -> set[str]:
    """Every option of `cdc serve` but its hidden worker flag."""
    return {p.name for p in serve.params if p.name and not getattr(p, "hidden", False)}


def dsn_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--dsn` and `--dsn-file` (one of them is needed)."""
    command = click.option(
        "--dsn-file",
        envvar="CDC_DSN_FILE",
        type=click.Path(dir_okay=False),
        help="A file holding the DSN (keeps the password off the command line; env CDC_DSN_FILE).",
    )(command)
    return click.option(
        "--dsn",
        envvar="CDC_DSN",
        help="The server, and the database holding the event table: "
        "mysql://user:pass@host:3306/cdc, TLS as ?ssl_mode=verify_identity&ssl_ca=FILE "
        "(env CDC_DSN). Or --dsn-file.",
    )(command)


def _fail(error: CdcError) -> None:
    click.echo(f"error: {error.problem}", err=True)
    if error.fix:
        click.echo(f"fix: {error.fix}", err=True)
    sys.exit(error.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    envvar="CDC_CONFIG",
    type=click.Path(dir_okay=False),
    callback=_load_config,
    is_eager=True,
    expose_value=False,
    help="A TOML file of option values (keys as the long options: dsn, include, http...); "
    "flags and CDC_* variables override it (env CDC_CONFIG).",
)
@click.option(
    "--log-level",
    envvar="CDC_LOG_LEVEL",
    default=str(LogLevel.INFO),
    type=click.Choice([str(level) for level in LogLevel]),
    show_default=True,
    help="Log verbosity (env CDC_LOG_LEVEL).",
)
def main(log_level: str) -> None:
    """Capture every committed row change of a MySQL/MariaDB server from its binlog into an
    `event` table, and stream it live.

    Start with `cdc check --dsn ...`, then `cdc run --dsn ...`.
    """
    logs.setup(log_level)


@main.command()
@dsn_option
def init(dsn: str | None, dsn_file: str | None) -> None:
    """Create the database named in the DSN and the event tables (safe to run again)."""
    from cdc.store.schema import init_schema

    try:
        parsed = command_dsn(dsn, dsn_file)
        init_schema(parsed)
    except CdcError as error:
        _fail(error)
    click.echo(f"event tables ready in `{parsed.database}` on {parsed.host}:{parsed.port}")


@main.command()
@dsn_option
@click.option(
    "--capture",
    "mode",
    envvar="CDC_CAPTURE",
    type=click.Choice([str(m) for m in CaptureMode]),
    default=str(CaptureMode.BINLOG),
    show_default=True,
    help="Check what this capture mode needs (env CDC_CAPTURE).",
)
def check(dsn: str | None, dsn_file: str | None, mode: str) -> None:
    """Check that the server can be captured: binlog settings (or, with --capture
    triggers, the triggers' privileges and tables), privileges, event tables.

    One line per check, with the exact my.cnf line or GRANT that fixes a failure.
    Exit 0 when capture can work, 1 otherwise.
    """
    from cdc.admin.checks import run_checks, run_trigger_checks

    try:
        parsed = command_dsn(dsn, dsn_file)
        checks = run_trigger_checks if mode == CaptureMode.TRIGGERS else run_checks
        info, results = checks(parsed)
    except CdcError as error:
        _fail(error)
    click.echo(f"server {info.version.removeprefix('5.5.5-')} at {parsed.host}:{parsed.port}")
    for result in results:
        click.echo(result.line())
    failed = sum(not r.ok for r in results)
    click.echo("capture can work" if not failed else f"{failed} check(s) failed")
    sys.exit(1 if failed else 0)


def _with_run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [option for part in PARTS for option in settings_options(part)]
    options.insert(
        len(options_of(CaptureSettings)) + 1,
        click.option(
            "--no-http", envvar="CDC_NO_HTTP", is_flag=True, help="Capture only; no HTTP API."
        ),
    )
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@dsn_option
@_with_run_options
def run(**options: Any) -> None:
    """Capture until SIGTERM or SIGINT (a second SIGINT forces the exit).

    Refuses to start, with the reason and the fix, when the server cannot be captured.
    """
    from cdc.daemon import Daemon

    try:
        ctx = click.get_current_context()
        settings = settings_from(
            _choose_dsn(options),
            parse_sections(file_sections()),
            ctx.find_root().meta.get(CONFIG_KEY),
        )
    except CdcError as error:
        _fail(error)
    sys.exit(Daemon(settings).run())


def _with_serve_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [option for part in SERVE_PARTS for option in settings_options(part)]
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@dsn_option
@_with_serve_options
@click.option("--serve-worker", "serve_worker", is_flag=True, hidden=True)
def serve(serve_worker: bool, **options: Any) -> None:
    """Serve the HTTP API only (no capture, no binlog connection): live events from the
    Redis stream of --bus (or, without it, by following the event table), history and
    resumes from the event table. Same [auth] and flags as `cdc run`; SIGHUP reloads auth.

    With --workers N, N processes share the port (SO_REUSEPORT) under a parent that
    restarts a dead one. Exit 3 when it cannot start (port in use, no event table).
    """
    from cdc.serving import Server, Supervisor

    try:
        ctx = click.get_current_context()
        settings, serve_settings = serve_settings_from(
            _choose_dsn(options),
            parse_sections(file_sections()),
            ctx.find_root().meta.get(CONFIG_KEY),
        )
        workers = 1 if serve_worker else serve_settings.workers
        assert settings.http is not None
        address = settings.http.address
        if workers > 1 and address[1] == 0:
            raise ConfigError(
                "--workers needs a fixed port (port 0 gives each worker another one)",
                fix="give --http host:PORT with a port number",
            )
    except CdcError as error:
        _fail(error)
    if workers > 1:
        sys.exit(Supervisor(workers, sys.argv[1:], address).run())
    sys.exit(Server(settings, worker=serve_worker).run())


@main.command()
@dsn_option
def status(dsn: str | None, dsn_file: str | None) -> None:
    """Where capture is: stored position, the server's position, how far behind, last
    event, when the stored binlog file may be purged; the live daemons and workers with
    their roles; and events per second (by commit time) over the last 1 and 5 minutes,
    overall and for the busiest tables."""
    from cdc.admin.status import capture_status, event_rates

    try:
        parsed = command_dsn(dsn, dsn_file)
        report = capture_status(parsed)
        rates = event_rates(parsed)
    except CdcError as error:
        _fail(error)
    for key, value in report.items():
        if isinstance(value, datetime.datetime):
            value = value.isoformat() + "Z"
        click.echo(f"{key:>20}: {'-' if value is None else value}")
    windows = " / ".join(f"{w // 60} min" for w in rates.windows)
    click.echo(f"{'events/s':>20}: {' / '.join(map(str, rates.overall))}  (last {windows})")
    for name, per_second in rates.tables:
        click.echo(f"{'events/s ' + name:>20}: {' / '.join(map(str, per_second))}")


@main.command()
@dsn_option
@click.option(
    "--older-than",
    required=True,
    help="Delete the events whose timestamp is older than this age: 30s, 15m, 12h, 90d, 2w.",
)
@click.option(
    "--batch-rows",
    default=2000,
    show_default=True,
    type=click.IntRange(100, 50_000),
    help="Events per DELETE (each its own short transaction, with a pause between).",
)
def prune(dsn: str | None, dsn_file: str | None, older_than: str, batch_rows: int) -> None:
    """Delete old events, oldest first, in small batches (short transactions, no long
    locks, no replication lag spike); the newest event is always kept. Prints how many
    were deleted. Safe while `cdc run` captures and streams."""
    from cdc.ages import parse_age
    from cdc.store.prune import prune as prune_events

    try:
        age = parse_age(older_than, "--older-than")
        done = prune_events(command_dsn(dsn, dsn_file), age, batch_rows=batch_rows)
    except CdcError as error:
        _fail(error)
    first = "none" if done.first_id is None else done.first_id
    click.echo(
        f"deleted {done.deleted} event(s) older than {done.cutoff} UTC; first id held: {first}"
    )


@main.command()
@click.option(
    "--http", default="127.0.0.1:8080", show_default=True, help="Address of the page and API."
)
@click.option(
    "--interval",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0.001),
    help="Seconds between demo writes.",
)
def demo(http: str, interval: float) -> None:
    """Try cdc: a throwaway MariaDB with a small hospital schema and a stream of writes,
    captured live (open the page it prints). Everything is removed on Ctrl-C."""
    from cdc.demo import run_demo

    try:
        sys.exit(run_demo(http, interval))
    except CdcError as error:
        _fail(error)


@main.group()
def triggers() -> None:
    """Capture without binlog access: triggers that stage every row change of the chosen
    tables, moved into the event table by `cdc run --capture triggers`."""


def _trigger_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--dsn, and the options of `cdc run` that choose the tables and the user column
    (the same flags, CDC_* variables and TOML keys, so one file configures both)."""
    for option in reversed(settings_options(CaptureSettings, _TRIGGER_FIELDS)):
        command = option(command)
    return dsn_option(command)


_TRIGGER_FIELDS = ("include", "exclude", "user_column")


def _triggers(options: dict[str, Any]) -> Any:
    """The `Triggers` of a command's options, with the file's [[redact]] rules."""
    from cdc.capture.triggers.install import Triggers
    from cdc.daemon import redaction_plan

    dsn = command_dsn(options.pop("dsn"), options.pop("dsn_file"))
    capture = CaptureSettings(
        include=_patterns(options["include"]),
        exclude=_patterns(options["exclude"]),
        user_column=options["user_column"],
    )
    sections = parse_sections(file_sections())
    settings = Settings(dsn=dsn, capture=capture, redact=sections.get("redact", ()))
    return Triggers(dsn, settings.capture, redaction_plan(settings))


@triggers.command(name="install")
@_trigger_options
@click.option("--dry-run", is_flag=True, help="Print the SQL; change nothing.")
def triggers_install(dry_run: bool, **options: Any) -> None:
    """Install (or bring up to date) the capture triggers of every included table and of
    the outbox, after the tables' own triggers. Safe on live tables: no change is lost."""
    try:
        steps = _triggers(options).install(dry_run=dry_run)
    except CdcError as error:
        _fail(error)
    for step in steps:
        if dry_run:
            click.echo(f"-- {step.table.line()}")
            for statement in step.statements:
                click.echo(statement + ";")
        else:
            click.echo(
                f"installed   {step.table.schema}.{step.table.table}  (was {step.table.state})"
            )
    if not steps:
        click.echo("every included table is up to date")
    elif dry_run:
        click.echo(f"-- {len(steps)} table(s) would change; nothing was changed (--dry-run)")


@triggers.command(name="remove")
@_trigger_options
@click.option("--force", is_flag=True, help="Also drop staged changes not yet moved.")
def triggers_remove(force: bool, **options: Any) -> None:
    """Drop exactly the capture triggers `install` created (of the included tables), and
    nothing of the application's. Refuses while their changes are not yet moved."""
    try:
        found = _triggers(options)
        steps = found.remove(force=force)
    except CdcError as error:
        _fail(error)
    for step in steps:
        click.echo(step.table.line())
    for note in found.notes:
        click.echo(note)
    if not steps:
        click.echo("no capture trigger to remove")


@triggers.command(name="status")
@_trigger_options
def triggers_status(**options: Any) -> None:
    """One line per included table: ok, missing or out of date (after an ALTER TABLE or
    a change of [[redact]]: `install` again). Exit 1 unless every one is ok."""
    try:
        states = _triggers(options).status()
    except CdcError as error:
        _fail(error)
    for state in states:
        click.echo(state.line())
    bad = sum(not s.ok for s in states)
    click.echo(f"{len(states) - bad} of {len(states)} table(s) ok")
    sys.exit(1 if bad else 0)


@main.group()
def token() -> None:
    """Tokens for the HTTP API's clients (screens, scripts, services)."""


@token.command(name="create")
@click.argument("name")
@click.option(
    "--tables",
    multiple=True,
    help="A glob on schema.table the token may read (repeatable: --tables hosp.invoice "
    "--tables hosp.cash). Without it the token reads nothing.",
)
@click.option("--types", multiple=True, help="An event type it may read (repeatable; default all).")
@click.option(
    "--scopes",
    multiple=True,
    help="A scope: metrics (reads /metrics), publish (POST /events). Repeatable.",
)
def token_create(
    name: str, tables: tuple[str, ...], types: tuple[str, ...], scopes: tuple[str, ...]
) -> None:
    """Make a new token: prints it once (give it to the client; it is not kept) and the
    [[auth.tokens]] block to paste into the configuration file (which keeps only its
    SHA-256). Then reload the daemon (SIGHUP) or restart it."""
    from cdc.policy import tokens
    from cdc.sections import parse_auth

    entry = {"name": name, "sha256": "0" * 64, "tables": list(tables), "scopes": list(scopes)}
    if types:
        entry["types"] = [t.upper() for t in types]
    try:
        checked = parse_auth({"tokens": [entry]}).tokens[0]
    except CdcError as error:
        _fail(error)
    secret = tokens.new_token()
    block = tokens.toml_block(
        checked.name, tokens.digest(secret), checked.tables, checked.types, checked.scopes
    )
    click.echo(f"token: {secret}")
    click.echo("(shown once: give it to the client, e.g. in a file for cdc tail --token-file)")
    click.echo("")
    click.echo(block, nl=False)


def _event_types(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    types = tuple(v.upper() for v in values)
    for value in types:
        if not EVENT_TYPE.fullmatch(value):
            raise click.BadParameter(
                f"{value!r} is not an event type (letters, digits and _, up to 32 characters)"
            )
    return types


@main.command(name="tail")
@click.argument("url", envvar="CDC_URL")
@click.option("--table", multiple=True, help="Only this table: schema.table or table (repeatable).")
@click.option(
    "--type",
    "types",
    multiple=True,
    callback=_event_types,
    help="Only this event type: CREATE, UPDATE, DELETE, CASCADE or an application's own "
    "(repeatable).",
)
@click.option("--row-id", help="Only the history of this row id (with --table).")
@click.option("--user-id", help="Only changes by this user id.")
@click.option("--since", help="Start with the history since this time (ISO-8601, or 1h, 7d).")
@click.option(
    "--last-event-id",
    type=click.IntRange(0),
    help="Start after this event id (events after it are replayed first).",
)
@click.option(
    "--json/--pretty",
    "as_json",
    default=None,
    help="One JSON event per line (default when not on a terminal), or readable lines.",
)
@click.option(
    "--token-file",
    envvar="CDC_TOKEN_FILE",
    type=click.Path(dir_okay=False),
    help="A file holding the token to send (Authorization: Bearer); env CDC_TOKEN_FILE.",
)
def tail_command(
    url: str,
    table: tuple[str, ...],
    types: tuple[str, ...],
    row_id: str | None,
    user_id: str | None,
    since: str | None,
    last_event_id: int | None,
    as_json: bool | None,
    token_file: str | None,
) -> None:
    """Follow a cdc stream (URL of the daemon, e.g. http://127.0.0.1:8080) and print each
    event; reconnects after a dropped connection and resumes where it stopped."""
    import asyncio

    from cdc.client.tail import tail

    filters: dict[str, list[str]] = {}
    if table:
        filters["table"] = list(table)
    if types:
        filters["type"] = list(types)
    for name, value in (("row_id", row_id), ("user_id", user_id), ("since", since)):
        if value is not None:
            filters[name] = [value]
    pretty = sys.stdout.isatty() if as_json is None else not as_json
    try:
        token_text = read_secret_text(token_file, "the token").strip() if token_file else None
        asyncio.run(tail(url, filters, last_event_id, sys.stdout, pretty, token_text))
    except CdcError as error:
        _fail(error)
    except KeyboardInterrupt:
        sys.exit(0)

"""The `cdc` command: parse flags, set up logging, call the library. Exit codes: 0 ok,
1 a check failed or capture stopped on an error, 2 usage, 3 could not start."""

from __future__ import annotations

import datetime
import sys
from typing import Any

import click

from cdc import logs
from cdc.config import Dsn, Settings, load_toml
from cdc.errors import CdcError, ConfigError

OPTION_NAMES = {
    "dsn", "server_id", "include", "exclude", "user_column", "binary", "decoder",
    "from_now", "http", "no_http", "max_clients", "health_max_lag", "log_level",
    "heartbeat", "stream_buffer",
}  # fmt: skip


def _load_config(ctx: click.Context, _param: click.Parameter, path: str | None) -> str | None:
    """Values of the TOML file become defaults, so flags and CDC_* variables win over them."""
    try:
        data = load_toml(path)
    except ConfigError as error:
        raise click.BadParameter(str(error)) from None
    unknown = sorted(set(data) - OPTION_NAMES)
    if unknown:
        raise click.BadParameter(
            f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(OPTION_NAMES))}"
        )
    ctx.default_map = {name: data for name in ("init", "check", "run", "status", "demo", "tail")}
    return path


dsn_option = click.option(
    "--dsn",
    envvar="CDC_DSN",
    required=True,
    help="The server, and the database holding the event table: mysql://user:pass@host:3306/cdc "
    "(env CDC_DSN).",
)


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
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"]),
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
def init(dsn: str) -> None:
    """Create the database named in the DSN and the event tables (safe to run again)."""
    from cdc import store

    try:
        parsed = Dsn.parse(dsn)
        from cdc.checks import connect

        connect(parsed.connect_kwargs()).close()
        store.init_schema(parsed.connect_kwargs(), parsed.database)
    except CdcError as error:
        _fail(error)
    click.echo(f"event tables ready in `{parsed.database}` on {parsed.host}:{parsed.port}")


@main.command()
@dsn_option
def check(dsn: str) -> None:
    """Check that the server can be captured: binlog settings, privileges, event tables.

    One line per check, with the exact my.cnf line or GRANT that fixes a failure.
    Exit 0 when capture can work, 1 otherwise.
    """
    from cdc.checks import run_checks

    try:
        parsed = Dsn.parse(dsn)
        info, results = run_checks(parsed.connect_kwargs(), parsed.database)
    except CdcError as error:
        _fail(error)
    click.echo(f"server {info.version.removeprefix('5.5.5-')} at {parsed.host}:{parsed.port}")
    for result in results:
        click.echo(result.line())
    failed = sum(not r.ok for r in results)
    click.echo("capture can work" if not failed else f"{failed} check(s) failed")
    sys.exit(1 if failed else 0)


@main.command()
@dsn_option
@click.option(
    "--include",
    envvar="CDC_INCLUDE",
    multiple=True,
    help="Capture only schema.table matching this glob (repeatable; env CDC_INCLUDE, "
    "space-separated). Default: every table outside the system schemas.",
)
@click.option(
    "--exclude",
    envvar="CDC_EXCLUDE",
    multiple=True,
    help="Do not capture schema.table matching this glob (repeatable; env CDC_EXCLUDE).",
)
@click.option(
    "--server-id",
    envvar="CDC_SERVER_ID",
    default=4263,
    show_default=True,
    type=click.IntRange(1, 2**32 - 1),
    help="Replica server id of the binlog connection; unique among the server's replicas.",
)
@click.option(
    "--user-column",
    envvar="CDC_USER_COLUMN",
    default="user_id",
    show_default=True,
    help="A row's column whose value is the event's user_id.",
)
@click.option(
    "--binary",
    envvar="CDC_BINARY",
    default="hex",
    show_default=True,
    type=click.Choice(["hex", "base64"]),
    help="How binary column values are written.",
)
@click.option(
    "--decoder",
    envvar="CDC_DECODER",
    default="fast",
    show_default=True,
    type=click.Choice(["fast", "library"]),
    help="Row decoder: the compiled one, or mysql-replication's own (slower; for comparison).",
)
@click.option(
    "--from-now",
    envvar="CDC_FROM_NOW",
    is_flag=True,
    help="Start at the server's current binlog position, ignoring a stored checkpoint "
    "(after a purged position; changes made in between are not captured).",
)
@click.option(
    "--http",
    envvar="CDC_HTTP",
    default="127.0.0.1:8080",
    show_default=True,
    help="Address of the HTTP API and live page.",
)
@click.option("--no-http", envvar="CDC_NO_HTTP", is_flag=True, help="Capture only; no HTTP API.")
@click.option(
    "--max-clients",
    envvar="CDC_MAX_CLIENTS",
    default=2000,
    show_default=True,
    type=click.IntRange(1),
    help="Most stream clients at once; more get 503 with Retry-After.",
)
@click.option(
    "--heartbeat",
    envvar="CDC_HEARTBEAT",
    default=15.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds between comment frames on an idle stream (keeps proxies from closing it).",
)
@click.option(
    "--stream-buffer",
    envvar="CDC_STREAM_BUFFER",
    default=10_000,
    show_default=True,
    type=click.IntRange(100),
    help="Events a stalled stream client may fall behind before it is disconnected "
    "(it resumes with Last-Event-ID).",
)
@click.option(
    "--health-max-lag",
    envvar="CDC_HEALTH_MAX_LAG",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0),
    help="/health answers 503 when capture is further behind than this many seconds.",
)
def run(**options: Any) -> None:
    """Capture until SIGTERM or SIGINT (a second SIGINT forces the exit).

    Refuses to start, with the reason and the fix, when the server cannot be captured.
    """
    from cdc.daemon import Daemon

    try:
        settings = settings_from(options)
    except CdcError as error:
        _fail(error)
    sys.exit(Daemon(settings).run())


def settings_from(options: dict[str, Any]) -> Settings:
    def patterns(values: tuple[str, ...]) -> tuple[str, ...]:
        # CDC_INCLUDE="a.* b.*" arrives as one value: split on whitespace and commas.
        return tuple(p for v in values for p in v.replace(",", " ").split())

    return Settings(
        dsn=Dsn.parse(options["dsn"]),
        server_id=options["server_id"],
        include=patterns(options["include"]),
        exclude=patterns(options["exclude"]),
        user_column=options["user_column"],
        binary=options["binary"],
        decoder=options["decoder"],
        from_now=options["from_now"],
        http=None if options["no_http"] else options["http"],
        max_clients=options["max_clients"],
        health_max_lag=options["health_max_lag"],
        heartbeat=options["heartbeat"],
        stream_buffer=options["stream_buffer"],
    )


@main.command()
@dsn_option
def status(dsn: str) -> None:
    """Where capture is: stored position, the server's position, how far behind, last event."""
    from cdc.status import capture_status

    try:
        report = capture_status(Dsn.parse(dsn))
    except CdcError as error:
        _fail(error)
    for key, value in report.items():
        if isinstance(value, datetime.datetime):
            value = value.isoformat() + "Z"
        click.echo(f"{key:>20}: {'-' if value is None else value}")


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


@main.command(name="tail")
@click.argument("url", envvar="CDC_URL")
@click.option("--table", multiple=True, help="Only this table: schema.table or table (repeatable).")
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(["CREATE", "UPDATE", "DELETE"], case_sensitive=False),
    help="Only this change type (repeatable).",
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
def tail_command(
    url: str,
    table: tuple[str, ...],
    types: tuple[str, ...],
    row_id: str | None,
    user_id: str | None,
    since: str | None,
    last_event_id: int | None,
    as_json: bool | None,
) -> None:
    """Follow a cdc stream (URL of the daemon, e.g. http://127.0.0.1:8080) and print each
    event; reconnects after a dropped connection and resumes where it stopped."""
    import asyncio

    from cdc.tail import tail

    filters: dict[str, list[str]] = {}
    if table:
        filters["table"] = list(table)
    if types:
        filters["type"] = [t.upper() for t in types]
    for name, value in (("row_id", row_id), ("user_id", user_id), ("since", since)):
        if value is not None:
            filters[name] = [value]
    pretty = sys.stdout.isatty() if as_json is None else not as_json
    try:
        asyncio.run(tail(url, filters, last_event_id, sys.stdout, pretty))
    except CdcError as error:
        _fail(error)
    except KeyboardInterrupt:
        sys.exit(0)

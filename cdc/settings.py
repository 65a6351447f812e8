"""Settings: one frozen tree built from flags, CDC_* environment variables and a TOML file.

Each part of the program takes its own branch (`CaptureSettings`, `HttpSettings`); every
default is written once, here. A field with an `option(...)` is also a flag of `cdc run`,
a `CDC_*` variable and a TOML key of the same name: the CLI is built from these fields.
Precedence is flag > environment > file > default. Nothing else reads the environment.
"""

from __future__ import annotations

import dataclasses
import enum
import tomllib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from cdc import sections
from cdc.ages import parse_age
from cdc.errors import ConfigError
from cdc.sections import AuthSettings, MysqlTls, RedactRule


class Binary(enum.StrEnum):
    """How binary column values are written."""

    HEX = "hex"
    BASE64 = "base64"


class Decoder(enum.StrEnum):
    """Which row decoder reads the row images."""

    FAST = "fast"  # compiled per table version
    LIBRARY = "library"  # mysql-replication's own


class CaptureMode(enum.StrEnum):
    """Where row changes come from."""

    BINLOG = "binlog"  # a replica connection reading the binlog
    TRIGGERS = "triggers"  # the staging table the capture triggers fill (cdc triggers install)


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Dsn:
    """`mysql://user:pass@host:port/db?ssl_mode=...`; `db` holds the event table.

    The query may hold the TLS keys of `[mysql]` (`ssl_mode`, `ssl_ca`, `ssl_cert`,
    `ssl_key`); they win over the file's.
    """

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    tls: MysqlTls | None = None

    @classmethod
    def parse(cls, url: str) -> Dsn:
        if not url:
            raise ConfigError(
                "no server given", fix="pass --dsn mysql://user:pass@host:3306/cdc or set CDC_DSN"
            )
        parts = urlsplit(url)
        if parts.scheme not in ("mysql", "mariadb"):
            raise ConfigError(
                f"the DSN must start with mysql:// (got {parts.scheme or 'no scheme'}://)",
                fix="write it as mysql://user:pass@host:3306/cdc",
            )
        database = parts.path.lstrip("/")
        if not database or "/" in database:
            raise ConfigError(
                "the DSN names no database for the event table",
                fix="end it with the database, e.g. mysql://user:pass@host:3306/cdc",
            )
        try:
            port = parts.port or 3306
        except ValueError as error:
            raise ConfigError(f"bad port in the DSN: {error}", fix="use host:3306") from None
        query: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in query:
                raise ConfigError(f"the DSN gives {key} twice", fix=f"keep one {key}=")
            query[key] = value
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=database,
            tls=sections.parse_tls(query, "the DSN's query") if query else None,
        )

    def with_tls(self, tls: MysqlTls | None) -> Dsn:
        """This DSN with the file's `[mysql]` TLS, unless its own query sets TLS."""
        if self.tls is not None or tls is None:
            return self
        return dataclasses.replace(self, tls=tls)

    def __str__(self) -> str:
        return f"mysql://{self.user}:***@{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True, slots=True)
class Option:
    """A settings field that is also a command-line flag, a CDC_* variable and a TOML key.

    `name` overrides the field's name there (`--http` for `HttpSettings.listen`);
    `minimum`/`maximum` bound a number. Repeatable when the field is a tuple.
    """

    help: str
    name: str | None = None
    minimum: float | None = None
    maximum: float | None = None


def option(default: Any, help: str, **details: Any) -> Any:
    """A field default that is also an option of `cdc run` (see `Option`)."""
    return field(default=default, metadata={"option": Option(help=help, **details)})


def option_name(f: Any) -> str:
    spec: Option = f.metadata["option"]
    return spec.name or f.name


def options_of(cls: type) -> list[Any]:
    """The fields of a settings class that are options, in declaration order."""
    return [f for f in fields(cls) if "option" in f.metadata]


def default_of(f: Any) -> Any:
    if f.default is not MISSING:
        return f.default
    return f.default_factory()


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    """What the capture loop and its sources need."""

    mode: CaptureMode = option(
        CaptureMode.BINLOG,
        "Where changes come from: the binlog (a replica connection), or the staging table "
        "of the capture triggers (`cdc triggers install`; no binlog access needed).",
        name="capture",
    )
    server_id: int = option(
        4263,
        "Replica server id of the binlog connection; unique among the server's replicas "
        "(an active and a standby daemon need one each).",
        minimum=1,
        maximum=2**32 - 1,
    )
    include: tuple[str, ...] = option(
        (),
        "Capture only schema.table matching this glob (repeatable; env CDC_INCLUDE, "
        "space-separated). Default: every table outside the system schemas.",
    )
    exclude: tuple[str, ...] = option(
        (), "Do not capture schema.table matching this glob (repeatable; env CDC_EXCLUDE)."
    )
    user_column: str = option(
        "user_id",
        "A row's column whose value is the event's user_id (when the statement has no tag).",
    )
    user_tag: str = option(
        "user_id",
        "The key of the statement's sqlcommenter tag (/*user_id='7'*/) that gives the "
        "event's user_id, first (MariaDB's Annotate_rows, MySQL's Rows_query events).",
    )
    context_tags: tuple[str, ...] = option(
        (),
        "Other tag keys kept in the event's `context` (repeatable or comma-separated; env "
        "CDC_CONTEXT_TAGS).",
    )
    binary: Binary = option(Binary.HEX, "How binary column values are written.")
    decoder: Decoder = option(
        Decoder.FAST,
        "Row decoder: the compiled one, or mysql-replication's own (slower; for comparison).",
    )
    from_now: bool = option(
        False,
        "Start at the server's current binlog position, ignoring a stored checkpoint "
        "(after a purged position; changes made in between are not captured).",
    )
    retention: str | None = option(
        None,
        "Delete events older than this age (30d, 12h, 2w) continuously: at start and every "
        "few minutes, in small batches (as `cdc prune --older-than`). Default: keep all.",
    )
    # Tuning, not options: tests and benchmarks set them.
    retention_every_seconds: float = 300.0  # how often --retention prunes
    batch_events: int = 5000  # most events in one sink transaction
    batch_seconds: float = 0.2  # longest a sink transaction stays open
    linger_seconds: float = 0.005  # wait for the next source transaction in a burst
    idle_checkpoint_seconds: float = 30.0  # store the position of uncaptured work this often
    queue_items: int = 64  # items between the reader thread and the writer
    binlog_heartbeat: float = 1.0  # the replica heartbeat: the binlog read returns this often
    read_timeout: float = 30.0  # a binlog read silent this long is a lost connection
    gtid_resume: bool = True  # False: always resume by binlog file and offset
    trigger_poll_seconds: float = 0.05  # how often an idle mover looks at the staging table
    # Standby failover: registry heartbeats (a daemon is dead after 3 missed), how long a
    # standby waits on the lock per attempt and how often the active checks it still holds
    # it, how often the binlog purge estimate is refreshed.
    heartbeat_seconds: float = 2.0
    lease_poll_seconds: float = 1.0
    purge_check_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.retention is not None:
            parse_age(self.retention, "--retention")  # refused at start, before any connection

    @property
    def retention_age(self) -> timedelta | None:
        return None if self.retention is None else parse_age(self.retention, "--retention")


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """How the HTTP side listens and treats its clients."""

    listen: str = option("127.0.0.1:8080", "Address of the HTTP API and live page.", name="http")
    max_clients: int = option(
        2000, "Most stream clients at once; more get 503 with Retry-After.", minimum=1
    )
    heartbeat: float = option(
        15.0,
        "Seconds between comment frames on an idle stream (keeps proxies from closing it).",
        minimum=1,
    )
    stream_buffer: int = option(
        10_000,
        "Events a stalled stream client may fall behind before it is disconnected "
        "(it resumes with Last-Event-ID).",
        minimum=100,
    )
    health_max_lag: float = option(
        60.0,
        "/health answers 503 when capture is further behind than this many seconds.",
        minimum=0,
    )
    tls_cert: str | None = option(
        None, "Serve HTTPS with this certificate (PEM, with its chain); needs --tls-key."
    )
    tls_key: str | None = option(None, "The private key (PEM) of --tls-cert.")
    cors_origin: tuple[str, ...] = option(
        (),
        "Let pages of this origin (https://host:port) call the API from a browser "
        "(repeatable; env CDC_CORS_ORIGIN, space-separated). Default: none.",
    )
    insecure_no_auth: bool = option(
        False,
        "Serve without any credential on a public address (every client reads every event). "
        "Without tokens or a JWT key the API listens on loopback only, unless this is given.",
    )
    stream_max_age: float = option(
        3600.0,
        "Seconds after which a stream is closed cleanly (less up to 10% of jitter); the "
        "client resumes with Last-Event-ID, so workers rebalance after a restart.",
        minimum=1,
    )
    retry_ms: int = 2000  # the SSE `retry:` hint: how soon a browser reconnects
    retry_after: int = 5  # the Retry-After of a 503 for too many clients (seconds)
    shutdown_timeout: float = 5.0  # longest wait for requests in flight at stop
    # Hostile input: the longest request line and header, the most headers, the largest body.
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 64
    max_body_bytes: int = 64 * 1024

    @property
    def address(self) -> tuple[str, int]:
        return parse_host_port(self.listen)


def redis_url_shown(url: str | None) -> str | None:
    """A Redis URL fit for a log line: its password replaced by `***`."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{user}:***@{host}{port}").geturl()


@dataclass(frozen=True, slots=True)
class BusSettings:
    """The Redis stream between `cdc run` (which publishes) and `cdc serve` (which reads)."""

    url: str | None = field(
        default=None,
        repr=False,  # may hold a password: see `shown`
        metadata={
            "option": Option(
                help="Redis URL of the event bus (redis://[:password@]host:6379/0; rediss:// "
                "for TLS): `cdc run` publishes each committed event to it, `cdc serve` reads "
                "live events from it. Default: no bus.",
                name="bus",
            )
        },
    )
    stream: str = option("cdc:events", "Name of the Redis stream.", name="bus_stream")
    maxlen: int = option(
        100_000,
        "Entries the stream keeps (trimmed approximately; readers fill gaps from the table).",
        name="bus_maxlen",
        minimum=1,
    )
    queue_batches: int = 1000  # committed batches waiting for Redis before some are skipped
    timeout: float = 2.0  # seconds a Redis command may take before Redis counts as down
    block_ms: int = 1000  # how long one XREAD waits for new entries

    def __post_init__(self) -> None:
        if self.url is not None and urlsplit(self.url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"--bus {redis_url_shown(self.url)!r} is not a Redis URL",
                fix="write it as redis://[:password@]host:6379/0 (rediss:// for TLS)",
            )

    @property
    def shown(self) -> str | None:
        """The URL without its password (for logs)."""
        return redis_url_shown(self.url)

    def __repr__(self) -> str:
        return f"BusSettings(url={self.shown!r}, stream={self.stream!r}, maxlen={self.maxlen})"


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """`cdc serve` only: how many worker processes share its port."""

    workers: int = option(
        1,
        "Worker processes sharing the port (SO_REUSEPORT); the parent supervises them "
        "(restarts a dead one) and serves nothing itself.",
        minimum=1,
        maximum=256,
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """What `cdc run` needs; passed down, never read from the environment again."""

    dsn: Dsn
    capture: CaptureSettings = CaptureSettings()
    http: HttpSettings | None = HttpSettings()  # None: capture only (--no-http)
    auth: AuthSettings = AuthSettings()  # [auth]
    redact: tuple[RedactRule, ...] = ()  # [[redact]]
    bus: BusSettings = BusSettings()  # --bus (Redis)
    config_file: str | None = None  # where [auth] is read again on SIGHUP


# Options of `cdc run` that are not fields of a part: the DSN (or its file), --no-http,
# and the command group's --log-level.
RUN_OPTIONS = ("dsn", "dsn_file", "no_http")
GROUP_OPTIONS = ("log_level",)
PARTS: tuple[type, ...] = (CaptureSettings, HttpSettings, BusSettings)
SERVE_PARTS: tuple[type, ...] = (HttpSettings, BusSettings, ServeSettings)


SectionParser = Callable[[Any], Any]
SECTIONS: dict[str, SectionParser] = {}
"""TOML tables (`[auth]`, `[[redact]]`, ...) that are not options: each is parsed by its
own function into its part of the settings tree, and refused with a `ConfigError`
naming the key when it is wrong. Parts register here."""


def section(name: str) -> Callable[[SectionParser], SectionParser]:
    """Register the parser of the TOML table (or array of tables) `name`."""

    def register(parse: SectionParser) -> SectionParser:
        SECTIONS[name] = parse
        return parse

    return register


section("auth")(sections.parse_auth)
section("redact")(sections.parse_redact)
section("mysql")(sections.parse_tls)


def toml_keys() -> frozenset[str]:
    """Every key the TOML file may hold outside its sections: the options' names."""
    names = {option_name(f) for part in {*PARTS, *SERVE_PARTS} for f in options_of(part)}
    return frozenset(names | set(RUN_OPTIONS) | set(GROUP_OPTIONS))


@dataclass(frozen=True, slots=True)
class TomlFile:
    """A configuration file: `options` are defaults for flags, `sections` the tables."""

    options: dict[str, Any]
    sections: dict[str, Any]


def load_toml(path: str | None) -> TomlFile:
    """The file's option keys (with `-` and `_` both accepted) and its sections."""
    if not path:
        return TomlFile({}, {})
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found", fix="check the --config path") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            f"config file {path} is not valid TOML: {error}", fix="correct it"
        ) from None
    data = {key.replace("-", "_"): value for key, value in data.items()}
    sections = {key: data.pop(key) for key in list(data) if key in SECTIONS}
    return TomlFile(data, sections)


def parse_sections(sections: dict[str, Any]) -> dict[str, Any]:
    """Each section's settings, by section name (absent sections are not parsed)."""
    return {name: SECTIONS[name](value) for name, value in sections.items()}


def reload_auth(path: str | None) -> AuthSettings:
    """The `[auth]` section of the configuration file as it is now (for SIGHUP)."""
    parsed = parse_sections(load_toml(path).sections)
    auth: AuthSettings = parsed.get("auth", AuthSettings())
    return auth


def parse_host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--http {text!r} is not host:port", fix="e.g. --http 127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", int(port)

"""Settings: one frozen object built from flags, CDC_* environment variables and a TOML file.

Precedence is flag > environment > file > default; click gives it when the file's values
are its `default_map`. Nothing else in the package reads the environment.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from cdc.errors import ConfigError


@dataclass(frozen=True)
class Dsn:
    """`mysql://user:pass@host:port/db`; `db` holds the event table."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str

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
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=database,
        )

    def connect_kwargs(self) -> dict[str, Any]:
        """pymysql.connect arguments, without the database."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "connect_timeout": 10,
        }

    def __str__(self) -> str:
        return f"mysql://{self.user}:***@{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class Settings:
    """What `cdc run` needs; passed down, never read from the environment again."""

    dsn: Dsn
    server_id: int = 4263
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    user_column: str = "user_id"
    binary: str = "hex"
    decoder: str = "fast"
    from_now: bool = False
    http: str | None = "127.0.0.1:8080"
    max_clients: int = 2000
    health_max_lag: float = 60.0
    heartbeat: float = 15.0
    stream_buffer: int = 10_000
    batch_events: int = 5000
    batch_seconds: float = 0.2
    queue_items: int = 64


def load_toml(path: str | None) -> dict[str, Any]:
    """The file's keys, with `-` and `_` both accepted, as click's default_map."""
    if not path:
        return {}
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found", fix="check the --config path") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            f"config file {path} is not valid TOML: {error}", fix="correct it"
        ) from None
    return {key.replace("-", "_"): value for key, value in data.items()}


def parse_host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--http {text!r} is not host:port", fix="e.g. --http 127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", int(port)

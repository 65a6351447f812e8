"""Every connection to the server is made here, with one set of options (charset,
timeouts, the database), and the server facts read through one: version, binlog status
and end, identity.
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import pymysql
from pymysql.constants import ER

from cdc.errors import ConfigError, StartupError, server_code
from cdc.models import Position
from cdc.sections import MysqlTls, TlsMode

if TYPE_CHECKING:
    from cdc.settings import Dsn

Connection: TypeAlias = "pymysql.connections.Connection[Any]"

CONNECT_TIMEOUT = 10


def options(dsn: Dsn, *, database: bool = False, **overrides: Any) -> dict[str, Any]:
    """pymysql.connect keyword arguments for `dsn` (with its database when asked).

    The binlog stream takes these too, so every connection of the daemon is alike.
    """
    kwargs: dict[str, Any] = {
        "host": dsn.host,
        "port": dsn.port,
        "user": dsn.user,
        "password": dsn.password,
        "charset": "utf8mb4",
        "connect_timeout": CONNECT_TIMEOUT,
        # The client's own limit on a statement or row (pymysql's default is 16 MB): the
        # server's max_allowed_packet is the one that applies.
        "max_allowed_packet": 1 << 30,
    }
    if database:
        kwargs["database"] = dsn.database
    if dsn.tls is not None:
        kwargs["ssl"] = tls_context(dsn.tls)
    kwargs.update(overrides)
    return kwargs


@functools.lru_cache(maxsize=8)
def tls_context(tls: MysqlTls) -> ssl.SSLContext:
    """The TLS context of every connection to the server (made once per setting).

    `verify_identity` checks the certificate's chain and that it names the DSN's host;
    `verify_ca` the chain only; `required` encrypts without checking (MySQL's ssl-mode).
    """
    try:
        context = ssl.create_default_context(cafile=tls.ca)
        if tls.cert and tls.key:
            context.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as error:
        files = ", ".join(f for f in (tls.ca, tls.cert, tls.key) if f) or "the system's CAs"
        raise ConfigError(
            f"cannot load the TLS files for the server ({files}): {error}",
            fix="ssl_ca, ssl_cert and ssl_key name PEM files the daemon's user may read",
        ) from None
    # Like pymysql: certificates made by MySQL itself lack extensions the strict check wants.
    context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    context.check_hostname = tls.mode is TlsMode.VERIFY_IDENTITY
    if tls.mode is TlsMode.REQUIRED:
        context.verify_mode = ssl.CERT_NONE
    return context


def connect(dsn: Dsn, *, database: bool = False, **overrides: Any) -> Connection:
    """A new connection; pymysql's errors come through for the caller to classify."""
    return pymysql.connect(**options(dsn, database=database, **overrides))


def connect_for_command(dsn: Dsn, **overrides: Any) -> Connection:
    """A connection for a command (`init`, `check`, `status`, start-up): a failure is a
    `StartupError` naming the fix."""
    try:
        return connect(dsn, autocommit=True, **overrides)
    except pymysql.err.OperationalError as error:
        message = error.args[1] if len(error.args) > 1 else str(error)
        if server_code(error) == ER.ACCESS_DENIED_ERROR:
            fix = "check the DSN's host, port, user and password"
            if dsn.tls is None:
                fix += ", and whether the user requires TLS (REQUIRE SSL: set ssl_mode)"
        elif "SSL" in str(message) or "certificate" in str(message):
            fix = "check ssl_ca (the CA that signed the server's certificate) and ssl_mode"
        else:
            fix = "check that the server runs and the host and port are right"
        raise StartupError(f"cannot connect to {dsn.host}:{dsn.port}: {message}", fix=fix) from None


@dataclass(frozen=True, slots=True)
class ServerInfo:
    version: str
    is_mariadb: bool


def server_info(conn: Connection) -> ServerInfo:
    version: str = conn.get_server_info()  # type: ignore[no-untyped-call]
    return ServerInfo(version, "mariadb" in version.lower())


def server_identity(conn: Connection) -> str:
    """Which server this is, for the checkpoint: MySQL's `server_uuid`; MariaDB (which has
    none) its server id and GTID domain."""
    with conn.cursor() as cur:
        if server_info(conn).is_mariadb:
            cur.execute("SELECT @@server_id, @@gtid_domain_id")
            server_id, domain = cur.fetchone()
            return f"mariadb:{server_id}:{domain}"
        cur.execute("SELECT @@server_uuid")
        return str(cur.fetchone()[0])


def binlog_status(cur: Any) -> tuple[Any, ...] | None:
    """The server's binlog end (file, position, ..., executed GTID set on MySQL).

    MySQL 8.4 removed SHOW MASTER STATUS for SHOW BINARY LOG STATUS (8.2+); MariaDB
    knows only the old name (and SHOW BINLOG STATUS).
    """
    try:
        cur.execute("SHOW BINARY LOG STATUS")
    except pymysql.err.ProgrammingError as error:
        if server_code(error) != ER.PARSE_ERROR:  # a syntax error: an older server
            raise
        cur.execute("SHOW MASTER STATUS")
    row: tuple[Any, ...] | None = cur.fetchone()
    return row


def binlog_end(conn: Connection) -> Position:
    """The server's binlog end: where capture starts when there is no checkpoint.

    On MariaDB the GTID state is the one of that very file and offset
    (`BINLOG_GTID_POS`), so a transaction committed between the two reads can neither
    be skipped nor read twice.
    """
    with conn.cursor() as cur:
        row = binlog_status(cur)
        if row is None:
            raise StartupError("the binary log is off", fix="enable log_bin (see `cdc check`)")
        gtid = None
        if server_info(conn).is_mariadb:
            cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (row[0], int(row[1])))
            gtid = cur.fetchone()[0] or None
        elif len(row) > 4 and row[4]:
            gtid = str(row[4]).replace("\n", "")
    return Position(row[0], int(row[1]), gtid)


def primary_keys(conn: Connection) -> dict[tuple[str, str], tuple[str, ...]]:
    """Every table's primary-key columns, in key order (for the redaction check)."""
    keys: dict[tuple[str, str], tuple[str, ...]] = {}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE"
            " WHERE CONSTRAINT_NAME = 'PRIMARY'"
            " ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"
        )
        for schema, table, column in cur.fetchall():
            keys[(schema, table)] = (*keys.get((schema, table), ()), column)
    return keys


def binary_logs(cur: Any) -> list[tuple[str, int]]:
    """The server's binlog files and their sizes, oldest first."""
    cur.execute("SHOW BINARY LOGS")
    return [(row[0], int(row[1])) for row in cur.fetchall()]


def foreign_keys(conn: Connection) -> list[tuple[Any, ...]]:
    """Every foreign key outside the system schemas, one row per column in key order:
    (schema, table, constraint, column, referenced schema, referenced table, referenced
    column, DELETE rule, UPDATE rule)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME,"
            " k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME,"
            " r.DELETE_RULE, r.UPDATE_RULE"
            " FROM information_schema.KEY_COLUMN_USAGE k"
            " JOIN information_schema.REFERENTIAL_CONSTRAINTS r"
            " ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA"
            " AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME"
            " WHERE k.REFERENCED_TABLE_NAME IS NOT NULL AND k.TABLE_SCHEMA NOT IN"
            " ('mysql', 'sys', 'information_schema', 'performance_schema')"
            " ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION"
        )
        return list(cur.fetchall())

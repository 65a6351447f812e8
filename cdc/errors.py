"""Errors of the daemon, rooted at one `CdcError`, and `classify`: the one place that
decides whether a failure is retried (with backoff) or ends the work with a message."""

from __future__ import annotations

from dataclasses import dataclass

from pymysql import err as driver
from pymysql.constants import CR, ER


class CdcError(Exception):
    """A failure with a message for people: what is wrong, and how to fix it."""

    exit_code = 1

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}; fix: {self.fix}" if self.fix else self.problem


class ConfigError(CdcError):
    """Bad flags, environment or configuration file."""

    exit_code = 2


class StartupError(CdcError):
    """The daemon cannot start: the server cannot be captured, a dependency is missing."""

    exit_code = 3


class CaptureError(CdcError):
    """Capture cannot go on (purged position, lost privileges, setting changed): fatal."""

    exit_code = 1


class DecodeError(CdcError):
    """A row image could not be decoded; never skipped."""


class LeaseLost(CaptureError):
    """Another daemon holds the capture lease now: this one must not write (the fence)."""


class ConnectionLost(CdcError):
    """A connection to the server dropped; the work restarts from what is committed."""


# MariaDB's ER_CONNECTION_KILLED (KILL of our connection), which pymysql does not name.
MARIADB_CONNECTION_KILLED = 1927
# Another replica connection uses our server id (MariaDB's ER_SLAVE_SAME_ID; MySQL sends
# 1236 with this text).
SLAVE_SAME_ID = 4052
_SAME_ID_TEXT = "same server_uuid/server_id"
# Errors after which the same work can be done again on a new connection.
_LOST = frozenset(
    {
        CR.CR_CONN_HOST_ERROR,  # 2003: cannot connect (the server is restarting)
        CR.CR_SERVER_GONE_ERROR,  # 2006
        CR.CR_SERVER_LOST,  # 2013
        CR.CR_SERVER_LOST_EXTENDED,  # 2055
        ER.SERVER_SHUTDOWN,  # 1053
        MARIADB_CONNECTION_KILLED,
    }
)
# The capture user lacks a privilege, or is refused.
_DENIED = frozenset(
    {
        ER.DBACCESS_DENIED_ERROR,
        ER.ACCESS_DENIED_ERROR,
        ER.TABLEACCESS_DENIED_ERROR,
        ER.COLUMNACCESS_DENIED_ERROR,
        ER.SPECIFIC_ACCESS_DENIED_ERROR,
        ER.PROCACCESS_DENIED_ERROR,
    }
)
_PRIVILEGE_FIX = (
    "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO the capture user, "
    "and SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX on the event database "
    "(see `cdc check`)"
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do about a failure: `retry` it, or stop with `error` (None: not a failure
    of the server or of the input but a bug, to be raised as it is)."""

    retry: bool
    error: CdcError | None


def server_code(error: BaseException) -> int | None:
    """The server's (or the driver's) error number of a pymysql error, if it has one."""
    if isinstance(error, driver.Error) and error.args and isinstance(error.args[0], int):
        return error.args[0]
    return None


def classify(error: BaseException, where: str = "") -> Verdict:
    """Retry or fatal, with the message for people; `where` names the place (a binlog
    position, a table) for the message."""
    if isinstance(error, ConnectionLost):
        return Verdict(True, error)
    if isinstance(error, CdcError):
        return Verdict(False, error)
    if isinstance(error, ConnectionError | TimeoutError | driver.InterfaceError):
        return Verdict(True, ConnectionLost(f"lost the connection to the server: {error}"))
    code = server_code(error)
    if code is None:
        return Verdict(False, None)
    message = error.args[1] if len(error.args) > 1 else str(error)
    at = f" at {where}" if where else ""
    if code in _LOST:
        return Verdict(True, ConnectionLost(f"lost the connection to the server: {message}"))
    if code == SLAVE_SAME_ID or (
        code == ER.MASTER_FATAL_ERROR_READING_BINLOG and _SAME_ID_TEXT in str(message)
    ):
        return Verdict(
            False,
            CaptureError(
                f"another replica connection uses this daemon's server id: {message}",
                fix="give each daemon (active and standby) and each replica its own "
                "--server-id (CDC_SERVER_ID), unique among the server's replicas; see SHOW "
                "SLAVE HOSTS / SHOW REPLICAS",
            ),
        )
    if code == ER.MASTER_FATAL_ERROR_READING_BINLOG:  # 1236
        return Verdict(
            False,
            CaptureError(
                f"the server cannot send the binlog from the stored position {where}: {message}",
                fix="the binlog was purged or the position is unknown on this server; keep "
                "binlogs longer (binlog_expire_logs_seconds / expire_logs_days), then "
                "re-baseline with `cdc run --from-now` (changes made in between are not "
                "captured)",
            ),
        )
    if code in _DENIED:
        return Verdict(
            False,
            CaptureError(
                f"the capture user lacks a privilege or was refused: {message}",
                fix=_PRIVILEGE_FIX,
            ),
        )
    if code == ER.NO_SUCH_TABLE:
        return Verdict(
            False,
            StartupError(f"a table is missing{at}: {message}", fix="run `cdc init --dsn ...` once"),
        )
    return Verdict(
        False,
        CaptureError(
            f"capture failed{at}: {message} (error {code})", fix="see the server's error log"
        ),
    )

"""`errors.classify`: the one place that says retry or fatal, by named error codes."""

from __future__ import annotations

import pymysql
import pytest
from pymysql.constants import CR, ER

from cdc.errors import (
    MARIADB_CONNECTION_KILLED,
    CaptureError,
    ConfigError,
    ConnectionLost,
    DecodeError,
    StartupError,
    classify,
)


def operational(code: int, message: str = "boom") -> pymysql.err.OperationalError:
    return pymysql.err.OperationalError(code, message)


@pytest.mark.parametrize(
    "error",
    [
        operational(CR.CR_CONN_HOST_ERROR),
        operational(CR.CR_SERVER_GONE_ERROR),
        operational(CR.CR_SERVER_LOST),
        operational(CR.CR_SERVER_LOST_EXTENDED),
        operational(ER.SERVER_SHUTDOWN),
        operational(MARIADB_CONNECTION_KILLED),
        pymysql.err.InterfaceError(0, ""),
        ConnectionResetError(),
        ConnectionLost("the replica connection dropped"),
    ],
    ids=repr,
)
def test_lost_connections_are_retried(error: BaseException) -> None:
    verdict = classify(error)
    assert verdict.retry and isinstance(verdict.error, ConnectionLost)


@pytest.mark.parametrize(
    ("error", "kind", "words"),
    [
        (operational(ER.MASTER_FATAL_ERROR_READING_BINLOG), CaptureError, "--from-now"),
        (operational(ER.ACCESS_DENIED_ERROR), CaptureError, "GRANT REPLICATION SLAVE"),
        (pymysql.err.OperationalError(ER.SPECIFIC_ACCESS_DENIED_ERROR, "x"), CaptureError, "GRANT"),
        (pymysql.err.ProgrammingError(ER.NO_SUCH_TABLE, "x"), StartupError, "cdc init"),
        (pymysql.err.InternalError(1062, "dup"), CaptureError, "error log"),
    ],
)
def test_server_errors_are_fatal_with_the_fix(error: BaseException, kind: type, words: str) -> None:
    verdict = classify(error, where="binlog.000001:4")
    assert not verdict.retry
    assert isinstance(verdict.error, kind)
    assert words in str(verdict.error)


@pytest.mark.parametrize("error", [ConfigError("bad"), DecodeError("bad"), CaptureError("bad")])
def test_our_errors_are_fatal_as_they_are(error: BaseException) -> None:
    verdict = classify(error)
    assert not verdict.retry and verdict.error is error


def test_a_bug_is_not_dressed_up() -> None:
    verdict = classify(KeyError("x"))
    assert not verdict.retry and verdict.error is None

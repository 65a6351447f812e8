"""Secrets read from files (the DSN, the JWT key, the HMAC key, a client's token), so that
none has to be on a command line where `ps` shows it.

A file that others than its owner may read is used, with a warning naming it.
"""

from __future__ import annotations

import os
import stat

import structlog

from cdc.errors import ConfigError

log = structlog.get_logger("cdc.secrets")

MAX_BYTES = 64 * 1024  # a key or a token, never a big file


def read_secret(path: str, what: str) -> bytes:
    """The file's content less one trailing newline (`\\n` or `\\r\\n`).

    `what` says what the file is for, in the error and the warning (never its content).
    """
    try:
        with open(path, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            data = file.read(MAX_BYTES + 1)
    except OSError as error:
        raise ConfigError(
            f"cannot read {what} from {path}: {error.strerror}",
            fix="check the path, and that the daemon's user may read it",
        ) from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{what} file {path} is not a regular file", fix="name a file")
    if len(data) > MAX_BYTES:
        raise ConfigError(
            f"{what} file {path} is larger than {MAX_BYTES} bytes", fix="name the right file"
        )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "secret_file_readable_by_others",
            path=path,
            what=what,
            fix=f"chmod 600 {path}",
        )
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise ConfigError(f"{what} file {path} is empty", fix="write the secret into it")
    return data


def read_secret_text(path: str, what: str) -> str:
    """`read_secret` as UTF-8 text."""
    data = read_secret(path, what)
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"{what} file {path} is not UTF-8 text", fix="write it as text") from None

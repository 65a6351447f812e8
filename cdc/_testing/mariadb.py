"""A throwaway MariaDB server with binlog capture on, for the demo, the tests and the benchmarks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pymysql

from cdc.errors import StartupError

_SEARCH = ("/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin")

CAPTURE_OPTIONS = (
    "--binlog-format=ROW",
    "--binlog-row-image=FULL",
    "--binlog-row-metadata=FULL",
    "--server-id=1",
)


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in _SEARCH:
        path = Path(folder) / name
        if path.exists():
            return str(path)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MariaDB:
    """Starts `mariadbd` on a temporary datadir and a free port; `stop()` removes it all.

    `extra` adds or overrides server options (for example `--binlog-format=STATEMENT`
    to test how the daemon refuses a server that cannot be captured).
    """

    def __init__(self, extra: tuple[str, ...] = (), capture: bool = True) -> None:
        self.extra = extra
        self.capture = capture
        self.port = 0
        self.dir = ""
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/cdc"

    def connect(self, db: str | None = None, **kwargs: Any) -> pymysql.Connection[Any]:
        options: dict[str, Any] = {"host": "127.0.0.1", "port": self.port, "user": "root"}
        options.update(database=db, autocommit=True, **kwargs)
        return pymysql.connect(**options)

    def start(self) -> MariaDB:
        server = find_binary("mariadbd") or find_binary("mysqld")
        install = find_binary("mariadb-install-db") or find_binary("mysql_install_db")
        if not server or not install:
            raise StartupError(
                "mariadbd not found",
                fix="install Debian's mariadb-server (apt-get install mariadb-server)",
            )
        self.dir = tempfile.mkdtemp(prefix="cdc-mariadb-")
        data = os.path.join(self.dir, "data")
        subprocess.run(
            [
                install,
                "--no-defaults",
                f"--datadir={data}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._start_server(server, data)
        return self

    def _start_server(self, server: str, data: str) -> None:
        self.port = self.port or free_port()
        options = [
            server,
            "--no-defaults",
            f"--datadir={data}",
            "--user=root",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.dir}/mysqld.sock",
            f"--pid-file={self.dir}/mysqld.pid",
            f"--log-error={self.dir}/error.log",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=128M",
            "--innodb-log-file-size=256M",
            "--max-allowed-packet=64M",
            # Durability is not what the throwaway server is for; speed is.
            "--innodb-flush-log-at-trx-commit=2",
            "--sync-binlog=0",
        ]
        if self.capture:
            options.append(f"--log-bin={data}/binlog")
            options.extend(CAPTURE_OPTIONS)
        options.extend(self.extra)
        self._proc = subprocess.Popen(options, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.connect().close()
                return
            except pymysql.err.OperationalError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    log = Path(self.dir, "error.log")
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise StartupError(
                        "the throwaway MariaDB did not start", fix=f"see its log:\n{tail}"
                    ) from None
                time.sleep(0.1)

    def restart(self, extra: tuple[str, ...] | None = None) -> None:
        """Stop and start again on the same datadir and port (binlog rotates)."""
        self.stop_server()
        if extra is not None:
            self.extra = extra
        server = find_binary("mariadbd") or find_binary("mysqld")
        assert server
        self._start_server(server, os.path.join(self.dir, "data"))

    def stop_server(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def stop(self) -> None:
        self.stop_server()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> MariaDB:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""A throwaway redis-server on a free port (never the one on 6379), for the bus tests:
started, stopped, restarted on the same port, flushed."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cdc._testing.mariadb import free_port

REDIS_SERVER = "/usr/bin/redis-server"


class RedisServer:
    """`redis-server` without persistence, in a temporary directory."""

    def __init__(self) -> None:
        if not Path(REDIS_SERVER).exists():
            pytest.fail(f"{REDIS_SERVER} is missing: run scripts/install.sh --test")
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="cdc-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError), self.client() as client:
                if client.ping():
                    return self
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited {self.proc.returncode}")
            time.sleep(0.05)
        raise AssertionError(f"redis-server did not answer on port {self.port} within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.proc = None
        # Closed for sure: nothing listens any more.
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", self.port)) != 0

    def flushall(self) -> None:
        with self.client() as client:
            client.flushall()

    def entries(self, stream: str = "cdc:events") -> int:
        with self.client() as client:
            return int(client.xlen(stream))

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.remove()

"""The end-to-end set-up: a schema to capture, `cdc run --http` as a real process on a
free port, a writer committing rows as an application would."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from cdc._testing.mariadb import MariaDB, free_port
from tests.support import Daemon, start_daemon, stop_daemon


@dataclass
class Setup:
    server: MariaDB
    app: str  # the captured schema
    events: str  # the daemon's database (event table)
    conn: Any
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sql(self, *statements: str) -> None:
        with self.conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)

    def event_ids(self) -> list[int]:
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT id FROM `{self.events}`.event ORDER BY id")
            return [int(r[0]) for r in cur.fetchall()]


_count = iter(range(1, 10_000))


@contextlib.contextmanager
def new_setup(mariadb: MariaDB) -> Iterator[Setup]:
    """A schema to capture (one `patient` table), a name for the daemon's database, a port."""
    n = next(_count)
    app, events = f"e2e_app_{n}", f"e2e_cdc_{n}"
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{app}`")
        cur.execute(
            f"CREATE TABLE `{app}`.patient (id INT PRIMARY KEY, name VARCHAR(50), user_id INT)"
        )
    try:
        yield Setup(mariadb, app, events, conn, free_port())
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{app}`")
            cur.execute(f"DROP DATABASE IF EXISTS `{events}`")
        conn.close()


def start(setup: Setup) -> Daemon:
    """`cdc run` capturing the test's schema only, serving HTTP on the test's port."""
    dsn = f"mysql://root@127.0.0.1:{setup.server.port}/{setup.events}"
    return start_daemon(setup.server, "--include", f"{setup.app}.*", dsn=dsn, http=setup.port)


async def healthy(setup: Setup, proc: Daemon) -> None:
    """Waits for /health to say 200 (capturing)."""
    last: object = None
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if proc.poll() is not None:
                raise AssertionError(f"daemon exited {proc.returncode}: {proc.log()[-3000:]}")
            try:
                async with session.get(f"{setup.url}/health") as response:
                    if response.status == 200:
                        return
                    last = (response.status, await response.text())
            except aiohttp.ClientError as error:
                last = error
            await asyncio.sleep(0.1)
    raise AssertionError(f"GET {setup.url}/health never answered 200 in 60 s; last: {last}")


def stop(proc: Daemon, sig: int = signal.SIGTERM) -> int:
    return stop_daemon(proc, sig)[0]


@contextlib.asynccontextmanager
async def daemon(setup: Setup) -> AsyncIterator[Daemon]:
    proc = start(setup)
    try:
        await healthy(setup, proc)
        yield proc
    finally:
        stop(proc)


def writer(setup: Setup, rows: int, stop_at: threading.Event) -> threading.Thread:
    """Commits one row change after another, as an application would."""

    def write() -> None:
        conn = setup.server.connect(setup.app)
        try:
            with conn.cursor() as cur:
                for i in range(1, rows + 1):
                    cur.execute("INSERT INTO patient VALUES (%s, %s, %s)", (i, f"p{i}", i % 5))
                    if i % 3 == 0:
                        cur.execute("UPDATE patient SET name = %s WHERE id = %s", (f"q{i}", i - 1))
                    time.sleep(0.005)
                    if stop_at.is_set():
                        break
        finally:
            conn.close()

    thread = threading.Thread(target=write)
    thread.start()
    return thread

"""`cdc serve` as real processes for the fan-out tests, and stream clients that behave as
EventSource does: reconnect with Last-Event-ID whenever a stream ends or breaks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.http_support import stream
from tests.support import STARTED, Daemon, cdc_command


def start_serve(
    dsn: str, port: int, *args: str, env: dict[str, str] | None = None, python: tuple[str, ...] = ()
) -> Daemon:
    """`cdc serve --http 127.0.0.1:port` over the event database of `dsn`."""
    log_path = Path(tempfile.mkstemp(prefix="cdc-serve-", suffix=".log")[1])
    command = cdc_command("serve", "--http", f"127.0.0.1:{port}", *args)
    command[1:1] = python  # interpreter options (-X importtime)
    with open(log_path, "w") as log:
        proc = Daemon(
            command,
            env=dict(os.environ, CDC_DSN=dsn, **(env or {})),
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
    proc.log_path = log_path
    STARTED.append(proc)
    return proc


async def health(port: int, proc: Daemon | None = None, timeout: float = 60) -> dict[str, Any]:
    """/health of a `cdc serve` once it answers 200."""
    deadline = time.monotonic() + timeout
    last: object = None
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"cdc serve exited {proc.returncode}:\n{proc.log()[-3000:]}")
            try:
                async with session.get(f"http://127.0.0.1:{port}/health") as response:
                    body = await response.json()
                    if response.status == 200:
                        return dict(body)
                    last = (response.status, body)
            except aiohttp.ClientError as error:
                last = error
            await asyncio.sleep(0.1)
    log = proc.log()[-3000:] if proc is not None else ""
    raise AssertionError(f"/health on port {port} never said 200 in {timeout} s: {last}\n{log}")


@dataclass
class Client:
    """A stream client collecting event ids; `urls` are tried in turn at each reconnection
    (a load balancer sending it to another worker), `switch_every` events at most each."""

    urls: list[str]
    token: str | None = None
    switch_every: int | None = None
    ids: list[int] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)
    connections: int = 0
    last: int | None = 0

    async def run(self, until: int) -> None:
        """Until `until` events have arrived."""
        async with aiohttp.ClientSession() as session:
            while len(self.ids) < until:
                url = self.urls[self.connections % len(self.urls)]
                self.connections += 1
                with contextlib.suppress(aiohttp.ClientError, AssertionError):
                    await self._read(session, url, until)
                if len(self.ids) < until:
                    await asyncio.sleep(0.1)  # EventSource's retry

    async def _read(self, session: aiohttp.ClientSession, url: str, until: int) -> None:
        taken = 0
        async with stream(session, url, last_event_id=self.last, token=self.token) as sse:
            while len(self.ids) < until:
                frame = await sse.frame()
                if frame is None:
                    return
                if frame.get("event") == "reset":
                    self.resets.append(frame["data"])
                    continue
                if "data" in frame:
                    self.ids.append(int(frame["id"]))
                    taken += 1
                if "id" in frame:
                    self.last = int(frame["id"])
                if self.switch_every is not None and taken >= self.switch_every:
                    return


async def collect(clients: list[Client], until: int, timeout: float = 120) -> None:
    """Runs the clients until each has `until` events (or fails naming how far they got)."""
    tasks = [asyncio.create_task(c.run(until)) for c in clients]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    for task in done:
        task.result()
    if pending:
        got = [len(c.ids) for c in clients]
        raise AssertionError(f"after {timeout} s the clients had {got} of {until} events")

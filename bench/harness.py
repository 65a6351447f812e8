"""What the many-client benchmarks share: the file limit, loopback source addresses, a
throwaway redis-server, `cdc` processes, `/health`, and a cheap raw SSE client.

The client is an `asyncio.Protocol` on a socket bound to a source address before its
connect (one source address has about 28,000 ephemeral ports): no HTTP library per
connection, a few attributes each, so one process holds ten thousand of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# -- the file limit and the source addresses ---------------------------------------


def raise_nofile(need: int, what: str) -> int:
    """Soft RLIMIT_NOFILE to the hard one (children inherit it); exits with what to do
    when even the hard limit is below `need`. Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        raise SystemExit(
            f"{what} needs about {need} open files in one process, but the hard limit here is "
            f"{hard} (ulimit -Hn).\nfix: raise it as root before starting (`ulimit -Hn {need}` in "
            f"the shell, `LimitNOFILE={need}` in a systemd unit, or `* hard nofile {need}` in "
            "/etc/security/limits.conf), or spread the clients over more processes "
            "(--workers, --client-procs)"
        )
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return int(hard if hard != resource.RLIM_INFINITY else need)


def ephemeral_ports() -> int:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(high) - int(low) + 1
    except (OSError, ValueError):
        return 28_000


def source_addresses(clients: int, per_address: int) -> list[str]:
    """127.0.0.2 and up, enough for `clients` at `per_address` each (all of 127/8 is
    loopback on Linux: nothing to configure)."""
    per_address = min(per_address, ephemeral_ports() - 1000)
    count = max(1, -(-clients // per_address))
    if count > 250:
        raise SystemExit(f"{clients} clients need {count} source addresses: use fewer")
    return [f"127.0.0.{2 + k}" for k in range(count)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- processes -----------------------------------------------------------------------


class Redis:
    """A throwaway redis-server on a free port, no persistence; SIGKILL and restart on
    the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="cdc-bench-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise SystemExit("redis-server not found (Debian's redis-server), or pass --no-bus")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--logfile", f"{self.dir}/redis.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not _answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"redis-server did not start (see {self.dir}/redis.log)")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Cdc:
    """A `python -m cdc ...` process of this tree, its output in a log file."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str] | None = None, profile: str = ""
    ) -> None:
        self.name = name
        self.args = args
        # Under cProfile (written at a clean stop), to see where a server's time goes.
        self.python = ["-m", "cProfile", "-o", profile] if profile else []
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
        self.log = Path(tempfile.mkstemp(prefix=f"cdc-bench-{name}-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Cdc:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, *self.python, "-m", "cdc", *self.args],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL after `timeout`; descendants still running 10 s after
        the parent ended (serve workers that outlived their supervisor) are killed too."""
        if not self.alive():
            return
        assert self.proc is not None
        children = tree(self.proc.pid)[1:]
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        _reap(children, 10.0)


def _reap(pids: list[int], grace: float) -> None:
    import psutil

    alive = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            alive.append(psutil.Process(pid))
    _, left = psutil.wait_procs(alive, timeout=grace)
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def run_cdc(*args: str) -> None:
    """A short `cdc` command (init), failing loudly."""
    out = subprocess.run(
        [sys.executable, "-m", "cdc", *args],
        env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"cdc {args[0]} failed:\n{out.stdout}{out.stderr}")


def health(url: str) -> dict[str, Any] | None:
    """`/health`'s JSON (whatever its status code), None when nothing answers."""
    try:
        with urllib.request.urlopen(url + "/health", timeout=3) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as error:
        with contextlib.suppress(ValueError):
            return dict(json.loads(error.read()))
        return {}
    except (OSError, ValueError):
        return None


def wait_for(what: str, check: Callable[[], bool], timeout: float, proc: Cdc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and not proc.alive():
            raise SystemExit(f"{proc.name} exited while waiting until {what}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            tail = f":\n{proc.tail()}" if proc is not None else ""
            raise SystemExit(f"timed out waiting until {what}{tail}")
        time.sleep(0.1)


def cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def tree(pid: int) -> list[int]:
    """A process and its descendants (a `cdc serve --workers` parent and its workers)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        return [pid, *(p.pid for p in parent.children(recursive=True))]
    except psutil.Error:
        return []


def rss(pids: list[int]) -> int:
    import psutil

    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += psutil.Process(pid).memory_info().rss
    return total


# -- the SSE client ----------------------------------------------------------------

# An SSE frame's id line (with an empty line right after it: an id-only frame, which
# moves the last id without an event), or a reset frame (`event: reset`, no id line).
FRAME = re.compile(rb"(?:^|\n)(?:id: (\d+)\n((?=\n))?|event: reset\ndata: ([^\n]*)\n)")
T_FIELD = re.compile(rb'"t": ?"?([0-9.]+)')


class SseClient(asyncio.Protocol):
    """One raw `GET /stream` connection: counts events and checks their ids follow on.

    `expected` is the id of the last event dealt with (None before the first); every id
    that is not `expected + 1` counts in `bad`. A `sample` client also times each event
    (now minus the `t` the writer put into the row). `ids` (when kept) is every id
    received, in order, across reconnects. `on_lost` is called when the connection ends.
    """

    __slots__ = (
        "bad", "count", "expected", "ids", "latencies", "on_lost", "ready", "resets",
        "rest", "sample", "status", "transport",
    )  # fmt: skip

    def __init__(self, sample: bool = False, keep_ids: bool = False) -> None:
        self.sample = sample
        self.ids: array[int] | None = array("q") if keep_ids else None
        self.latencies: list[float] = []
        self.expected: int | None = None
        self.count = 0
        self.bad = 0
        self.resets: list[bytes] = []
        self.rest = b""
        self.status = 0  # the HTTP status, once read
        self.ready: asyncio.Future[bool] | None = None
        self.transport: asyncio.Transport | None = None
        self.on_lost: Callable[[SseClient], None] | None = None

    def request(self, host: str, last_id: int | None) -> bytes:
        resume = f"Last-Event-ID: {last_id}\r\n" if last_id is not None else ""
        return (
            f"GET /stream HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
            f"Connection: close\r\n{resume}\r\n"
        ).encode()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.rest = b""
        self.status = 0

    def data_received(self, data: bytes) -> None:
        now = time.time()
        text = self.rest + data if self.rest else data
        if not self.status:
            end = text.find(b"\r\n\r\n")
            if end < 0:
                self.rest = text
                return
            self.status = int(text[9:12])
            if self.status != 200:
                self._ready(False)
                assert self.transport is not None
                self.transport.close()
                return
            text = text[end + 4 :]
        cut = text.rfind(b"\n\n")
        if cut < 0:
            self.rest = text
            return
        self.rest = text[cut + 2 :]
        if self.ready is not None:
            self._ready(True)  # the first frame (the `retry:` hint) has arrived
        for match in FRAME.finditer(text, 0, cut + 2):
            number = match.group(1)
            if number is None:  # a reset: the stream continues from first_id
                self.resets.append(match.group(3))
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    self.expected = int(json.loads(match.group(3))["first_id"]) - 1
                continue
            event = int(number)
            if match.group(2) is not None:  # id only: where to resume from, not an event
                self.expected = event
                continue
            if self.expected is not None and event != self.expected + 1:
                self.bad += 1
            self.expected = event
            self.count += 1
            if self.ids is not None:
                self.ids.append(event)
        if self.sample:
            self.latencies.extend(now - float(t) for t in T_FIELD.findall(text, 0, cut + 2))

    def _ready(self, ok: bool) -> None:
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(ok)
        self.ready = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._ready(False)
        if self.on_lost is not None:
            self.on_lost(self)


async def open_stream(
    client: SseClient, source: str, host: str, port: int, last_id: int | None, timeout: float
) -> bool:
    """Connects `client` from `source` to host:port and waits for its first frame."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # The port is chosen at connect, by the whole 4-tuple: more than one address's worth.
        sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24), 1)
        sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
    except (OSError, TimeoutError):
        sock.close()
        return False
    client.ready = loop.create_future()
    ready = client.ready
    transport, _ = await loop.create_connection(lambda: client, sock=sock)
    transport.write(client.request(host, last_id))
    try:
        return await asyncio.wait_for(ready, timeout)
    except TimeoutError:
        transport.abort()
        return False


def jitter(low: float, high: float) -> float:
    return random.uniform(low, high)


class LineProcess:
    """A helper process of a benchmark driven by lines on its stdin and stdout."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip

    def ask(self, line: str | None) -> str:
        """Sends `line` (unless None) and returns the next line it prints."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if line is not None:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise SystemExit(f"a helper process exited (code {self.proc.wait()})")
        return answer.strip()

    def quit(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            with contextlib.suppress(OSError):
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def listeners(pid: int, port: int) -> list[int]:
    """The descendants of `pid` listening on `port` (the workers of `cdc serve
    --workers`, each its own SO_REUSEPORT socket), not helper processes."""
    import psutil

    found = []
    for child in tree(pid)[1:]:
        with contextlib.suppress(psutil.Error):
            sockets = psutil.Process(child).net_connections(kind="tcp")
            if any(s.status == psutil.CONN_LISTEN and s.laddr.port == port for s in sockets):
                found.append(child)
    return found

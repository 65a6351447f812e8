"""Stream benchmark: commit-to-client latency and memory per idle client.

    python bench/stream.py [--rate 500] [--seconds 10] [--clients 1,100,1000]

Starts a throwaway MariaDB and three kinds of process, so that no two compete inside one
interpreter:

- the server (`--role server`): the real hub, History and aiohttp server, plus a writer
  thread doing what the daemon does: commit each event to the event table (one
  transaction each, at a steady rate), then hand it to the hub;
- the clients (`--role clients`): N raw SSE connections; a sample of them (the probes)
  time every event, the others only drain their socket;
- this driver: starts them, measures, prints.

Latency is from just before the event's INSERT (its `t`) to the moment a probe reads its
frame, so it includes the commit itself. Memory per idle client is the server's RSS
growth with N idle connections, divided by N. Figures depend on the machine: they are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T_FIELD = re.compile(rb'"t": ?([0-9.]+)')
DB = "bench_stream"


# -- the server process ------------------------------------------------------------


def serve(port: int, mysql_port: int) -> None:
    import pymysql
    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))

    from cdc.models import CaptureState, CaptureStatus, StoredEvent
    from cdc.serve import app
    from cdc.serve.hub import Hub
    from cdc.settings import Dsn, HttpSettings
    from cdc.store.reader import History

    connect = {"host": "127.0.0.1", "port": mysql_port, "user": "root", "database": DB}
    dsn = Dsn.parse(f"mysql://root@127.0.0.1:{mysql_port}/{DB}")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        conn = pymysql.connect(**connect, autocommit=True)
        with conn.cursor() as cur:
            cur.execute("SELECT COALESCE(MAX(id), 0) FROM event")
            last = int(cur.fetchone()[0])  # type: ignore[index]
        hub = Hub(last_id=last)
        history = History(dsn)
        settings = HttpSettings(listen=f"127.0.0.1:{port}", max_clients=20_000)
        status = CaptureStatus(state=CaptureState.CAPTURING, lag_seconds=0.0)
        http = await app.start(settings, hub, history, lambda: status)
        print("listening", flush=True)

        def write(count: int, rate: float) -> None:
            nonlocal last
            start = time.perf_counter()
            with conn.cursor() as cur:
                for k in range(count):
                    delay = start + k / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    last += 1
                    data = json.dumps({"after": {"id": last, "t": time.time(), "name": "x" * 80}})
                    stamp = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
                    event = StoredEvent(
                        last, stamp, "7", "CREATE", "bhima", "patient", str(last), data, "b"
                    )
                    cur.execute(
                        "INSERT INTO event (id, timestamp, user_id, type, schema_name,"
                        " table_name, row_id, data, txn, context)"
                        " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                        event,
                    )
                    loop.call_soon_threadsafe(hub.publish, [event])

        while True:
            words = (await loop.run_in_executor(None, sys.stdin.readline)).split()
            if not words or words[0] == "quit":
                break
            if words[0] == "write":
                await asyncio.to_thread(write, int(words[1]), float(words[2]))
                print("written", flush=True)
        await http.stop()
        await history.close()
        conn.close()

    asyncio.run(main())


# -- the clients process -----------------------------------------------------------


class _Client(asyncio.Protocol):
    def __init__(self, host: str, probe: bool, ready: asyncio.Future[None] | None) -> None:
        self.host = host
        self.probe = probe
        self.ready = ready
        self.rest = b""
        self.latencies: list[float] = []
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(f"GET /stream HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.received += len(data)
        if self.ready is not None and b"retry:" in data:
            self.ready.set_result(None)
            self.ready = None
        if self.probe:
            text = self.rest + data
            cut = text.rfind(b"\n\n") + 2
            self.latencies.extend(now - float(t) for t in T_FIELD.findall(text, 0, cut))
            self.rest = text[cut:]


def clients(url: str, count: int, probes: int) -> None:
    host, port = url.removeprefix("http://").split(":")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        every = max(1, count // max(probes, 1))
        made: list[_Client] = []
        waits = []
        probing = 0
        for n in range(count):
            ready = loop.create_future()
            probe = probing < probes and n % every == 0
            probing += probe
            client = _Client(host, probe=probe, ready=ready)
            await loop.create_connection(lambda c=client: c, host, int(port))  # type: ignore[misc]
            made.append(client)
            waits.append(ready)
        await asyncio.gather(*waits)
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        probed = [c for c in made if c.probe]
        result = {
            "latencies": [x for c in probed for x in c.latencies],
            "per_probe": [len(c.latencies) for c in probed],
            "bytes": sum(c.received for c in made),
        }
        print(json.dumps(result), flush=True)

    asyncio.run(main())


# -- the driver --------------------------------------------------------------------


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _expect(proc: subprocess.Popen[str], word: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(word):
        raise RuntimeError(f"expected {word!r}, got {line!r}")
    return line


def _send(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def _cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _rss(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


def drive(options: argparse.Namespace) -> None:
    from cdc._testing.mariadb import MariaDB, free_port
    from cdc.settings import Dsn
    from cdc.store.schema import init_schema

    with MariaDB() as mariadb:
        init_schema(Dsn.parse(f"mysql://root@127.0.0.1:{mariadb.port}/{DB}"))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        srv = _spawn("--role", "server", "--port", str(port), "--mysql-port", str(mariadb.port))
        _expect(srv, "listening")
        try:
            # Memory first, on a fresh server: RSS with N idle clients against none.
            time.sleep(0.5)
            before = _rss(srv.pid)
            idle = _spawn(
                "--role", "clients", "--url", url, "--count", str(options.idle), "--probes", "0"
            )  # fmt: skip
            _expect(idle, "ready")
            time.sleep(1.0)
            after = _rss(srv.pid)
            _send(idle, "stop")
            _expect(idle, "{")
            idle.wait()
            per_client = (after - before) / options.idle

            rows = []
            for count in options.clients:
                probes = min(count, options.probes)
                group = _spawn(
                    "--role", "clients", "--url", url, "--count", str(count),
                    "--probes", str(probes),
                )  # fmt: skip
                _expect(group, "ready")
                time.sleep(0.5)
                events = int(options.rate * options.seconds)
                cpu, client_cpu = _cpu(srv.pid), _cpu(group.pid)
                _send(srv, f"write {events} {options.rate}")
                _expect(srv, "written")
                busy = (_cpu(srv.pid) - cpu) / options.seconds
                client_busy = (_cpu(group.pid) - client_cpu) / options.seconds
                time.sleep(1.0)
                _send(group, "stop")
                result = json.loads(_expect(group, "{"))
                group.wait()
                latencies = sorted(x * 1000 for x in result["latencies"])
                complete = all(n == events for n in result["per_probe"])
                rows.append((count, probes, events, latencies, complete, busy, client_busy))

            # A clean stop with many streams open: how long until the process is gone.
            crowd = _spawn(
                "--role", "clients", "--url", url, "--count", str(options.shutdown_clients),
                "--probes", "0",
            )  # fmt: skip
            _expect(crowd, "ready")
            began = time.perf_counter()
            _send(srv, "quit")
            srv.wait(60)
            shutdown = time.perf_counter() - began
            _send(crowd, "stop")
            crowd.wait(60)
        finally:
            if srv.poll() is None:
                _send(srv, "quit")
                srv.wait(30)

    print(f"stream benchmark: {options.rate:g} events/s for {options.seconds:g} s per run,")
    print(
        "latency from the event's INSERT to a client reading it (ms), on", os.cpu_count(), "cores"
    )
    print(
        f"{'clients':>8} {'probes':>7} {'events':>7} {'p50':>8} {'p99':>8} {'max':>8}"
        "  server CPU  client CPU  all received"
    )
    for count, probes, events, latencies, complete, busy, client_busy in rows:
        p50 = statistics.median(latencies)
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(
            f"{count:>8} {probes:>7} {events:>7} {p50:>8.1f} {p99:>8.1f} {latencies[-1]:>8.1f}"
            f"  {busy:>10.0%}  {client_busy:>10.0%}  {'yes' if complete else 'NO'}"
        )
    print(
        f"idle clients: {per_client / 1024:.1f} KB of server RSS per client"
        f" ({options.idle} clients: {before / 2**20:.1f} -> {after / 2**20:.1f} MB)"
    )
    print(f"clean stop with {options.shutdown_clients} streams open: {shutdown:.2f} s")
    if options.json:
        runs = [
            {"clients": count, "probes": probes, "events": events, "complete": complete,
             "p50_ms": statistics.median(lat), "p99_ms": lat[int(len(lat) * 0.99) - 1],
             "max_ms": lat[-1], "server_cpu": busy, "client_cpu": client_busy}
            for count, probes, events, lat, complete, busy, client_busy in rows
        ]  # fmt: skip
        figures = {"rate": options.rate, "seconds": options.seconds, "runs": runs,
                   "idle_clients": options.idle, "kb_per_idle_client": per_client / 1024,
                   "shutdown_clients": options.shutdown_clients, "shutdown_seconds": shutdown}  # fmt: skip
        Path(options.json).write_text(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=["driver", "server", "clients"], default="driver")
    parser.add_argument("--rate", type=float, default=500.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument(
        "--clients",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 100, 1000],
        help="connected clients in each run",
    )
    parser.add_argument("--probes", type=int, default=50, help="clients that time events")
    parser.add_argument("--idle", type=int, default=1000, help="idle clients for the RSS figure")
    parser.add_argument(
        "--shutdown-clients", type=int, default=3000, help="streams open for the stop timing"
    )
    parser.add_argument("--json", help="also write the figures to this file (for bench/run.py)")
    parser.add_argument("--port", type=int)
    parser.add_argument("--mysql-port", type=int)
    parser.add_argument("--url")
    parser.add_argument("--count", type=int)
    options = parser.parse_args()
    if options.role == "server":
        serve(options.port, options.mysql_port)
    elif options.role == "clients":
        clients(options.url, options.count, options.probes)
    else:
        drive(options)


if __name__ == "__main__":
    main()

"""Fan-out benchmark: tens of thousands of SSE clients, every event to every client.

    python bench/fanout.py [--clients 40000] [--workers 3] [--rates 1,auto] [--seconds 30]
    python bench/fanout.py --no-bus --clients 2000 --seconds 10      # cdc run's own HTTP

Starts a throwaway MariaDB, a throwaway redis-server on a free port, `cdc init`,
`cdc run --bus redis://...` (capture) and `cdc serve --bus ... --workers N` (HTTP only,
one port, fed through the Redis stream). With `--no-bus` (what exists before the bus
is merged) the clients read `cdc run`'s own HTTP instead, one process serving all.

The clients are several processes (`--client-procs`), each holding thousands of raw
asyncio connections bound to loopback source addresses 127.0.0.2 and up (one address
has about 28,000 ephemeral ports). Every client counts its events and checks that each
id follows the one before (delivery and order); one in `--sample-every` also times
every event: the writer puts `time.time()` taken just before its committing INSERT
into the row (column `t`), and the client subtracts it from the time it reads the
frame, the same clock on one machine (so latency includes the commit, capture,
the bus and the serving). One INSERT commits one event.

For each rate (events/s; `auto` doubles from `--auto-start` while the machine keeps
up: every event to every client, p99 under 1 s) it prints the events sent, whether
all reached every client (and how many are missing), p50/p99 latency, and the CPU of
the serving, capture and client processes; before, the server memory per idle client
(RSS of the serving processes with the clients connected and idle, minus without,
divided by the clients). Targets are printed beside the figures, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

APP = "bench_fanout"
TARGET_P99_MS = 1000.0
TARGET_KB = 20.0
CENTRIFUGO_KB = 27.0


# -- the clients process ------------------------------------------------------------


def clients(options: argparse.Namespace) -> None:
    harness.raise_nofile(options.count + 100, f"a client process of {options.count} connections")
    sources = options.sources.split(",")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        made = [
            harness.SseClient(sample=n % options.sample_every == 0) for n in range(options.count)
        ]
        lost = 0

        def on_lost(_client: harness.SseClient) -> None:
            nonlocal lost
            lost += 1

        gate = asyncio.Semaphore(options.inflight)

        async def connect(n: int, client: harness.SseClient) -> bool:
            async with gate:
                source = sources[(options.first + n) % len(sources)]
                ok = await harness.open_stream(client, source, options.host, options.port, None, 60)
            client.on_lost = on_lost
            return ok

        results = await asyncio.gather(*(connect(n, c) for n, c in enumerate(made)))
        up = [c for c, ok in zip(made, results, strict=True) if ok]
        statuses = sorted({c.status for c, ok in zip(made, results, strict=True) if not ok})
        print(f"ready {len(up)} {len(made) - len(up)} {statuses}", flush=True)
        while True:
            words = (await loop.run_in_executor(None, sys.stdin.readline)).split()
            if not words or words[0] == "quit":
                break
            if words[0] == "mark":
                low = int(words[1])
                for c in up:
                    c.count = c.bad = 0
                    c.latencies = []
                    if c.expected is None:
                        c.expected = low  # live from the head: nothing arrived yet
                print("marked", flush=True)
            elif words[0] == "progress":
                # Done: has `high`, or lost (it never will; the report says so), or with
                # `fresh`, has had no event since it connected.
                high, fresh = int(words[1]), len(words) > 2
                done = (
                    c.transport is None or (fresh if c.expected is None else c.expected >= high)
                    for c in up
                )
                print(sum(done), flush=True)
            elif words[0] == "report":
                print(json.dumps(_report(up, int(words[1]), int(words[2]), lost)), flush=True)

    asyncio.run(main())


def _report(up: list[harness.SseClient], low: int, high: int, lost: int) -> dict[str, Any]:
    want = high - low
    latencies = sorted(x for c in up if c.sample for x in c.latencies)
    if len(latencies) > 50_000:  # an even stride keeps the quantiles
        step = len(latencies) / 50_000
        latencies = [latencies[int(k * step)] for k in range(50_000)]
    return {
        "clients": len(up),
        "complete": sum(c.expected == high and c.count == want and not c.bad for c in up),
        "missing": sum(max(0, want - c.count) for c in up),
        "disorder": sum(c.bad for c in up),
        "extra": sum(max(0, c.count - want) for c in up),
        "lost": lost,
        "latencies": latencies,
    }


# -- the driver ----------------------------------------------------------------------


class Group(harness.LineProcess):
    """One clients process and its line protocol."""

    def __init__(self, options: argparse.Namespace, port: int, count: int, first: int) -> None:
        self.count = count
        super().__init__(
            [__file__, "--role", "clients", "--host", "127.0.0.1", "--port", str(port),
             "--count", str(count), "--first", str(first), "--sources",
             ",".join(options.source_list), "--sample-every", str(options.sample_every),
             "--inflight", str(options.inflight)]
        )  # fmt: skip


class Writer:
    """Commits one row (one event) at a time into the captured table at a steady rate."""

    def __init__(self, port: int) -> None:
        import pymysql

        self.conn = pymysql.connect(
            host="127.0.0.1", port=port, user="root", database=APP, autocommit=True
        )

    def write(self, count: int, rate: float) -> float:
        """Seconds it took; behind schedule it writes without pausing."""
        pad = "x" * 80
        started = time.perf_counter()
        with self.conn.cursor() as cur:
            for k in range(count):
                delay = started + k / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                cur.execute("INSERT INTO tick (t, pad) VALUES (%s, %s)", (time.time(), pad))
        return time.perf_counter() - started


class Setup:
    """The servers and the `cdc` processes of a run, and the pids to measure."""

    def __init__(self, options: argparse.Namespace, mysql_port: int) -> None:
        self.options = options
        self.dsn = f"mysql://root@127.0.0.1:{mysql_port}/cdc"
        self.redis: harness.Redis | None = None
        self.capture_url = f"http://127.0.0.1:{harness.free_port()}"
        env = {"CDC_LOG_LEVEL": "warning", "CDC_MAX_CLIENTS": str(options.clients + 100)}
        capture_args = ["run", "--dsn", self.dsn, "--include", f"{APP}.*",
                        "--http", self.capture_url.removeprefix("http://")]  # fmt: skip
        self.serve: harness.Cdc | None = None
        if options.bus:
            self.redis = harness.Redis().start()
            capture_args += ["--bus", self.redis.url]
            self.url = f"http://127.0.0.1:{harness.free_port()}"
            self.serve = harness.Cdc(
                "serve",
                ["serve", "--dsn", self.dsn, "--bus", self.redis.url,
                 "--http", self.url.removeprefix("http://"), "--workers", str(options.workers)],
                env,
            )  # fmt: skip
        else:
            self.url = self.capture_url
        self.capture = harness.Cdc(
            "capture", capture_args, env, "" if options.bus else options.profile
        )

    def start(self) -> None:
        harness.run_cdc("init", "--dsn", self.dsn)
        self.capture.start()
        harness.wait_for(
            "cdc run captures",
            lambda: (harness.health(self.capture_url) or {}).get("state") == "capturing",
            120,
            self.capture,
        )
        if self.serve is not None:
            serve = self.serve.start()
            workers = self.options.workers
            port = int(self.url.rsplit(":", 1)[1])
            harness.wait_for(
                f"cdc serve answers with {workers} workers",
                lambda: (
                    harness.health(self.url) is not None
                    and len(harness.listeners(serve.pid, port)) == workers
                ),
                120,
                serve,
            )

    def serving(self) -> list[int]:
        return harness.tree(self.serve.pid) if self.serve else [self.capture.pid]

    def stop(self) -> None:
        for proc in (self.serve, self.capture):
            if proc is not None:
                proc.stop()
        if self.redis is not None:
            self.redis.stop()


def _max_id(conn: Any) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM cdc.event")
        return int(cur.fetchone()[0])


def _wait_table(conn: Any, high: int, setup: Setup) -> None:
    harness.wait_for(f"event {high} is in the event table", lambda: _max_id(conn) >= high, 120,
                     setup.capture)  # fmt: skip


def _reached(groups: list[Group], high: int, timeout: float, fresh: bool = False) -> bool:
    """Until every connected client has event `high` (or `timeout` seconds); `fresh`:
    a client that has had no event since it connected counts."""
    connected = sum(g.count for g in groups)
    deadline = time.monotonic() + timeout
    ask = f"progress {high}" + (" fresh" if fresh else "")
    while True:
        if sum(int(g.ask(ask)) for g in groups) >= connected:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def _phase(
    options: argparse.Namespace, setup: Setup, groups: list[Group], conn: Any, rate: float,
    seconds: float,
) -> dict[str, Any]:  # fmt: skip
    low = _max_id(conn)
    # A phase that was not sustained may still be arriving: let it, so that it does not
    # count as this phase's disorder.
    _reached(groups, low, options.settle, fresh=True)
    for g in groups:
        if g.ask(f"mark {low}") != "marked":
            raise SystemExit("a clients process did not mark")
    count = max(1, round(rate * seconds))
    serving, capture = setup.serving(), [setup.capture.pid]
    client_pids = [g.proc.pid for g in groups]
    cpu = [harness.cpu_seconds(p) for p in (serving, capture, client_pids)]
    began = time.perf_counter()
    writing = Writer(options.mysql_port).write(count, rate)
    high = low + count
    written = time.perf_counter()
    _wait_table(conn, high, setup)
    # How long after the last commit its event was in the table: capture's own delay
    # (when cdc run also serves, its busy event loop can starve the capture thread).
    table_lag = time.perf_counter() - written
    _reached(groups, high, options.drain)
    wall = time.perf_counter() - began
    used = [
        harness.cpu_seconds(p) - c
        for p, c in zip((serving, capture, client_pids), cpu, strict=True)
    ]
    reports = [json.loads(g.ask(f"report {low} {high}")) for g in groups]
    latencies = sorted(x * 1000 for r in reports for x in r["latencies"])
    result = {
        "rate": rate,
        "achieved_rate": count / writing,
        "events": count,
        "clients": sum(r["clients"] for r in reports),
        "complete": sum(r["complete"] for r in reports),
        "missing": sum(r["missing"] for r in reports),
        "disorder": sum(r["disorder"] for r in reports),
        "extra": sum(r["extra"] for r in reports),
        "lost": sum(r["lost"] for r in reports),
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else None,
        "max_ms": latencies[-1] if latencies else None,
        "samples": len(latencies),
        "table_lag_s": table_lag,
        "deliveries_per_s": count * sum(r["clients"] for r in reports) / wall,
        "serve_cpu": used[0] / wall,
        # Without the bus one `cdc run` captures and serves: its CPU is the serve column.
        "capture_cpu": used[1] / wall if setup.serve is not None else None,
        "client_cpu": used[2] / wall,
    }
    result["all_delivered"] = result["complete"] == result["clients"] and not result["extra"]
    result["sustained"] = (
        result["all_delivered"]
        and result["p99_ms"] is not None
        and result["p99_ms"] < TARGET_P99_MS
        and result["achieved_rate"] >= 0.9 * rate
    )
    return result


def _rates(options: argparse.Namespace) -> list[str]:
    return [r.strip() for r in options.rates.split(",") if r.strip()]


def drive(options: argparse.Namespace) -> dict[str, Any]:
    from cdc._testing.mariadb import MariaDB

    _check_limits(options)
    procs = options.client_procs or max(1, -(-options.clients // 10_000))
    per_group = [options.clients // procs + (k < options.clients % procs) for k in range(procs)]
    with MariaDB() as mariadb:
        options.mysql_port = mariadb.port
        conn = mariadb.connect()
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {APP}")
            cur.execute(
                f"CREATE TABLE {APP}.tick (id INT PRIMARY KEY AUTO_INCREMENT, t DOUBLE NOT NULL,"
                " pad VARCHAR(100))"
            )
        setup = Setup(options, mariadb.port)
        groups: list[Group] = []
        try:
            setup.start()
            Writer(mariadb.port).write(3, 10.0)  # warm: the pipeline has carried events
            _wait_table(conn, 3, setup)
            time.sleep(1.0)
            before = harness.rss(setup.serving())
            began = time.perf_counter()
            port = int(setup.url.rsplit(":", 1)[1])
            first = 0
            for count in per_group:
                groups.append(Group(options, port, count, first))
                first += count
            answers = [g.ask(None).split(maxsplit=3) for g in groups]
            connect_s = time.perf_counter() - began
            connected = sum(int(a[1]) for a in answers)
            failed = sum(int(a[2]) for a in answers)
            for g, a in zip(groups, answers, strict=True):
                g.count = int(a[1])
            statuses = {s for a in answers for s in json.loads(a[3])}
            time.sleep(3.0)  # idle, settled
            after = harness.rss(setup.serving())
            phases = []
            for rate in _rates(options):
                if rate == "auto":
                    phases += _auto(options, setup, groups, conn)
                else:
                    phases.append(
                        _phase(options, setup, groups, conn, float(rate), options.seconds)
                    )
        finally:
            for g in groups:
                g.quit()
            setup.stop()
    result = {
        "clients": options.clients,
        "connected": connected,
        "failed": failed,
        "failed_statuses": sorted(statuses),
        "connect_seconds": connect_s,
        "mode": f"cdc serve --workers {options.workers} via Redis"
        if options.bus
        else "cdc run HTTP",
        "workers": options.workers if options.bus else 1,
        "client_procs": procs,
        "sources": options.source_list,
        "rss_before": before,
        "rss_after": after,
        "kb_per_client": (after - before) / max(connected, 1) / 1024,
        "phases": phases,
    }
    _print(result)
    return result


def _auto(
    options: argparse.Namespace, setup: Setup, groups: list[Group], conn: Any
) -> list[dict[str, Any]]:
    """Doubles the rate while it is sustained; when the first rate is not, halves it
    until one is (or below 1 event/s): the highest sustained rate, bracketed."""
    phases: list[dict[str, Any]] = []
    rate = options.auto_start
    for _ in range(options.auto_steps):
        phase = _phase(options, setup, groups, conn, rate, options.auto_seconds)
        phase["auto"] = True
        phases.append(phase)
        going_down = not phases[0]["sustained"]
        if going_down and (phase["sustained"] or rate / 2 < 1):
            break
        if not going_down and not phase["sustained"]:
            break
        rate = rate / 2 if going_down else rate * 2
    return phases


def _check_limits(options: argparse.Namespace) -> None:
    servers = options.workers if options.bus else 1
    # SO_REUSEPORT spreads connections by hash: leave a worker room for more than its share.
    per_server = int(options.clients / servers * (1.15 if servers > 1 else 1.0)) + 200
    what = (
        f"a cdc serve worker of {servers} holding {options.clients} clients"
        if options.bus
        else f"cdc run serving {options.clients} clients alone (--no-bus)"
    )
    harness.raise_nofile(per_server, what)
    options.source_list = harness.source_addresses(options.clients, options.per_address)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _share(value: float | None) -> str:
    return "(same)" if value is None else f"{value:.0%}"


def _print(r: dict[str, Any]) -> None:
    print(
        f"fanout benchmark: {r['clients']} SSE clients via {r['mode']}, {r['client_procs']} "
        f"client processes from {r['sources'][0]}..{r['sources'][-1]}, on {os.cpu_count()} cores"
    )
    print(
        f"connected: {r['connected']} of {r['clients']} in {r['connect_seconds']:.1f} s"
        + (f" ({r['failed']} failed, HTTP {r['failed_statuses']})" if r["failed"] else "")
    )
    print(
        f"{'rate/s':>7} {'sent':>6} {'all delivered':>13} {'missing':>8} {'disorder':>8}"
        f" {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'serve CPU':>9} {'capture CPU':>11}"
        f" {'client CPU':>10} {'frames/s':>9} {'table lag':>9}"
    )
    for p in r["phases"]:
        rate = f"{p['rate']:g}" + ("*" if p["achieved_rate"] < 0.9 * p["rate"] else "")
        print(
            f"{rate:>7} {p['events']:>6} {'yes' if p['all_delivered'] else 'NO':>13}"
            f" {p['missing']:>8} {p['disorder']:>8} {_ms(p['p50_ms']):>8} {_ms(p['p99_ms']):>8}"
            f" {_ms(p['max_ms']):>8} {p['serve_cpu']:>9.0%} {_share(p['capture_cpu']):>11}"
            f" {p['client_cpu']:>10.0%} {p['deliveries_per_s']:>9,.0f} {p['table_lag_s']:>8.2f}s"
        )
    print(
        "table lag: from the last commit of a phase until its event was in the event table"
        " (capture's delay, before any serving)"
    )
    if any(p["achieved_rate"] < 0.9 * p["rate"] for p in r["phases"]):
        print("* the writer fell behind that rate (the figures are at the rate it reached)")
    slow = next((p for p in r["phases"] if p["rate"] == 1.0), None)
    if slow is not None and slow["p99_ms"] is not None:
        met = "met" if slow["p99_ms"] < TARGET_P99_MS and slow["all_delivered"] else "NOT met"
        print(
            f"p99 at 1 event/s: {slow['p99_ms']:.1f} ms (target < {TARGET_P99_MS:.0f} ms at "
            f"40000 clients: {met} at {r['connected']} clients)"
        )
    sustained = [p["rate"] for p in r["phases"] if p["sustained"]]
    print(
        "highest rate sustained (every event to every client, p99 < 1 s): "
        + (f"{max(sustained):g} events/s" if sustained else "none")
    )
    kb = r["kb_per_client"]
    print(
        f"server memory per idle client: {kb:.1f} KB (target < {TARGET_KB:.0f} KB; Centrifugo "
        f"{CENTRIFUGO_KB:.0f} KB): {'met' if kb < TARGET_KB else 'NOT met'}"
        f" (serving RSS {r['rss_before'] / 2**20:.0f} -> {r['rss_after'] / 2**20:.0f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=["driver", "clients"], default="driver")
    parser.add_argument("--clients", type=int, default=40_000, help="SSE clients in all")
    parser.add_argument("--workers", type=int, default=3, help="cdc serve --workers")
    parser.add_argument(
        "--no-bus", dest="bus", action="store_false",
        help="no Redis, no cdc serve: the clients read cdc run's own HTTP",
    )  # fmt: skip
    parser.add_argument("--rates", default="1,auto", help="events/s per phase; auto: doubling")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of a fixed-rate phase")
    parser.add_argument("--auto-start", type=float, default=8.0, help="first rate of auto")
    parser.add_argument("--auto-seconds", type=float, default=10.0, help="length of an auto phase")
    parser.add_argument("--auto-steps", type=int, default=8, help="most auto phases")
    parser.add_argument("--drain", type=float, default=15.0, help="wait for delivery after a phase")
    parser.add_argument(
        "--settle", type=float, default=120.0, help="most wait for a late phase before the next"
    )
    parser.add_argument("--client-procs", type=int, default=0, help="default: 1 per 10,000")
    parser.add_argument(
        "--per-address", type=int, default=20_000, help="clients per source address"
    )
    parser.add_argument("--sample-every", type=int, default=100, help="1 in N clients times events")
    parser.add_argument("--inflight", type=int, default=200, help="connects at once per process")
    parser.add_argument("--json", help="also write the figures to this file (for bench/run.py)")
    parser.add_argument(
        "--profile", default="", help="with --no-bus: cProfile cdc run into this file"
    )
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--sources", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.role == "clients":
        clients(options)
        return
    result = drive(options)
    if options.json:
        Path(options.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

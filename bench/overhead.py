"""What capture costs the application: the same write workload on the same server with
(a) the binlog on and no capture, (b) binlog capture running, (c) capture triggers
installed and the mover running.

    python bench/overhead.py [--seconds 15] [--clients 4]

Prints, for each mode, the application's write throughput (transactions of one INSERT
and one UPDATE, from `--clients` connections) and the CPU the server and the daemon
used per 1,000 transactions, with the ratios against (a) (the median of `--rounds` runs, the modes in turn); and, for (b) and (c), the
commit-to-event latency: from the moment a probe transaction's COMMIT returns to the
moment its event is in the event table (polled every 2 ms). The throwaway server runs
with innodb_flush_log_at_trx_commit=2 and sync_binlog=0 (no fsync per commit), which
makes the triggers' extra writes weigh more than on a server that syncs every commit.
Figures depend on the machine: they are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cdc._testing.mariadb import MariaDB  # noqa: E402

APP = "bench_app"
SCHEMA = (
    f"CREATE TABLE {APP}.patient (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(80),"
    " phone VARCHAR(20), note TEXT, visits INT NOT NULL DEFAULT 0, user_id INT,"
    " updated DATETIME(3))",
    f"CREATE TABLE {APP}.probe (id INT PRIMARY KEY)",
)


@dataclass
class Phase:
    name: str
    transactions: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0
    daemon_cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.transactions / self.seconds

    def cpu_per_1000(self, which: float) -> float:
        return which / self.transactions * 1000


def _cpu(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    times = proc.cpu_times()
    return float(times.user + times.system)


def _prepare(server: MariaDB) -> None:
    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {APP}")
        cur.execute(f"CREATE DATABASE {APP}")
        cur.execute(f"USE {APP}")
        for statement in SCHEMA:
            cur.execute(statement)
        cur.execute(
            f"INSERT INTO {APP}.patient (name, phone, note) SELECT CONCAT('patient ', seq),"
            " '555-0100', REPEAT('n', 100) FROM seq_1_to_10000"
        )
    conn.close()


def _workload(server: MariaDB, seconds: float, clients: int, rate: float | None = None) -> int:
    """`clients` connections committing transactions for `seconds`, as fast as they can
    or `rate` per second in all; how many committed."""
    stop = threading.Event()
    counts = [0] * clients

    def client(index: int) -> None:
        rng = random.Random(index)
        conn = server.connect(APP)
        started = time.perf_counter()
        with conn.cursor() as cur:
            while not stop.is_set():
                if rate is not None:
                    due = started + counts[index] * clients / rate
                    if due > time.perf_counter():
                        stop.wait(due - time.perf_counter())
                        continue
                user = rng.randint(1, 50)
                conn.begin()
                cur.execute(f"SET @cdc_user_id = {user}")
                cur.execute(
                    "INSERT INTO patient (name, phone, note, user_id, updated)"
                    f" VALUES ('new patient', '555-0199', REPEAT('x', 100), {user}, NOW(3))"
                    f" /*user_id='{user}'*/"
                )
                cur.execute(
                    "UPDATE patient SET visits = visits + 1, updated = NOW(3)"
                    f" WHERE id = {rng.randint(1, 10000)} /*user_id='{user}'*/"
                )
                conn.commit()
                counts[index] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts)


def _probe(server: MariaDB, events_db: str, stop: threading.Event, out: list[float]) -> None:
    """A probe transaction every 100 ms; the time from its COMMIT to its event."""
    writer = server.connect(APP)
    reader = server.connect(events_db)
    n = 0
    try:
        while not stop.is_set():
            n += 1
            with writer.cursor() as cur:
                cur.execute(f"INSERT INTO probe VALUES ({n})")
            committed = time.perf_counter()
            deadline = committed + 30
            with reader.cursor() as cur:
                while time.perf_counter() < deadline:
                    cur.execute(
                        "SELECT 1 FROM event WHERE table_name = 'probe' AND row_id = %s", (str(n),)
                    )
                    if cur.fetchone():
                        out.append(time.perf_counter() - committed)
                        break
                    time.sleep(0.002)
            stop.wait(0.1)
    finally:
        writer.close()
        reader.close()


def _cdc(*args: str, dsn: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CDC_DSN=dsn, CDC_LOG_LEVEL="info")
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cdc", *args], env=env, stdout=out, stderr=out
        )


def _run_cdc(*args: str, dsn: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "cdc", *args],
        env=dict(os.environ, CDC_DSN=dsn),
        check=True,
        capture_output=True,
    )


def _wait_started(
    server: MariaDB, events_db: str, proc: subprocess.Popen[bytes], log: Path
) -> None:
    """Until the daemon says it captures, and a probe row's event arrives."""
    deadline = time.monotonic() + 120
    while "capture_start" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the daemon did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {APP}.probe VALUES (0)")
        while True:
            try:
                cur.execute(f"SELECT COUNT(*) FROM `{events_db}`.event WHERE table_name = 'probe'")
                if cur.fetchone()[0]:
                    break
            except Exception:  # the event table is created by the daemon
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not start capturing:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        cur.execute(f"DELETE FROM {APP}.probe")
    conn.close()


def _phase(
    server: MariaDB, name: str, seconds: float, clients: int, mode: str | None, latency_rate: float
) -> Phase:
    _prepare(server)
    events_db = f"bench_{name[1]}_cdc"
    dsn = f"mysql://root@127.0.0.1:{server.port}/{events_db}"
    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {events_db}")
    conn.close()
    proc: subprocess.Popen[bytes] | None = None
    log = Path(tempfile.mkstemp(prefix="cdc-bench-", suffix=".log")[1])
    if mode == "triggers":
        _run_cdc("init", dsn=dsn)
        _run_cdc("triggers", "install", "--include", f"{APP}.*", dsn=dsn)
    if mode is not None:
        proc = _cdc(
            "run", "--no-http", "--capture", mode, "--include", f"{APP}.*", dsn=dsn, log=log
        )
        _wait_started(server, events_db, proc, log)
    server_proc = psutil.Process(server._proc.pid)  # type: ignore[union-attr]
    daemon_proc = psutil.Process(proc.pid) if proc else None
    phase = Phase(name)
    cpu0, dcpu0, t0 = _cpu(server_proc), _cpu(daemon_proc), time.perf_counter()
    phase.transactions = _workload(server, seconds, clients)
    phase.seconds = time.perf_counter() - t0
    if proc is not None:
        _caught_up(server, events_db, proc)
    phase.server_cpu = _cpu(server_proc) - cpu0
    phase.daemon_cpu = _cpu(daemon_proc) - dcpu0
    if proc is not None:  # latency under a steady load the capture keeps up with
        stop = threading.Event()
        probe = threading.Thread(target=_probe, args=(server, events_db, stop, phase.latencies))
        probe.start()
        _workload(server, seconds, clients, rate=latency_rate)
        stop.set()
        probe.join()
    if proc is not None:
        proc.terminate()
        proc.wait(timeout=60)
    if mode == "triggers":
        _run_cdc("triggers", "remove", "--force", dsn=dsn)
    log.unlink()
    return phase


def _caught_up(server: MariaDB, events_db: str, proc: subprocess.Popen[bytes]) -> None:
    """Until every captured change is in the event table (the CPU counted is the whole
    capture of the workload, not what it had got through when the workload stopped)."""
    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {APP}.probe VALUES (-1)")
        deadline = time.monotonic() + 600
        while True:
            cur.execute(
                f"SELECT COUNT(*) FROM `{events_db}`.event WHERE table_name = 'probe' AND row_id = '-1'"
            )
            if cur.fetchone()[0]:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the daemon did not catch up")
            time.sleep(0.05)
    conn.close()


def _median(runs: list[Phase]) -> Phase:
    """The run of median throughput, with every run's latencies."""
    middle = sorted(runs, key=lambda p: p.rate)[len(runs) // 2]
    middle.latencies = [v for run in runs for v in run.latencies]
    return middle


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each mode (median)")
    parser.add_argument(
        "--latency-rate", type=float, default=500.0, help="transactions/s while latency is measured"
    )
    parser.add_argument("--json", help="also write the figures to this file (for bench/run.py)")
    args = parser.parse_args()
    modes = (
        ("(a) binlog on, no capture", None),
        ("(b) binlog capture", "binlog"),
        ("(c) triggers + mover", "triggers"),
    )
    runs: dict[str, list[Phase]] = {name: [] for name, _ in modes}
    with MariaDB() as server:
        for _ in range(args.rounds):  # the modes in turn, so that drift hits each alike
            for name, mode in modes:
                phase = _phase(server, name, args.seconds, args.clients, mode, args.latency_rate)
                runs[name].append(phase)
    phases = [_median(runs[name]) for name, _ in modes]
    base = phases[0]
    print(
        f"{args.rounds} rounds; {args.clients} clients, {args.seconds:.0f} s per mode as fast as they can (throughput, "
        f"CPU), then {args.seconds:.0f} s at {args.latency_rate:.0f} txn/s (latency); a "
        "transaction = one INSERT and one UPDATE (2 events)"
    )
    print(
        f"{'mode':<27} {'app txn/s':>10} {'ratio':>6} {'server CPU s/1k txn':>20} {'ratio':>6}"
        f" {'daemon CPU s/1k':>16} {'latency p50 ms':>15} {'p99 ms':>8}"
    )
    for phase in phases:
        server_cpu = phase.cpu_per_1000(phase.server_cpu)
        print(
            f"{phase.name:<27} {phase.rate:>10.0f} {phase.rate / base.rate:>5.2f}x"
            f" {server_cpu:>20.3f} {server_cpu / base.cpu_per_1000(base.server_cpu):>5.2f}x"
            f" {phase.cpu_per_1000(phase.daemon_cpu):>16.3f}"
            f" {_ms(phase.latencies, 0.5):>15} {_ms(phase.latencies, 0.99):>8}"
        )
    for phase in phases[1:]:
        if phase.latencies:
            print(
                f"{phase.name}: {len(phase.latencies)} probes, mean "
                f"{statistics.mean(phase.latencies) * 1000:.1f} ms"
            )
    if args.json:
        modes_out = [
            {"mode": p.name, "txn_per_s": p.rate, "ratio": p.rate / base.rate,
             "server_cpu_per_1k": p.cpu_per_1000(p.server_cpu),
             "daemon_cpu_per_1k": p.cpu_per_1000(p.daemon_cpu),
             "p50_ms": float(_ms(p.latencies, 0.5)) if p.latencies else None,
             "p99_ms": float(_ms(p.latencies, 0.99)) if p.latencies else None}
            for p in phases
        ]  # fmt: skip
        Path(args.json).write_text(json.dumps({"rounds": args.rounds, "modes": modes_out}))


if __name__ == "__main__":
    main()

"""The "Done when" of the scale-out issue, tried as a new user would: kill things
mid-stream, then check that nobody lost or doubled anything.

    python bench/soak.py [--clients 3000] [--seconds 60] [--rate 10]
    python bench/soak.py --no-bus --no-failover      # what exists before the merge

Starts a throwaway MariaDB and redis-server, `cdc init`, two capture daemons
(`cdc run --bus ...`, each its own `--server-id` and HTTP port: one becomes active, the
other standby), `cdc serve --bus ... --workers 3` (three workers behind one port), and
a few thousand SSE clients (raw asyncio connections) that resume with `Last-Event-ID`
after any disconnect. A workload commits transactions throughout (inserts, updates,
deletes of one table). Mid-stream it SIGKILLs the active capture daemon, then one
`cdc serve` worker (a child of the `--workers` parent), then Redis (restarted on the
same port two seconds later). At the end it checks, printing PASS or FAIL for each
and exiting 1 on any FAIL:

- the event table holds exactly the workload's committed changes, each once, in
  commit order;
- every client received every event of the table exactly once, in order (its ids
  equal `SELECT id FROM event ORDER BY id`), and no reset frame;
- the former standby is capturing (`/health` says `"role": "active"`);
- the `--workers` parent restarted the killed worker.

Switches for what the tree has not got yet: `--no-bus` (no Redis, no `cdc serve`: the
clients read the capture daemons' own HTTP, rotating between them), `--no-failover`
(one capture daemon, restarted after its SIGKILL as a supervisor would).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

APP = "soak"


# -- the clients process ------------------------------------------------------------


def clients(options: argparse.Namespace) -> None:
    """Clients that keep every id and come back after every disconnect."""
    harness.raise_nofile(options.count + 100, f"a client process of {options.count} connections")
    urls = [tuple(u.rsplit(":", 1)) for u in options.urls.split(",")]
    sources = options.sources.split(",")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        made = [harness.SseClient(keep_ids=True) for _ in range(options.count)]
        index = {id(c): n for n, c in enumerate(made)}
        reconnects = 0
        stopping = False
        tasks: set[asyncio.Task[None]] = set()

        async def keep_open(n: int, client: harness.SseClient, turn: int, pause: float) -> None:
            """Connects (again), trying the URLs in turn, until it is streaming. A failed
            attempt's connection_lost must not start a second loop: on_lost is off."""
            client.on_lost = None
            await asyncio.sleep(pause)
            while not stopping:
                host, port = urls[turn % len(urls)]
                last = client.expected if client.expected is not None else 0
                if await harness.open_stream(
                    client, sources[n % len(sources)], host, int(port), last, 30
                ):
                    client.on_lost = on_lost
                    return
                turn += 1
                await asyncio.sleep(harness.jitter(0.2, 1.0))

        def on_lost(client: harness.SseClient) -> None:
            nonlocal reconnects
            if stopping:
                return
            reconnects += 1
            task = loop.create_task(
                keep_open(
                    index[id(client)],
                    client,
                    random.randrange(len(urls)),
                    harness.jitter(0.05, 1.0),
                )
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        gate = asyncio.Semaphore(200)

        async def first(n: int, client: harness.SseClient) -> None:
            async with gate:
                await keep_open(n, client, n, 0.0)

        await asyncio.gather(*(first(n, c) for n, c in enumerate(made)))
        print("ready", flush=True)
        while True:
            words = (await loop.run_in_executor(None, sys.stdin.readline)).split()
            if not words or words[0] == "quit":
                stopping = True
                break
            if words[0] == "progress":
                high = int(words[1])
                print(sum(c.expected is not None and c.expected >= high for c in made), flush=True)
            elif words[0] == "check":
                expected = json.loads(Path(words[1]).read_text())
                print(json.dumps(_check(made, expected, reconnects)), flush=True)

    asyncio.run(main())


def _check(made: list[harness.SseClient], expected: list[int], reconnects: int) -> dict[str, Any]:
    want = set(expected)
    exact, problems = 0, list[str]()
    missing = doubled = disorder = 0
    for n, c in enumerate(made):
        ids = list(c.ids or [])
        if ids == expected and not c.resets:
            exact += 1
            continue
        lacking = len(want - set(ids))
        twice = len(ids) - len(set(ids))
        unordered = ids != sorted(ids)
        missing, doubled, disorder = missing + lacking, doubled + twice, disorder + unordered
        if len(problems) < 3:
            problems.append(
                f"client {n}: {len(ids)} ids, {lacking} missing, {twice} twice,"
                f" {'out of order' if unordered else 'in order'}, resets {[r.decode() for r in c.resets]}"
            )
    return {
        "clients": len(made),
        "exact": exact,
        "missing": missing,
        "doubled": doubled,
        "disorder": disorder,
        "resets": sum(len(c.resets) for c in made),
        "reconnects": reconnects,
        "problems": problems,
    }


# -- the workload --------------------------------------------------------------------


class Workload(threading.Thread):
    """Transactions of 1-3 inserts, sometimes an update and a delete, at `rate` per
    second; `committed` is every change whose COMMIT returned, in commit order, as
    (type, seq): the seq column's value after (CREATE, UPDATE) or before (DELETE)."""

    def __init__(self, port: int, rate: float) -> None:
        super().__init__(name="workload", daemon=True)
        self.port = port
        self.rate = rate
        self.halt = threading.Event()
        self.committed: list[tuple[str, int]] = []
        self.error: Exception | None = None

    def run(self) -> None:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", database=APP)
        rng = random.Random(11)
        rows: dict[int, int] = {}  # id -> seq
        seq = 0
        started = time.perf_counter()
        done = 0
        try:
            with conn.cursor() as cur:
                while not self.halt.is_set():
                    delay = started + done / self.rate - time.perf_counter()
                    if delay > 0:
                        self.halt.wait(delay)
                        continue
                    changes: list[tuple[str, int]] = []
                    new: dict[int, int] = {}
                    conn.begin()
                    for _ in range(rng.randint(1, 3)):
                        seq += 1
                        cur.execute("INSERT INTO item (seq, note) VALUES (%s, 'soak')", (seq,))
                        new[cur.lastrowid] = seq
                        changes.append(("CREATE", seq))
                    if rows and rng.random() < 0.5:
                        seq += 1
                        row = rng.choice(list(rows))
                        cur.execute("UPDATE item SET seq = %s WHERE id = %s", (seq, row))
                        new[row] = seq
                        changes.append(("UPDATE", seq))
                    if len(rows) > 5 and rng.random() < 0.2:
                        row = rng.choice([r for r in rows if r not in new])
                        cur.execute("DELETE FROM item WHERE id = %s", (row,))
                        changes.append(("DELETE", rows[row]))
                        new[row] = -1
                    conn.commit()
                    for row, value in new.items():
                        if value < 0:
                            del rows[row]
                        else:
                            rows[row] = value
                    self.committed.extend(changes)
                    done += 1
        except Exception as error:  # a boundary: the driver reports it as a FAIL
            self.error = error
        finally:
            conn.close()


# -- the driver ----------------------------------------------------------------------


class Cluster:
    """The capture daemons, the serve workers and Redis of the run."""

    def __init__(self, options: argparse.Namespace, mysql_port: int) -> None:
        self.options = options
        self.dsn = f"mysql://root@127.0.0.1:{mysql_port}/cdc"
        self.redis = harness.Redis() if options.bus else None
        env = {"CDC_LOG_LEVEL": "info", "CDC_MAX_CLIENTS": str(options.clients + 100)}
        self.env = env
        self.daemons: list[harness.Cdc] = []
        self.urls: list[str] = []
        for k in range(2 if options.failover else 1):
            url = f"http://127.0.0.1:{harness.free_port()}"
            args = ["run", "--dsn", self.dsn, "--include", f"{APP}.*", "--server-id",
                    str(4263 + k), "--http", url.removeprefix("http://")]  # fmt: skip
            if self.redis is not None:
                args += ["--bus", self.redis.url]
            self.daemons.append(harness.Cdc(f"capture{k + 1}", args, env))
            self.urls.append(url)
        self.serve: harness.Cdc | None = None
        if self.redis is not None:
            self.serve_url = f"http://127.0.0.1:{harness.free_port()}"
            self.serve = harness.Cdc(
                "serve",
                ["serve", "--dsn", self.dsn, "--bus", self.redis.url, "--http",
                 self.serve_url.removeprefix("http://"), "--workers", str(options.workers)],
                env,
            )  # fmt: skip

    def role(self, k: int) -> str | None:
        state = harness.health(self.urls[k]) or {}
        if not self.options.failover:  # before the failover branch: no role, one daemon
            return "active" if state.get("state") == "capturing" else None
        return state.get("role")

    def start(self) -> None:
        harness.run_cdc("init", "--dsn", self.dsn)
        if self.redis is not None:
            self.redis.start()
        first = self.daemons[0].start()
        if self.options.failover:
            harness.wait_for(
                "the first daemon answers",
                lambda: harness.health(self.urls[0]) is not None,
                120,
                first,
            )
            if "role" not in (harness.health(self.urls[0]) or {}):
                raise SystemExit(
                    "/health has no role: this cdc has no standby failover; pass --no-failover"
                )
        harness.wait_for(
            "the first capture daemon is active", lambda: self.role(0) == "active", 120, first
        )
        if len(self.daemons) > 1:
            second = self.daemons[1].start()
            harness.wait_for(
                "the second daemon is standby", lambda: self.role(1) == "standby", 120, second
            )
        if self.serve is not None:
            serve = self.serve.start()
            harness.wait_for(
                f"cdc serve answers with {self.options.workers} workers",
                lambda: (
                    harness.health(self.serve_url) is not None
                    and len(self.workers()) == self.options.workers
                ),
                120,
                serve,
            )

    def workers(self) -> list[int]:
        if self.serve is None:
            return []
        return harness.listeners(self.serve.pid, int(self.serve_url.rsplit(":", 1)[1]))

    def client_urls(self) -> list[str]:
        urls = [self.serve_url] if self.serve is not None else self.urls
        return [u.removeprefix("http://") for u in urls]

    def active(self) -> int | None:
        return next(
            (
                k
                for k in range(len(self.daemons))
                if self.daemons[k].alive() and self.role(k) == "active"
            ),
            None,
        )

    def stop(self) -> None:
        for proc in [self.serve, *self.daemons]:
            if proc is not None:
                proc.stop()
        if self.redis is not None:
            self.redis.stop()


class Clock:
    def __init__(self) -> None:
        self.began = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.began:6.1f} s] {text}", flush=True)


def _events(conn: Any) -> list[tuple[int, str, int]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, type, JSON_VALUE(data, IF(type = 'DELETE', '$.before.seq', '$.after.seq'))"
            " FROM cdc.event ORDER BY id"
        )
        return [(int(i), str(t), int(s)) for i, t, s in cur.fetchall()]


def _count(conn: Any) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM cdc.event")
        return int(cur.fetchone()[0])


def _kill_capture(cluster: Cluster, clock: Clock, notes: dict[str, Any]) -> None:
    active = cluster.active()
    if active is None:
        raise SystemExit("no capture daemon is active")
    daemon = cluster.daemons[active]
    clock.say(f"SIGKILL the active capture daemon ({daemon.name}, pid {daemon.pid})")
    killed_at = time.monotonic()
    daemon.kill()
    notes["killed"] = active
    if len(cluster.daemons) > 1:
        other = cluster.daemons[1 - active]
        harness.wait_for(
            "the standby takes over", lambda: cluster.role(1 - active) == "active", 60, other
        )
        notes["takeover_s"] = time.monotonic() - killed_at
        clock.say(f"{other.name} is active after {notes['takeover_s']:.1f} s")
        return
    time.sleep(1.0)
    daemon.start()  # as systemd would (Restart=on-failure)
    harness.wait_for(
        "the restarted daemon captures", lambda: cluster.role(active) == "active", 60, daemon
    )
    clock.say(f"restarted {daemon.name} (--no-failover), capturing again")


def _kill_worker(cluster: Cluster, clock: Clock, notes: dict[str, Any]) -> None:
    workers = cluster.workers()
    victim = workers[0]
    clock.say(f"SIGKILL one cdc serve worker (pid {victim} of {workers})")
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = cluster.workers()
        if len(now) == cluster.options.workers and victim not in now:
            break
        time.sleep(0.2)
    notes["worker_restarted"] = len(cluster.workers()) == cluster.options.workers
    clock.say(f"workers now {cluster.workers()}")


def _kill_redis(cluster: Cluster, clock: Clock, notes: dict[str, Any]) -> None:
    assert cluster.redis is not None
    clock.say("SIGKILL redis-server")
    cluster.redis.kill()
    time.sleep(2.0)
    cluster.redis.start()
    clock.say("redis-server restarted on the same port (empty)")


KILLS = {"capture": _kill_capture, "worker": _kill_worker, "redis": _kill_redis}


def _kills(
    options: argparse.Namespace, cluster: Cluster, clock: Clock, notes: dict[str, Any]
) -> None:
    """The kills asked for (of what exists), spread over the workload's length."""
    kills = [k for k in options.kill.split(",") if k in KILLS]
    if cluster.serve is None:  # --no-bus: no worker, no Redis
        kills = [k for k in kills if k == "capture"]
    step = options.seconds / (len(kills) + 1)
    for kill in kills:
        time.sleep(step)
        KILLS[kill](cluster, clock, notes)
    time.sleep(step)


def drive(options: argparse.Namespace) -> int:
    from cdc._testing.mariadb import MariaDB

    harness.raise_nofile(options.clients + 200, f"cdc run serving {options.clients} clients")
    clock = Clock()
    procs = max(1, -(-options.clients // 1500))
    sizes = [options.clients // procs + (k < options.clients % procs) for k in range(procs)]
    sources = harness.source_addresses(options.clients, 20_000)
    notes: dict[str, Any] = {}
    with MariaDB() as mariadb:
        conn = mariadb.connect()
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {APP}")
            cur.execute(
                f"CREATE TABLE {APP}.item (id INT PRIMARY KEY AUTO_INCREMENT, seq BIGINT, note VARCHAR(40))"
            )
        cluster = Cluster(options, mariadb.port)
        groups: list[harness.LineProcess] = []
        try:
            cluster.start()
            clock.say(
                f"{len(cluster.daemons)} capture daemon(s)"
                + (
                    f", cdc serve --workers {options.workers}, Redis"
                    if cluster.serve
                    else " serving HTTP themselves (--no-bus)"
                )
            )
            urls = ",".join(cluster.client_urls())
            for size in sizes:
                groups.append(harness.LineProcess(
                    [__file__, "--role", "clients", "--count", str(size), "--urls", urls,
                     "--sources", ",".join(sources)]
                ))  # fmt: skip
            for g in groups:
                if g.ask(None) != "ready":
                    raise SystemExit("the clients did not connect")
            clock.say(
                f"{options.clients} clients streaming; workload starts ({options.rate:g} txn/s for {options.seconds:g} s)"
            )
            workload = Workload(mariadb.port, options.rate)
            workload.start()
            _kills(options, cluster, clock, notes)
            workload.halt.set()
            workload.join()
            clock.say(f"workload stopped: {len(workload.committed)} changes committed")
            committed = len(workload.committed)
            caught_up = _wait(lambda: _count(conn) >= committed, 90)
            events = _events(conn)
            high = events[-1][0] if events else 0
            missing = "" if caught_up else " (capture did NOT catch up)"
            clock.say(f"event table: {len(events)} events{missing}")
            delivered = _wait(
                lambda: sum(int(g.ask(f"progress {high}")) for g in groups) >= options.clients, 90
            )
            clock.say(f"clients {'caught up' if delivered else 'NOT caught up'} with event {high}")
            path = Path(tempfile.mkstemp(prefix="cdc-soak-ids-", suffix=".json")[1])
            path.write_text(json.dumps([e[0] for e in events]))
            reports = [json.loads(g.ask(f"check {path}")) for g in groups]
            path.unlink()
            checks = _checks(options, cluster, workload, events, reports, notes, caught_up)
        finally:
            for g in groups:
                g.quit()
            cluster.stop()
    for name, verdict, detail in checks:
        print(f"{verdict:<4}  {name}: {detail}")
    failed = sum(verdict == "FAIL" for _, verdict, _ in checks)
    print("soak: " + ("PASS" if not failed else f"FAIL ({failed} check(s))"))
    if failed:
        for d in cluster.daemons + ([cluster.serve] if cluster.serve else []):
            print(f"--- log of {d.name}: {d.log}")
    return 1 if failed else 0


def _wait(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return bool(check())


def _checks(
    options: argparse.Namespace, cluster: Cluster, workload: Workload, events: list[tuple[int, str, int]],
    reports: list[dict[str, Any]], notes: dict[str, Any], caught_up: bool,
) -> list[tuple[str, str, str]]:  # fmt: skip
    checks = []
    table = [(t, s) for _, t, s in events]
    ids = [i for i, _, _ in events]
    same = table == workload.committed and ids == list(range(1, len(ids) + 1))
    detail = f"{len(events)} events for {len(workload.committed)} committed changes"
    if workload.error is not None:
        detail += f"; the workload failed: {workload.error}"
    if not same:
        first = next(
            (k for k, (a, b) in enumerate(zip(table, workload.committed, strict=False)) if a != b),
            None,
        )
        detail += f"; first difference at position {first}" + (
            "" if caught_up else "; capture did not catch up"
        )
    checks.append(
        (
            "event table = committed changes, each once, in order",
            "PASS" if same and workload.error is None else "FAIL",
            detail,
        )
    )
    exact = sum(r["exact"] for r in reports)
    clients = sum(r["clients"] for r in reports)
    detail = (
        f"{exact} of {clients} clients exact; missing {sum(r['missing'] for r in reports)},"
        f" doubled {sum(r['doubled'] for r in reports)}, out of order {sum(r['disorder'] for r in reports)},"
        f" resets {sum(r['resets'] for r in reports)}; {sum(r['reconnects'] for r in reports)} reconnects"
    )
    problems = [p for r in reports for p in r["problems"]][:3]
    if problems:
        detail += "; " + "; ".join(problems)
    checks.append(
        (
            "every client has every event exactly once, in order",
            "PASS" if exact == clients and ids else "FAIL",
            detail,
        )
    )
    if options.failover and "killed" in notes:
        other = 1 - notes["killed"]
        role = cluster.role(other)
        took = notes.get("takeover_s")
        detail = f"{cluster.daemons[other].name} /health role {role!r}" + (
            f", took over in {took:.1f} s (contract: within 10 s)" if took else ""
        )
        checks.append(("the standby is capturing", "PASS" if role == "active" else "FAIL", detail))
    else:
        why = (
            "--no-failover: the killed daemon was restarted instead"
            if options.failover is False
            else "no capture kill (--kill)"
        )
        checks.append(("the standby is capturing", "SKIP", why))
    if cluster.serve is not None and "worker_restarted" in notes:
        ok = notes["worker_restarted"]
        checks.append(
            (
                "the --workers parent restarted the killed worker",
                "PASS" if ok else "FAIL",
                f"workers {cluster.workers()}",
            )
        )
    else:
        why = "--no-bus" if cluster.serve is None else "no worker kill (--kill)"
        checks.append(("the --workers parent restarted the killed worker", "SKIP", why))
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=["driver", "clients"], default="driver")
    parser.add_argument("--clients", type=int, default=3000, help="SSE clients")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the workload commits")
    parser.add_argument("--rate", type=float, default=10.0, help="workload transactions per second")
    parser.add_argument("--workers", type=int, default=3, help="cdc serve --workers")
    parser.add_argument("--no-bus", dest="bus", action="store_false", help="no Redis, no cdc serve")
    parser.add_argument(
        "--no-failover", dest="failover", action="store_false", help="one capture daemon"
    )
    parser.add_argument(
        "--kill",
        default="capture,worker,redis",
        help="what to SIGKILL mid-stream, in order ('' for none)",
    )
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    parser.add_argument("--sources", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.role == "clients":
        clients(options)
        return
    sys.exit(drive(options))


if __name__ == "__main__":
    main()

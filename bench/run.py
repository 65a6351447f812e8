"""Every benchmark of the project, one after the other, then one table of their figures
with the peers and baselines each measured beside them in the same run.

    python bench/run.py [--quick] [--only capture,fanout] [--no-bus | --bus]

Runs bench/capture.py (cdc against a bare mysql-replication loop, zongji and
mariadb-binlog), decode.py (the decoders against the bare loop), stream.py (latency and
memory per idle client of one process), overhead.py (what capture costs the
application, against no capture) and fanout.py (tens of thousands of clients through
the Redis bus and `cdc serve` workers; with `--no-bus`, or when this tree has no
`cdc serve`, through `cdc run`'s own HTTP). Each prints its own report as it goes
and writes its figures to a JSON file (`--json`) that this collects. One at a time:
they would skew each other. `--quick` runs each for a few seconds (a smoke run).
Figures depend on the machine: printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

FULL: dict[str, list[str]] = {
    "capture": [],
    "decode": [],
    "stream": [],
    "overhead": [],
    "fanout": [],
}
QUICK: dict[str, list[str]] = {
    "capture": ["--rows", "20000"],
    "decode": ["--rows", "20000"],
    "stream": [
        "--seconds",
        "3",
        "--clients",
        "1,100",
        "--idle",
        "300",
        "--shutdown-clients",
        "300",
    ],
    "overhead": ["--seconds", "3", "--rounds", "1", "--latency-rate", "200"],
    "fanout": ["--clients", "2000", "--seconds", "5", "--auto-seconds", "4", "--auto-steps", "3"],
}

Row = tuple[str, str, str, str]  # bench, what, figure, beside it (baseline, peer, target)


def has_serve() -> bool:
    """Whether this tree's cdc has `cdc serve` (the Redis bus)."""
    out = subprocess.run(
        [sys.executable, "-m", "cdc", "serve", "--help"],
        env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, cwd=ROOT,
    )  # fmt: skip
    return out.returncode == 0


def run_one(name: str, args: list[str]) -> tuple[dict[str, Any] | None, float, str]:
    """Runs bench/<name>.py with its output on this terminal; (figures, seconds, error)."""
    path = Path(tempfile.mkstemp(prefix=f"cdc-bench-{name}-", suffix=".json")[1])
    print(f"\n=== bench/{name}.py {' '.join(args)}", flush=True)
    began = time.perf_counter()
    code = subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), *args, "--json", str(path)],
        env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT,
    ).returncode  # fmt: skip
    seconds = time.perf_counter() - began
    try:
        text = path.read_text()
        figures = json.loads(text) if text.strip() else None
    finally:
        path.unlink(missing_ok=True)
    error = "" if code == 0 and figures is not None else f"failed (exit {code})"
    return figures, seconds, error


def _x(value: float, base: float | None) -> str:
    return f"{value / base:.2f}x" if base else "-"


def capture_rows(f: dict[str, Any]) -> list[Row]:
    readers = f["readers"]
    labels = {
        "bare": "bare mysql-replication loop",
        "library": "cdc end to end, library decoder",
        "fast": "cdc end to end, fast decoder",
        "zongji": "zongji 0.9.0 (Node), decode only",
        "mariadb-binlog": "mariadb-binlog (C), decode only",
    }
    bare = readers.get("bare", {}).get("rows_per_s")
    zongji = readers.get("zongji", {}).get("rows_per_s")
    rows = []
    for kind, r in readers.items():
        beside = [] if kind == "bare" else [f"{_x(r['rows_per_s'], bare)} bare"]
        if zongji and kind != "zongji":
            beside.append(f"{_x(r['rows_per_s'], zongji)} zongji")
        rows.append(("capture", labels.get(kind, kind), f"{r['rows_per_s']:,.0f} rows/s",
                     ", ".join(beside) or "(baseline)"))  # fmt: skip
    return rows


def decode_rows(f: dict[str, Any]) -> list[Row]:
    readers = f["readers"]
    labels = {
        "bare": "bare mysql-replication loop",
        "library": "cdc reader, library decoder",
        "fast": "cdc reader, compiled decoder",
        "images library": "row images: library + mapper",
        "images compiled": "row images: compiled decoder",
    }
    rows = []
    for kind, r in readers.items():
        versus = "images library" if kind.startswith("images") else "bare"
        base = readers.get(versus, {}).get("rows_per_s")
        beside = "(baseline)" if kind == versus else f"{_x(r['rows_per_s'], base)} {versus}"
        rows.append(("decode", labels.get(kind, kind), f"{r['rows_per_s']:,.0f} rows/s", beside))
    return rows


def stream_rows(f: dict[str, Any]) -> list[Row]:
    rows = []
    for r in f["runs"]:
        rows.append(("stream", f"{r['clients']} clients at {f['rate']:g} ev/s, p50 / p99",
                     f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} ms",
                     "all received" if r["complete"] else "NOT all received"))  # fmt: skip
    rows.append(("stream", f"server memory per idle client ({f['idle_clients']})",
                 f"{f['kb_per_idle_client']:.1f} KB", "target < 20 KB, Centrifugo 27 KB"))  # fmt: skip
    rows.append(("stream", f"clean stop, {f['shutdown_clients']} streams open",
                 f"{f['shutdown_seconds']:.2f} s", ""))  # fmt: skip
    return rows


def overhead_rows(f: dict[str, Any]) -> list[Row]:
    rows = []
    for m in f["modes"]:
        first = m is f["modes"][0]
        rows.append(("overhead", f"{m['mode']}: app throughput", f"{m['txn_per_s']:,.0f} txn/s",
                     "(baseline)" if first else f"{m['ratio']:.2f}x no capture"))  # fmt: skip
        if m["p50_ms"] is not None:
            rows.append(("overhead", f"{m['mode']}: commit to event p50 / p99",
                         f"{m['p50_ms']:.1f} / {m['p99_ms']:.1f} ms", ""))  # fmt: skip
    return rows


def fanout_rows(f: dict[str, Any]) -> list[Row]:
    rows: list[Row] = [
        ("fanout", f"clients connected ({f['mode']})", f"{f['connected']:,} of {f['clients']:,}",
         f"{f['connect_seconds']:.0f} s to connect"),
        ("fanout", "server memory per idle client", f"{f['kb_per_client']:.1f} KB",
         "target < 20 KB, Centrifugo 27 KB"),
    ]  # fmt: skip
    for p in f["phases"]:
        delivered = "all delivered" if p["all_delivered"] else f"{p['missing']} missing"
        target = "; target p99 < 1000 ms" if p["rate"] == 1.0 else ""
        latency = "-" if p["p99_ms"] is None else f"{p['p50_ms']:.0f} / {p['p99_ms']:.0f} ms"
        rows.append(("fanout", f"{p['rate']:g} ev/s: p50 / p99, serve CPU {p['serve_cpu']:.0%}",
                     latency, delivered + target))  # fmt: skip
    sustained = [p["rate"] for p in f["phases"] if p["sustained"]]
    rows.append(("fanout", "highest rate sustained (all delivered, p99 < 1 s)",
                 f"{max(sustained):g} ev/s" if sustained else "none", ""))  # fmt: skip
    return rows


TABLES: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "capture": capture_rows,
    "decode": decode_rows,
    "stream": stream_rows,
    "overhead": overhead_rows,
    "fanout": fanout_rows,
}


def print_table(rows: list[Row], seconds: dict[str, float]) -> None:
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    head = ("bench", "measured", "figure", "beside it (same run)")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print("\n" + line.format(*head))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line.format(*row))
    total = sum(seconds.values())
    parts = ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
    print(f"\n{os.cpu_count()} cores; took {total / 60:.1f} min ({parts})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds each")
    parser.add_argument("--only", default=",".join(FULL), help="benchmarks to run, in order")
    via = parser.add_mutually_exclusive_group()
    via.add_argument("--bus", dest="bus", action="store_true", default=None,
                     help="fanout through Redis and cdc serve (default when cdc serve exists)")  # fmt: skip
    via.add_argument("--no-bus", dest="bus", action="store_false",
                     help="fanout through cdc run's own HTTP")  # fmt: skip
    parser.add_argument("--fanout-args", default="", help="more arguments for fanout.py")
    parser.add_argument("--json", help="also write every bench's figures to this file")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    rows: list[Row] = []
    seconds: dict[str, float] = {}
    collected: dict[str, Any] = {}
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        if name not in plan:
            raise SystemExit(f"unknown benchmark {name!r}; known: {', '.join(plan)}")
        extra = list(plan[name])
        if name == "fanout":
            bus = has_serve() if args.bus is None else args.bus
            if not bus:
                extra.append("--no-bus")
                if not args.quick:  # one process holds every client: as many as its file limit
                    extra += ["--clients", "18000"]
            extra += args.fanout_args.split()
        figures, took, error = run_one(name, extra)
        seconds[name] = took
        collected[name] = figures
        if error:
            rows.append((name, "(the benchmark)", error, "see its output above"))
            continue
        assert figures is not None
        rows.extend(TABLES[name](figures))
    print_table(rows, seconds)
    if args.json:
        Path(args.json).write_text(json.dumps(collected, indent=1))
    if any(r[1] == "(the benchmark)" for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Capture throughput: the same binlog read by a bare mysql-replication loop and by cdc.

    python bench/capture.py [--rows 200000]

Writes a hospital-like workload (60% inserts, 30% updates, 10% deletes into a 9-column
table, small statements as an application makes them) on a throwaway MariaDB, then
reads that binlog range (a) with a bare BinLogStreamReader loop touching every value,
(b) with cdc end to end into the event table (library decoder, then the fast decoder),
and, as peers decoding the same range without writing anything, (c) the Node library
@vlasky/zongji (installed with npm into a temporary folder first, not timed) touching
every value, and (d) MariaDB's own C decoder `mariadb-binlog --read-from-remote-server
-v --base64-output=DECODE-ROWS` (its text output counted by grep).
Each part runs in its own process so its peak RSS is its own. Prints rows/s and ratios.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cdc._testing.mariadb import MariaDB

TABLE = """CREATE TABLE bench.patient (
    id INT UNSIGNED PRIMARY KEY, uuid BINARY(16) NOT NULL, display_name VARCHAR(100),
    dob DATE, sex ENUM('F','M'), weight DECIMAL(6,2), created_at DATETIME(3),
    notes TEXT, user_id INT)"""


def workload(server: MariaDB, rows: int) -> tuple[str, int, str, int]:
    conn = server.connect()
    rng = random.Random(1)
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE bench")
        cur.execute(TABLE)
        cur.execute("SHOW MASTER STATUS")
        start = cur.fetchone()
        inserts, updates, deletes = rows * 6 // 10, rows * 3 // 10, rows // 10
        next_id = 0
        done = 0
        while done < inserts:
            n = min(rng.choice((1, 1, 2, 3, 5)), inserts - done)
            values = []
            for _ in range(n):
                next_id += 1
                values.append(
                    (
                        next_id,
                        rng.randbytes(16),
                        f"Patient {next_id}",
                        f"19{rng.randint(40, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                        rng.choice("FM"),
                        f"{rng.randint(2000, 12000) / 100:.2f}",
                        "2026-05-12 12:19:40.123",
                        "note " * rng.randint(0, 8),
                        rng.randint(1, 50),
                    )
                )
            cur.executemany("INSERT INTO bench.patient VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)", values)
            done += n
        done = 0
        while done < updates:
            n = min(rng.choice((1, 1, 2, 3, 5)), updates - done)
            low = rng.randint(1, max(1, inserts - n))
            cur.execute(
                "UPDATE bench.patient SET display_name = CONCAT(display_name, '.'), user_id = %s"
                " WHERE id BETWEEN %s AND %s",
                (rng.randint(1, 50), low, low + n - 1),
            )
            done += n
        cur.execute(f"DELETE FROM bench.patient ORDER BY id LIMIT {deletes}")
        cur.execute("SHOW MASTER STATUS")
        end = cur.fetchone()
    conn.close()
    return start[0], int(start[1]), end[0], int(end[1])


def rows_stream(
    port: int, log_file: str, log_pos: int, end_pos: int, server_id: int, table_maps: bool = False
) -> Any:
    """A bare BinLogStreamReader over the workload's rows events (and its TableMap events)."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import (
        DeleteRowsEvent,
        TableMapEvent,
        UpdateRowsEvent,
        WriteRowsEvent,
    )

    return BinLogStreamReader(
        {"host": "127.0.0.1", "port": port, "user": "root"},
        server_id=server_id,
        resume_stream=True,
        blocking=False,
        log_file=log_file,
        log_pos=log_pos,
        end_log_pos=end_pos,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent]
        + ([TableMapEvent] if table_maps else []),
        enable_logging=False,
    )


def bare_loop(stream: Any) -> int:
    """The baseline: every row of every event, every value touched."""
    count = 0
    for event in stream:
        for row in event.rows:
            for image in ("values", "before_values", "after_values"):
                values = row.get(image)
                if values:
                    for value in values.values():
                        del value
            count += 1
    stream.close()
    return count


def part_bare(port: int, log_file: str, log_pos: int, end_pos: int) -> dict[str, float]:
    started = time.perf_counter()
    count = bare_loop(rows_stream(port, log_file, log_pos, end_pos, 9001))
    return {"rows": count, "seconds": time.perf_counter() - started}


def part_cdc(port: int, log_file: str, log_pos: int, decoder: str) -> dict[str, float]:
    import pymysql

    from cdc.capture.binlog.source import BinlogSource
    from cdc.capture.loop import Capture
    from cdc.models import Position
    from cdc.settings import CaptureSettings, Decoder, Dsn
    from cdc.store.schema import init_schema
    from cdc.store.writer import Store

    db = f"cdc_{decoder}"
    dsn = Dsn.parse(f"mysql://root@127.0.0.1:{port}/{db}")
    settings = CaptureSettings(include=("bench.*",), decoder=Decoder(decoder))
    init_schema(dsn)
    st = Store(dsn)
    st.commit(Position(log_file, log_pos), None)
    st.close()
    source = BinlogSource(dsn, settings, is_mariadb=True, blocking=False)
    capture = Capture(settings, source, Store(dsn), lambda events, last_id: None)
    started = time.perf_counter()
    capture.run()
    seconds = time.perf_counter() - started
    if capture.error:
        raise capture.error
    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", database=db)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM event")
        count = cur.fetchone()[0]
    conn.close()
    return {"rows": count, "seconds": seconds}


ZONGJI = "@vlasky/zongji@0.9.0"
# Reads the range, touching every value of every row, and stops at the range's end.
ZONGJI_SCRIPT = """
import ZongJi from '@vlasky/zongji';
const [port, file, position, end] = process.argv.slice(2).map((v, i) => (i === 1 ? v : +v));
const zongji = new ZongJi({ host: '127.0.0.1', port, user: 'root' });
let rows = 0;
const started = process.hrtime.bigint();
zongji.on('error', (error) => { console.error(error); process.exit(1); });
zongji.on('binlog', (evt) => {
  const name = evt.getEventName();
  if (name === 'writerows' || name === 'deleterows') {
    for (const row of evt.rows) { for (const key in row) row[key]; rows++; }
  } else if (name === 'updaterows') {
    for (const row of evt.rows) {
      for (const key in row.before) row.before[key];
      for (const key in row.after) row.after[key];
      rows++;
    }
  }
  if (evt.nextPosition >= end) {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const peak = process.resourceUsage().maxRSS / 1024;
    console.log(JSON.stringify({ rows, seconds, peak_rss_mb: peak }));
    zongji.stop();
  }
});
zongji.start({
  serverId: 9201, filename: file, position,
  includeEvents: ['tablemap', 'writerows', 'updaterows', 'deleterows', 'xid'],
  includeSchema: { bench: true },
});
"""


def install_zongji() -> Path | None:
    """npm install zongji into a temporary folder; None (and a note) when it cannot."""
    if not shutil.which("node") or not shutil.which("npm"):
        print("zongji: node/npm not found, part skipped")
        return None
    folder = Path(tempfile.mkdtemp(prefix="cdc-bench-zongji-"))
    (folder / "package.json").write_text('{"private": true, "type": "module"}')
    (folder / "read.mjs").write_text(ZONGJI_SCRIPT)
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", ZONGJI],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    return folder


def part_zongji(
    folder: Path, port: int, log_file: str, log_pos: int, end_pos: int
) -> dict[str, float]:
    out = subprocess.run(
        ["node", "read.mjs", str(port), log_file, str(log_pos), str(end_pos)],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def part_mariadb_binlog(port: int, log_file: str, log_pos: int, end_pos: int) -> dict[str, float]:
    """mariadb-binlog decoding the rows to text; `grep -c` counts the row changes."""
    binlog = shutil.which("mariadb-binlog") or shutil.which("mysqlbinlog")
    if binlog is None:
        raise FileNotFoundError("mariadb-binlog not found (Debian's mariadb-client)")
    started = time.perf_counter()
    decode = subprocess.Popen(
        [
            binlog,
            "--read-from-remote-server",
            "--host=127.0.0.1",
            f"--port={port}",
            "--user=root",
            "-v",
            "--base64-output=DECODE-ROWS",
            f"--start-position={log_pos}",
            f"--stop-position={end_pos}",
            log_file,
        ],
        stdout=subprocess.PIPE,
    )
    count = subprocess.run(
        ["grep", "-c", "-E", "^### (INSERT INTO|UPDATE|DELETE FROM) "],
        stdin=decode.stdout,
        capture_output=True,
        text=True,
    )
    assert decode.stdout is not None
    decode.stdout.close()
    if decode.wait() != 0:
        raise RuntimeError("mariadb-binlog failed")
    seconds = time.perf_counter() - started
    # This child's own RSS is small; the decoder's is the peak over its children.
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"rows": int(count.stdout.strip()), "seconds": seconds, "children_rss_mb": children}


def child(argv: list[str]) -> None:
    kind, port, log_file, log_pos, end_pos = (
        argv[0],
        int(argv[1]),
        argv[2],
        int(argv[3]),
        int(argv[4]),
    )
    if kind == "bare":
        result = part_bare(port, log_file, log_pos, end_pos)
    elif kind == "mariadb-binlog":
        result = part_mariadb_binlog(port, log_file, log_pos, end_pos)
    else:
        result = part_cdc(port, log_file, log_pos, kind)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_rss_mb"] = max(result["peak_rss_mb"], result.pop("children_rss_mb", 0.0))
    print(json.dumps(result))


def run_part(kind: str, port: int, start: tuple[str, int], end_pos: int) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            kind,
            str(port),
            start[0],
            str(start[1]),
            str(end_pos),
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"part {kind} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--parts", default="bare,library,fast,zongji,mariadb-binlog")
    parser.add_argument("--child", nargs=5)
    parser.add_argument("--json", help="also write the figures to this file (for bench/run.py)")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    with MariaDB() as server:
        t0 = time.perf_counter()
        log_file, log_pos, end_file, end_pos = workload(server, args.rows)
        assert log_file == end_file, "the workload rotated the binlog; use fewer rows"
        print(f"workload: {args.rows} row changes written in {time.perf_counter() - t0:.1f} s")
        results = {}
        for kind in args.parts.split(","):
            if kind == "zongji":
                folder = install_zongji()
                if folder is None:
                    continue
                try:
                    r = part_zongji(folder, server.port, log_file, log_pos, end_pos)
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
            else:
                r = run_part(kind, server.port, (log_file, log_pos), end_pos)
            results[kind] = r
            r["rows_per_s"] = r["rows"] / r["seconds"]
        base = results.get("bare")
        peer = results.get("zongji")
        print(
            f"{'reader':<38} {'rows':>8} {'seconds':>8} {'rows/s':>9} {'vs bare':>8}"
            f" {'vs zongji':>9} {'peak RSS':>9}"
        )
        labels = {
            "bare": "(a) bare mysql-replication loop",
            "library": "(b) cdc, library decoder",
            "fast": "(b) cdc, fast decoder",
            "zongji": "(c) zongji 0.9.0 (Node), decode only",
            "mariadb-binlog": "(d) mariadb-binlog (C), decode only",
        }
        for kind, r in results.items():
            ratio = f"{r['rows_per_s'] / base['rows_per_s']:.2f}x" if base else "-"
            versus = f"{r['rows_per_s'] / peer['rows_per_s']:.2f}x" if peer else "-"
            print(
                f"{labels.get(kind, kind):<38} {int(r['rows']):>8} {r['seconds']:>8.1f} "
                f"{r['rows_per_s']:>9.0f} {ratio:>8} {versus:>9} {r['peak_rss_mb']:>7.0f}MB"
            )
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": args.rows, "readers": results}))


if __name__ == "__main__":
    main()

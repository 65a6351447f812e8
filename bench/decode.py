"""Decoder throughput: the same binlog read by the bare library and by cdc's reader.

    python bench/decode.py [--rows 200000] [--repeat 1]

Writes the workload of bench/capture.py (a 9-column hospital-like table: 60% inserts,
30% updates, 10% deletes) on a throwaway MariaDB, then reads that binlog range
(a) with a bare BinLogStreamReader loop touching every value (no rendering),
(b) with cdc's binlog source, library decoder (rows rendered by rows/render.py),
(c) with cdc's BinlogReader, compiled decoder (cdc/decoder.py),
and, in one more pass, the row images alone: for every rows event, the library's
`event.rows` rendered by `render.render_row` against the compiled decoder on the
same bytes (timed separately, framing excluded).
Nothing is written anywhere: this measures reading and decoding only. Prints rows/s;
the ratio is against (a) for the readers, against the library's for the row images.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from capture import bare_loop, rows_stream, workload

from cdc._testing.mariadb import MariaDB


def bare(port: int, log_file: str, log_pos: int, end_pos: int) -> int:
    return bare_loop(rows_stream(port, log_file, log_pos, end_pos, 9101))


def reader(port: int, log_file: str, log_pos: int, decoder: str) -> int:
    from cdc.capture.binlog.source import BinlogSource
    from cdc.models import Changes, Position
    from cdc.settings import CaptureSettings, Decoder, Dsn

    settings = CaptureSettings(
        server_id=9102 if decoder == "library" else 9103,
        include=("bench.*",),
        decoder=Decoder(decoder),
    )
    source = BinlogSource(Dsn.parse(f"mysql://root@127.0.0.1:{port}/cdc"), settings, True, False)
    count = 0
    for item in source.read(Position(log_file, log_pos), threading.Event()):
        if isinstance(item, Changes):
            count += len(item.records)
    return count


def images(port: int, log_file: str, log_pos: int, end_pos: int) -> tuple[int, float, float]:
    """Row images only: (rows, library rows + mapper seconds, compiled decoder seconds)."""
    from pymysqlreplication.row_event import TableMapEvent

    from cdc.capture.binlog.images import for_library_decoding
    from cdc.capture.binlog.rows import compiled as decoder
    from cdc.capture.binlog.rows import render as mapper
    from cdc.capture.binlog.tables import table_from_library

    stream = rows_stream(port, log_file, log_pos, end_pos, 9104, table_maps=True)
    tables: dict[int, Any] = {}
    originals: dict[int, Any] = {}
    count, library, compiled = 0, 0.0, 0.0
    clock = time.perf_counter
    render = mapper.render_row
    for event in stream:
        if isinstance(event, TableMapEvent):
            # As cdc's library path does: the rows decoded lossless (text as bytes...).
            originals[event.table_id] = stream.table_map[event.table_id]
            stream.table_map[event.table_id] = for_library_decoding(originals[event.table_id])
            continue
        lib_table = originals[event.table_id]
        if event.table_id not in tables or tables[event.table_id][0] is not lib_table:
            table = table_from_library(lib_table)
            tables[event.table_id] = (lib_table, table, decoder.decoder_for(table).decode)
        _, table, decode = tables[event.table_id]
        raw = event.packet.packet
        start = raw._position
        end = start + event.event_size - event.packet.read_bytes
        started = clock()
        rows = decode(raw._data, start, end)
        compiled += clock() - started
        started = clock()
        for row in event.rows:
            if "values" in row:
                render(table, row["values"], row["none_sources"])
            else:
                render(table, row["before_values"], row["before_none_sources"])
                render(table, row["after_values"], row["after_none_sources"])
        library += clock() - started
        count += len(event.rows)
        assert len(rows) == len(event.rows) * (2 if "after_values" in event.rows[0] else 1)
    stream.close()
    return count, library, compiled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each reader (best shown)")
    parser.add_argument("--parts", default="bare,library,fast,images")
    parser.add_argument("--json", help="also write the figures to this file (for bench/run.py)")
    args = parser.parse_args()
    with MariaDB() as server:
        started = time.perf_counter()
        log_file, log_pos, end_file, end_pos = workload(server, args.rows)
        assert log_file == end_file, "the workload rotated the binlog; use fewer rows"
        print(f"workload: {args.rows} row changes written in {time.perf_counter() - started:.1f} s")
        results: dict[str, tuple[int, float]] = {}
        for part in args.parts.split(","):
            if part == "images":
                count, library, compiled = images(server.port, log_file, log_pos, end_pos)
                results["images library"] = (count, library)
                results["images compiled"] = (count, compiled)
                continue
            best = float("inf")
            count = 0
            for _ in range(args.repeat):
                started = time.perf_counter()
                if part == "bare":
                    count = bare(server.port, log_file, log_pos, end_pos)
                else:
                    count = reader(server.port, log_file, log_pos, part)
                best = min(best, time.perf_counter() - started)
            results[part] = (count, best)
        base = results.get("bare")
        labels = {
            "bare": "(a) bare mysql-replication loop",
            "library": "(b) cdc reader, library decoder",
            "fast": "(c) cdc reader, compiled decoder",
            "images library": "row images only: library + mapper",
            "images compiled": "row images only: compiled decoder",
        }
        print(f"{'reader':<34} {'rows':>8} {'seconds':>8} {'rows/s':>9} {'ratio':>8}")
        for part, (count, seconds) in results.items():
            # The row-image lines exclude the framing: compared with each other only.
            versus = results["images library"] if part.startswith("images") else base
            ratio = f"{(count / seconds) / (versus[0] / versus[1]):.2f}x" if versus else "-"
            print(
                f"{labels.get(part, part):<34} {count:>8} {seconds:>8.2f} "
                f"{count / seconds:>9.0f} {ratio:>8}"
            )
        if args.json:
            figures = {
                k: {"rows": n, "seconds": s, "rows_per_s": n / s} for k, (n, s) in results.items()
            }
            Path(args.json).write_text(json.dumps({"rows": args.rows, "readers": figures}))


if __name__ == "__main__":
    main()

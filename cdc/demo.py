"""`cdc demo`: a throwaway MariaDB with a small hospital schema, a stream of writes, and
the daemon capturing it, so a newcomer sees events flowing in one command."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence

import orjson
import structlog

from cdc._testing.mariadb import MariaDB
from cdc.models import StoredEvent
from cdc.settings import Dsn, HttpSettings, Settings

log = structlog.get_logger("cdc.demo")

SCHEMA = (
    "CREATE DATABASE hospital",
    """CREATE TABLE hospital.patient (
        uuid BINARY(16) PRIMARY KEY, display_name VARCHAR(100) NOT NULL, sex ENUM('F','M'),
        dob DATE, user_id INT, created_at TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP(3))""",
    """CREATE TABLE hospital.visit (
        id INT AUTO_INCREMENT PRIMARY KEY, patient_uuid BINARY(16) NOT NULL,
        start_date DATETIME NOT NULL, diagnosis TEXT, user_id INT)""",
    """CREATE TABLE hospital.invoice_item (
        invoice_id INT, line INT, label VARCHAR(80), amount DECIMAL(19,4), user_id INT,
        PRIMARY KEY (invoice_id, line))""",
)
NAMES = ("Amani", "Baraka", "Chausiku", "Dalila", "Eshe", "Faraji", "Gasira", "Halima")


def _writes(server: MariaDB, stop: threading.Event, interval: float) -> None:
    conn = server.connect("hospital")
    rng = random.Random(7)
    patients: list[bytes] = []
    invoice = 0
    with conn.cursor() as cur:
        while not stop.wait(interval):
            user = rng.randint(1, 5)
            roll = rng.random()
            if roll < 0.35 or not patients:
                uid = rng.randbytes(16)
                patients.append(uid)
                cur.execute(
                    "INSERT INTO patient (uuid, display_name, sex, dob, user_id)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (
                        uid,
                        rng.choice(NAMES),
                        rng.choice("FM"),
                        f"19{rng.randint(40, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                        user,
                    ),
                )
            elif roll < 0.6:
                cur.execute(
                    "INSERT INTO visit (patient_uuid, start_date, diagnosis, user_id)"
                    " VALUES (%s, NOW(), %s, %s)",
                    (rng.choice(patients), rng.choice(("malaria", "check-up", "fracture")), user),
                )
            elif roll < 0.8:
                cur.execute(
                    "UPDATE patient SET display_name = %s, user_id = %s WHERE uuid = %s",
                    (rng.choice(NAMES) + " " + rng.choice(NAMES), user, rng.choice(patients)),
                )
            elif roll < 0.95:
                invoice += 1
                conn.begin()
                for line in range(1, rng.randint(2, 4)):
                    cur.execute(
                        "INSERT INTO invoice_item VALUES (%s, %s, %s, %s, %s)",
                        (
                            invoice,
                            line,
                            rng.choice(("consultation", "x-ray", "quinine")),
                            f"{rng.randint(1, 90000) / 100:.2f}",
                            user,
                        ),
                    )
                conn.commit()
            else:
                cur.execute("DELETE FROM visit ORDER BY id LIMIT 1")
    conn.close()


def _print(events: Sequence[StoredEvent]) -> None:
    for e in events:
        data = orjson.loads(e.data)
        changed = ",".join(data.get("changed", ())) or "-"
        print(
            f"#{e.id:<5} {e.timestamp[11:19]} {e.type:<6} {e.schema_name}.{e.table_name:<13}"
            f" row {e.row_id or '-':<34} user {e.user_id or '-':<3} changed {changed}",
            flush=True,
        )


def run_demo(http: str, interval: float) -> int:
    """Blocks until Ctrl-C; returns the daemon's exit code."""
    from cdc.daemon import Daemon

    with MariaDB() as server:
        conn = server.connect()
        with conn.cursor() as cur:
            for statement in SCHEMA:
                cur.execute(statement)
        conn.close()
        url = f"mysql://root@127.0.0.1:{server.port}/cdc"
        log.info(
            "demo_server",
            dsn=url,
            mysql_client=f"mariadb -h127.0.0.1 -P{server.port} -uroot hospital",
        )
        settings = Settings(dsn=Dsn.parse(url), http=HttpSettings(listen=http))
        daemon = Daemon(settings, on_commit=_print)
        stop = threading.Event()
        writer = threading.Thread(target=_writes, args=(server, stop, interval), daemon=True)

        def start_writes() -> None:
            daemon.started.wait()
            time.sleep(0.5)
            writer.start()

        threading.Thread(target=start_writes, daemon=True).start()
        if http:
            log.info(
                "demo_open",
                page=f"http://{http}/",
                events=f"http://{http}/events",
                stream=f"http://{http}/stream",
            )
        try:
            return daemon.run()
        finally:
            stop.set()

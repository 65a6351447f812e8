"""TLS to MariaDB for every connection the daemon opens (binlog stream, store, history,
commands), against a throwaway server started with a certificate the test makes and a
user created with REQUIRE SSL; a connection without TLS, or to a server whose CA is not
the configured one, is refused."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pymysql
import pytest
from pymysql.constants import ER

from cdc._testing.mariadb import MariaDB, free_port
from tests.support import cdc_command, start_daemon, stop_daemon, wait_for_events
from tests.tls_support import Pki, make_pki

pytestmark = pytest.mark.timeout(300)
USER, PASSWORD = "tls_cdc", "tls pass"
X509_USER = "x509_cdc"  # REQUIRE X509: a client certificate signed by the server's CA


@dataclass
class TlsServer:
    server: MariaDB
    pki: Pki
    other: Pki  # a CA that did not sign the server's certificate
    folder: Path

    def dsn(self, db: str, query: str = "", user: str = USER) -> str:
        return f"mysql://{user}:{quote(PASSWORD)}@127.0.0.1:{self.server.port}/{db}{query}"


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TlsServer]:
    with tempfile.TemporaryDirectory(prefix="cdc-tls-") as folder:
        pki = make_pki(Path(folder))
        (Path(folder) / "other").mkdir()
        other = make_pki(Path(folder) / "other", name="another")
        server = MariaDB(
            extra=(
                f"--ssl-ca={pki.ca}",
                f"--ssl-cert={pki.server_cert}",
                f"--ssl-key={pki.server_key}",
            )
        ).start()
        try:
            conn = server.connect()
            with conn.cursor() as cur:
                cur.execute(f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE SSL")
                cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%'")
                cur.execute(
                    f"CREATE USER '{X509_USER}'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE X509"
                )
                cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{X509_USER}'@'%'")
            conn.close()
            yield TlsServer(server, pki, other, Path(folder))
        finally:
            server.stop()


def cdc(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    group = ["--config", str(config)] if config else []
    command = cdc_command(*group, *args)
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_commands_over_tls_and_refusals_without(tls_server: TlsServer) -> None:
    ca = quote(tls_server.pki.ca, safe="")
    ok = cdc("init", "--dsn", tls_server.dsn("cdc_tls_a", f"?ssl_ca={ca}"))
    assert ok.returncode == 0, ok.stderr
    status = cdc("status", "--dsn", tls_server.dsn("cdc_tls_a", f"?ssl_ca={ca}&ssl_mode=verify_ca"))
    assert status.returncode == 0, status.stderr
    # Without TLS (pymysql would otherwise encrypt unverified when the server offers it).
    with pytest.raises(pymysql.err.OperationalError) as refused:
        pymysql.connect(
            host="127.0.0.1",
            port=tls_server.server.port,
            user=USER,
            password=PASSWORD,
            ssl_disabled=True,
        )
    assert refused.value.args[0] == ER.ACCESS_DENIED_ERROR
    other = quote(tls_server.other.ca, safe="")
    foreign = cdc("status", "--dsn", tls_server.dsn("cdc_tls_a", f"?ssl_ca={other}"))
    assert foreign.returncode == 3 and "ssl_ca" in foreign.stderr, foreign.stderr


async def test_capture_history_and_status_over_tls(tls_server: TlsServer) -> None:
    server, pki = tls_server.server, tls_server.pki
    config = tls_server.folder / "cdc.toml"
    config.write_text(
        f'[mysql]\nssl_ca = "{pki.ca}"\nssl_cert = "{pki.client_cert}"\nssl_key = "{pki.client_key}"\n'
    )
    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS tls_app")
        cur.execute("CREATE TABLE IF NOT EXISTS tls_app.patient (id INT PRIMARY KEY, name TEXT)")
    port = free_port()
    proc = start_daemon(
        server,
        "--include",
        "tls_app.*",
        dsn=tls_server.dsn("cdc_tls_b", user=X509_USER),
        http=port,
        env={"CDC_CONFIG": str(config)},
    )
    try:
        deadline = time.monotonic() + 120
        while '"capture_start"' not in proc.log():
            assert proc.poll() is None, proc.log()[-3000:]
            assert time.monotonic() < deadline, "no capture_start in 120 s"
            await asyncio.sleep(0.1)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO tls_app.patient VALUES (1, 'Ann'), (2, 'Bob')")
        await asyncio.to_thread(wait_for_events, conn, 2, 120, proc, "cdc_tls_b")
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/events", params={"after_id": 0}) as r,
        ):
            body = await r.json()  # read back through the history pool, over TLS
        assert [e["row_id"] for e in body["events"]] == [1, 2]
        status = cdc("status", "--dsn", tls_server.dsn("cdc_tls_b", user=X509_USER), config=config)
        assert status.returncode == 0 and "last event id: 2" in status.stdout, status.stderr
        without_cert = cdc("status", "--dsn", tls_server.dsn("cdc_tls_b", user=X509_USER))
        assert without_cert.returncode == 3  # the certificate came from the file's [mysql]
    finally:
        code, log = stop_daemon(proc)
        with conn.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS tls_app")
        conn.close()
    assert code == 0, log[-3000:]


def test_the_daemon_refuses_a_server_its_ca_did_not_sign(tls_server: TlsServer) -> None:
    config = tls_server.folder / "other.toml"
    config.write_text(f'[mysql]\nssl_ca = "{tls_server.other.ca}"\n')
    proc = start_daemon(
        tls_server.server, dsn=tls_server.dsn("cdc_tls_c"), env={"CDC_CONFIG": str(config)}
    )
    proc.wait(120)
    log = proc.log()
    assert proc.returncode == 3, log[-3000:]
    assert "certificate verify failed" in log.lower() and "ssl_ca" in log

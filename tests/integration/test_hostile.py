"""Hostile input against the real server: numbers of any length, oversized request lines,
headers and bodies, CORS off by default and an allow-list, HTTPS with a Secure cookie."""

from __future__ import annotations

import asyncio
import socket
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from cdc.errors import ConfigError
from cdc.sections import AuthSettings
from cdc.serve import app as server
from cdc.settings import HttpSettings
from tests.access_support import bearer, hospital
from tests.http_support import EventDb, running
from tests.tls_support import Pki, make_pki

pytestmark = pytest.mark.timeout(120)
HUGE = "9" * 5000


@pytest.mark.parametrize(
    ("path", "query", "parameter"),
    [
        ("/events", f"limit={HUGE}", "limit"),
        ("/events", f"after_id={HUGE}", "after_id"),
        ("/events", f"before_id={HUGE}", "before_id"),
        ("/events", "limit=\u0661\u0660", "limit"),  # Arabic-Indic digits: int() takes them
        ("/events", "after_id=²", "after_id"),
        ("/events", f"since={HUGE}d", "since"),
        ("/stream", f"last_event_id={HUGE}", "last_event_id"),
        ("/events", "table=" + ",".join(f"s.t{i}" for i in range(101)), "table"),
        ("/events", "user_id=" + "u" * 5000, "user_id"),
    ],
)
async def test_any_number_or_length_is_a_400_naming_the_parameter(
    event_db: EventDb, path: str, query: str, parameter: str
) -> None:
    async with (
        running(event_db) as app,
        aiohttp.ClientSession() as http,
        http.get(f"{app.url}{path}?{query}") as response,
    ):
        assert response.status == 400, await response.text()
        assert (await response.json())["parameter"] == parameter


async def test_a_huge_last_event_id_header_is_a_400(event_db: EventDb) -> None:
    async with (
        running(event_db) as app,
        aiohttp.ClientSession() as http,
        http.get(f"{app.url}/stream", headers={"Last-Event-ID": HUGE}) as response,
    ):
        assert response.status == 400
        assert (await response.json())["parameter"] == "Last-Event-ID"


async def raw_status(port: int, request: bytes) -> int:
    """The status the server answers a request sent as raw bytes (off the loop)."""

    def send() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(request)
            return sock.recv(4096)

    head = await asyncio.to_thread(send)
    return int(head.split(b" ", 2)[1])


async def test_request_line_headers_and_bodies_have_limits(
    event_db: EventDb, tmp_path: Path
) -> None:
    async with running(event_db, auth=hospital(tmp_path).settings()) as app:
        port = app.http.port
        long_line = b"GET /events?row_id=" + b"1" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        assert 400 <= await raw_status(port, long_line) < 500
        long_header = b"GET /events HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 10_000 + b"\r\n\r\n"
        assert 400 <= await raw_status(port, long_header) < 500
        many = b"".join(b"X-%d: 1\r\n" % i for i in range(200))
        assert (
            400
            <= await raw_status(port, b"GET /events HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
            < 500
        )
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{app.url}/login", data={"token": "x" * 100_000}) as response:
                assert response.status == 413
            async with http.post(
                f"{app.url}/login", data=b"\xff\xfe", headers={"Content-Type": "application/json"}
            ) as response:
                assert response.status == 400


async def test_cors_is_off_by_default_and_an_allow_list(event_db: EventDb) -> None:
    origin = "https://ward.hosp.example"
    async with aiohttp.ClientSession() as http:
        async with running(event_db) as app:
            async with http.get(f"{app.url}/events", headers={"Origin": origin}) as response:
                assert response.status == 200
                assert "Access-Control-Allow-Origin" not in response.headers
                assert response.headers["X-Content-Type-Options"] == "nosniff"
            async with http.options(
                f"{app.url}/events",
                headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
            ) as response:
                assert response.status == 403
        async with running(event_db, cors_origin=(origin,)) as app:
            async with http.get(f"{app.url}/stream", headers={"Origin": origin}) as response:
                assert response.headers["Access-Control-Allow-Origin"] == origin
            async with http.get(
                f"{app.url}/events", headers={"Origin": "https://evil.example"}
            ) as response:
                assert "Access-Control-Allow-Origin" not in response.headers
            async with http.options(
                f"{app.url}/events",
                headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
            ) as response:
                assert response.status == 204
                assert "Authorization" in response.headers["Access-Control-Allow-Headers"]


@pytest.fixture
def pki() -> Iterator[Pki]:
    with tempfile.TemporaryDirectory(prefix="cdc-pki-") as folder:
        yield make_pki(Path(folder))


async def test_https_with_a_secure_cookie(event_db: EventDb, pki: Pki, tmp_path: Path) -> None:
    creds = hospital(tmp_path)
    async with running(
        event_db, auth=creds.settings(), tls_cert=pki.server_cert, tls_key=pki.server_key
    ) as app:
        assert app.url.startswith("https://")
        trusted = ssl.create_default_context(cafile=pki.ca)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusted)) as http:
            async with http.get(
                f"{app.url}/events", headers=bearer(creds.tokens["finance"])
            ) as response:
                assert response.status == 200
            async with http.post(
                f"{app.url}/login", json={"token": creds.tokens["finance"]}
            ) as response:
                assert response.status == 204
                assert response.cookies["cdc_session"]["secure"]
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await http.get(f"{app.url}/health")  # a client that does not trust it


def test_a_public_address_without_credentials_is_refused() -> None:
    public = HttpSettings(listen="0.0.0.0:8080")
    with pytest.raises(ConfigError) as refused:
        server.prepare_auth(public, AuthSettings())
    assert refused.value.exit_code == 2 and "cdc token create" in refused.value.fix
    for listen in ("127.0.0.1:0", "[::1]:0", "localhost:0"):
        assert not server.prepare_auth(HttpSettings(listen=listen), AuthSettings()).enabled
    insecure = HttpSettings(listen="0.0.0.0:8080", insecure_no_auth=True)
    assert not server.prepare_auth(insecure, AuthSettings()).enabled
    with pytest.raises(ConfigError, match="go together"):
        server.prepare_auth(HttpSettings(tls_cert="/c.pem"), AuthSettings())

"""Property-based requests (schemathesis, from the OpenAPI description) against a server
with credentials: with no credential, a narrow static token, a narrow JWT, a session
cookie and a ticket, no request gets a 5xx and no answer holds an event of a table the
credential may not read."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import given
from schemathesis import GenerationMode

from tests.access_support import Credentials, bearer, hospital, signed
from tests.http_support import EventDb, make_event, running
from tests.integration.test_server_fuzz import FUZZ, SCHEMA

pytestmark = pytest.mark.timeout(900)
KINDS = ("none", "token", "jwt", "session", "ticket")


@dataclass
class Served:
    url: str
    creds: Credentials
    session: str  # a session cookie of the ward's token


@pytest.fixture(scope="module")
def served(mariadb: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from tests.http_support import new_event_db

    folder = tmp_path_factory.mktemp("fuzz-auth")
    creds = hospital(Path(folder))
    with new_event_db(mariadb) as db:
        fill_mixed(db)
        loop = asyncio.new_event_loop()
        started = threading.Event()
        url: list[str] = []
        stop = asyncio.Event()

        async def serve() -> None:
            async with running(db, auth=creds.settings(), max_clients=50) as app:
                url.append(app.url)
                started.set()
                await stop.wait()

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
        thread.start()
        assert started.wait(30), "the server did not start"
        login = requests.post(
            f"{url[0]}/login", json={"token": creds.tokens["ward-screen"]}, timeout=30
        )
        assert login.status_code == 204
        try:
            yield Served(url[0], creds, login.cookies["cdc_session"])
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(30)
            loop.close()


def fill_mixed(db: EventDb) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    tables = ["patient_visit", "invoice", "cash", "patient"]
    db.insert(
        [
            make_event(
                i,
                schema="hosp",
                table=tables[i % 4],
                type=["CREATE", "UPDATE", "DELETE"][i % 3],
                timestamp=(now - timedelta(minutes=300 - i)).isoformat(sep=" "),
                user_id=str(i % 4),
            )
            for i in range(1, 301)
        ]
    )


ALLOWED = {
    "none": set(),
    "token": {"patient_visit"},
    "session": {"patient_visit"},
    "ticket": {"patient_visit"},
    "jwt": {"invoice"},
}


def credentials(served: Served, kind: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Headers, cookies and extra query parameters of one request as `kind`."""
    ward = served.creds.tokens["ward-screen"]
    if kind == "token":
        return bearer(ward), {}, {}
    if kind == "jwt":
        return bearer(signed(tables=["hosp.invoice"])), {}, {}
    if kind == "session":
        return {}, {"cdc_session": served.session}, {}
    if kind == "ticket":
        minted = requests.post(f"{served.url}/tickets", headers=bearer(ward), timeout=30)
        return {}, {}, {"ticket": minted.json()["ticket"]}
    return {}, {}, {}


def check(served: Served, kind: str, case: schemathesis.Case) -> None:
    headers, cookies, extra = credentials(served, kind)
    kwargs = case.as_transport_kwargs(base_url=served.url)
    if "Authorization" not in (kwargs.get("headers") or {}):
        kwargs["headers"] = {**(kwargs.get("headers") or {}), **headers}
    params = kwargs.get("params") or {}
    if isinstance(params, dict) and "ticket" not in params:
        kwargs["params"] = {**params, **extra}
    kwargs["cookies"] = {**(kwargs.get("cookies") or {}), **cookies}
    with requests.request(**kwargs, stream=True, timeout=30) as response:
        status = response.status_code
        assert status < 500, (kind, case.method, case.path, case.query, status)
        if kind == "none" and case.path in ("/events", "/stream", "/metrics", "/tickets"):
            assert status in (400, 401, 404), (case.path, status)  # never data
        if case.path == "/events" and status == 200:
            tables = {e["table"] for e in response.json()["events"]}
            assert tables <= ALLOWED[kind], (kind, case.query, tables)


OPERATIONS = [
    ("/events", "GET", GenerationMode.POSITIVE),
    ("/events", "GET", GenerationMode.NEGATIVE),
    ("/stream", "GET", GenerationMode.POSITIVE),
    ("/stream", "GET", GenerationMode.NEGATIVE),
    ("/metrics", "GET", GenerationMode.POSITIVE),
    ("/login", "POST", GenerationMode.POSITIVE),
    ("/login", "POST", GenerationMode.NEGATIVE),
    ("/tickets", "POST", GenerationMode.POSITIVE),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("path", "method", "mode"), OPERATIONS, ids=lambda v: str(v))
def test_no_5xx_and_nothing_outside_the_grant(
    served: Served, kind: str, path: str, method: str, mode: GenerationMode
) -> None:
    operation = SCHEMA[path][method]

    @FUZZ
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        check(served, kind, case)

    run()

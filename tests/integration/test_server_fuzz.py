"""Property-based requests generated from the OpenAPI description: never a 5xx.

Schemathesis builds valid and invalid requests for every operation of
`cdc/static/openapi.yaml`; the server runs for real (its own loop in a thread, on MariaDB).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from cdc.serve.app import openapi_spec
from tests.http_support import EventDb, make_event, running

SCHEMA = schemathesis.openapi.from_dict(openapi_spec())
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def base_url(event_db: EventDb) -> Iterator[str]:
    """The real server, serving a few hundred events, on a loop of its own."""
    now = datetime.now(UTC).replace(tzinfo=None)
    event_db.insert(
        [
            make_event(
                i,
                table=["patient", "visit"][i % 2],
                type=["CREATE", "UPDATE", "DELETE"][i % 3],
                timestamp=(now - timedelta(minutes=300 - i)).isoformat(sep=" "),
                user_id=str(i % 4),
            )
            for i in range(1, 301)
        ]
    )
    loop = asyncio.new_event_loop()
    started = threading.Event()
    url: list[str] = []
    stop = asyncio.Event()

    async def serve() -> None:
        async with running(event_db, max_clients=50) as app:
            url.append(app.url)
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(30), "the server did not start"
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def _call(case: schemathesis.Case, base_url: str) -> int:
    kwargs = case.as_transport_kwargs(base_url=base_url)
    # /stream never ends: the status line and headers are all this test needs.
    with requests.request(**kwargs, stream=True, timeout=30) as response:
        return response.status_code


@pytest.mark.parametrize(
    ("path", "mode"),
    [
        ("/events", GenerationMode.POSITIVE),
        ("/events", GenerationMode.NEGATIVE),
        ("/stream", GenerationMode.POSITIVE),
        ("/stream", GenerationMode.NEGATIVE),
        # These take no parameters: nothing invalid to make up.
        ("/health", GenerationMode.POSITIVE),
        ("/metrics", GenerationMode.POSITIVE),
        ("/openapi.json", GenerationMode.POSITIVE),
    ],
)
def test_no_request_gets_a_server_error(base_url: str, path: str, mode: GenerationMode) -> None:
    operation = SCHEMA[path]["GET"]

    @FUZZ
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        status = _call(case, base_url)
        assert status < 500, (case.query, case.headers, status)
        if path in ("/events", "/stream") and mode is GenerationMode.POSITIVE:
            assert status in (200, 400), (case.query, status)

    check()


_names = st.sampled_from(
    [
        "since",
        "until",
        "after_id",
        "before_id",
        "order",
        "table",
        "type",
        "row_id",
        "user_id",
        "limit",
        "last_event_id",
        "x",
        "",
    ]
)
_values = st.one_of(
    st.text(max_size=40),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["1h", "0s", "99999999999d", "2026-05-12T12:00:00+14:00", "[1,", "%00"]),
)


@FUZZ
@given(query=st.lists(st.tuples(_names, _values), max_size=5))
def test_any_query_string_gets_200_or_400(base_url: str, query: list[tuple[str, str]]) -> None:
    for path in ("/events", "/stream"):
        with requests.get(f"{base_url}{path}", params=query, stream=True, timeout=30) as response:
            assert response.status_code in (200, 400), (path, query, response.status_code)
            if response.status_code == 400:
                body = response.json()
                assert body["error"] == "bad_parameter" and body["parameter"] is not None

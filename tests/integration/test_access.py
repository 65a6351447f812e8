"""Who gets in and who sees what, against the real server on MariaDB: no token, a wrong
one, a malformed header; a token limited to one table on /events, /stream and a
Last-Event-ID replay; tickets; sessions; scopes; /health; the access log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import structlog

from cdc.store.reader import WINDOW
from tests.access_support import Clock, Credentials, bearer, fill, get_json, hospital
from tests.http_support import EventDb, Running, running, stream

pytestmark = pytest.mark.timeout(120)


@pytest_asyncio.fixture
async def app(event_db: EventDb, tmp_path: Path) -> AsyncIterator[tuple[Running, Credentials]]:
    creds = hospital(tmp_path)
    fill(event_db)
    clock = Clock()
    async with running(event_db, auth=creds.settings(), clock=clock) as server:
        server.clock = clock  # type: ignore[attr-defined]
        yield server, creds


DATA = ("/events", "/stream", "/metrics")


async def until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)


async def test_no_token_wrong_token_and_a_malformed_header(
    app: tuple[Running, Credentials],
) -> None:
    server, _ = app
    async with aiohttp.ClientSession() as http:
        for path in DATA:
            async with http.get(server.url + path) as response:
                assert response.status == 401, path
                assert response.headers["WWW-Authenticate"] == 'Bearer realm="cdc"'
                assert await response.json() == {"error": "unauthorized"}
            async with http.get(server.url + path, headers=bearer("x" * 43)) as response:
                assert response.status == 401
                assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
                assert await response.json() == {"error": "invalid_token"}  # never why
            for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Bearer é"):
                async with http.get(server.url + path, headers={"Authorization": header}) as r:
                    assert r.status == 400, (path, header)
                    assert 'error="invalid_request"' in r.headers["WWW-Authenticate"]
        async with http.post(server.url + "/tickets") as response:
            assert response.status == 401
        for path in ("/health", "/openapi.json", "/", "/static/app.js"):
            async with http.get(server.url + path) as response:
                assert response.status == 200, path


async def test_a_token_limited_to_one_table(app: tuple[Running, Credentials]) -> None:
    server, creds = app
    ward = creds.tokens["ward-screen"]
    async with aiohttp.ClientSession() as http:
        status, body, _ = await get_json(http, f"{server.url}/events", ward, after_id=0)
        assert status == 200
        assert {e["table"] for e in body["events"]} == {"patient_visit"}
        assert [e["id"] for e in body["events"]] == [1, 5, 9]
        # Another table, an unknown one, a type or table outside: 403, same answer.
        for params in ({"table": "hosp.invoice"}, {"table": "hosp.no_such_table"}):
            status, body, response = await get_json(http, f"{server.url}/events", ward, **params)
            assert status == 403 and body == {"error": "insufficient_scope"}
            assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
        async with http.get(
            f"{server.url}/stream", params={"table": "hosp.cash"}, headers=bearer(ward)
        ) as response:
            assert response.status == 403
        # A table without a schema is a pattern: intersected with the grant.
        status, body, _ = await get_json(http, f"{server.url}/events", ward, table="invoice")
        assert status == 200 and body["events"] == []
        finance = creds.tokens["finance"]
        status, _, _ = await get_json(http, f"{server.url}/events", finance, type="DELETE")
        assert status == 403
        status, body, _ = await get_json(http, f"{server.url}/events", finance, after_id=0)
        assert {(e["table"], e["type"]) for e in body["events"]} <= {
            (t, k) for t in ("invoice", "cash") for k in ("CREATE", "UPDATE")
        }
        assert len(body["events"]) == 4


async def test_the_stream_and_its_replay_hold_only_the_granted_table(
    app: tuple[Running, Credentials],
) -> None:
    server, creds = app
    ward = creds.tokens["ward-screen"]
    async with aiohttp.ClientSession() as http:
        async with stream(http, server.url, last_event_id=0, token=ward) as sse:
            replayed = await sse.events(3)
            assert [(e["id"], e["table"]) for e in replayed] == [
                (1, "patient_visit"),
                (5, "patient_visit"),
                (9, "patient_visit"),
            ]
            # Live: other tables' events first, then one of the granted table; had any
            # of the others been sent, it would come before.
            server.commit(3, schema="hosp", table="invoice")
            server.commit(2, schema="hosp", table="patient")
            marker = server.commit(1, schema="hosp", table="patient_visit")[0]
            (live,) = await sse.events(1)
            assert live["id"] == marker.id and live["table"] == "patient_visit"
        # A resume with Last-Event-ID replays from the table, filtered the same way.
        async with stream(http, server.url, last_event_id=5, token=ward) as sse:
            again = await sse.events(2)
            assert [e["id"] for e in again] == [9, marker.id]


async def test_a_ticket_is_good_once_and_for_its_time(app: tuple[Running, Credentials]) -> None:
    server, creds = app
    clock: Clock = server.clock  # type: ignore[attr-defined]
    ward = creds.tokens["ward-screen"]
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/tickets", headers=bearer(ward)) as response:
            assert response.status == 200
            minted = await response.json()
        assert set(minted) == {"ticket", "expires_in"} and minted["expires_in"] == 30
        ticket = minted["ticket"]
        async with stream(http, server.url, {"ticket": ticket, "last_event_id": 0}) as sse:
            assert [e["table"] for e in await sse.events(3)] == ["patient_visit"] * 3
        async with http.get(f"{server.url}/stream", params={"ticket": ticket}) as response:
            assert response.status == 401  # used already
        async with http.post(f"{server.url}/tickets", headers=bearer(ward)) as response:
            late = (await response.json())["ticket"]
        clock.offset += 31
        status, _, _ = await get_json(http, f"{server.url}/events", ticket=late)
        assert status == 401  # after 30 s
        clock.offset -= 31
        async with http.post(f"{server.url}/tickets", headers=bearer(ward)) as response:
            fresh = (await response.json())["ticket"]
        status, body, _ = await get_json(http, f"{server.url}/events", ticket=fresh, after_id=0)
        assert status == 200 and {e["table"] for e in body["events"]} == {"patient_visit"}
        # A ticket and a token at once: one method per request (RFC 6750).
        status, _, _ = await get_json(http, f"{server.url}/events", ward, ticket=fresh)
        assert status == 400


async def test_sessions_by_json_and_by_form(app: tuple[Running, Credentials]) -> None:
    server, creds = app
    clock: Clock = server.clock  # type: ignore[attr-defined]
    finance = creds.tokens["finance"]
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.post(f"{server.url}/login", json={"token": "wrong"}) as response:
            assert response.status == 401
        async with http.post(f"{server.url}/login", json={"token": finance}) as response:
            assert response.status == 204
            cookie = response.cookies["cdc_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
        assert not cookie["secure"]  # plain HTTP here; HTTPS sets it (see test_hostile)
        assert finance not in cookie.value  # a session id, never the token
        status, body, _ = await get_json(http, f"{server.url}/events", after_id=0)
        assert status == 200 and {e["table"] for e in body["events"]} == {"invoice", "cash"}
        async with http.post(f"{server.url}/logout") as response:
            assert response.status == 204
        jar.update_cookies({"cdc_session": cookie.value})  # a client that keeps it anyway
        status, _, _ = await get_json(http, f"{server.url}/events")
        assert status == 401
        async with http.post(
            f"{server.url}/login", data={"token": finance}, allow_redirects=False
        ) as response:
            assert response.status == 303 and response.headers["Location"] == "/"
        status, _, _ = await get_json(http, f"{server.url}/events")
        assert status == 200
        clock.offset += 8 * 3600 + 1  # past session_seconds
        status, _, _ = await get_json(http, f"{server.url}/events")
        assert status == 401
        for body in ({"json": {"tok": finance}}, {"data": "token"}, {"json": ["x"]}):
            async with http.post(f"{server.url}/login", **body) as response:  # type: ignore[arg-type]
                assert response.status == 400


async def test_metrics_need_their_scope_and_health_says_nothing_of_tables(
    app: tuple[Running, Credentials],
) -> None:
    server, creds = app
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{server.url}/metrics", headers=bearer(creds.tokens["ward-screen"])
        ) as response:
            assert response.status == 403
            assert 'scope="metrics"' in response.headers["WWW-Authenticate"]
        async with http.get(
            f"{server.url}/metrics", headers=bearer(creds.tokens["probe"])
        ) as response:
            assert response.status == 200 and "cdc_events_captured" in await response.text()
        status, body, _ = await get_json(http, f"{server.url}/events", creds.tokens["probe"])
        assert status == 200 and body["events"] == []  # no tables: reads nothing
        status, health, _ = await get_json(http, f"{server.url}/health")
        assert status == 200
        assert set(health) == {"state", "role", "lag_seconds", "max_lag_seconds", "healthy", "auth"}


async def test_the_access_log_names_the_token_never_its_secret(
    app: tuple[Running, Credentials],
) -> None:
    server, creds = app
    ward = creds.tokens["ward-screen"]
    with structlog.testing.capture_logs() as logs:
        async with aiohttp.ClientSession() as http:
            await get_json(http, f"{server.url}/events", ward, table="hosp.patient_visit")
            await get_json(http, f"{server.url}/events", ward, table="hosp.invoice")
            await get_json(http, f"{server.url}/events", "y" * 43)
            async with http.post(f"{server.url}/tickets", headers=bearer(ward)) as response:
                ticket = (await response.json())["ticket"]
            async with stream(http, server.url, {"ticket": ticket, "last_event_id": 0}) as sse:
                await sse.events(3)
            await until(
                lambda: any(entry["event"] == "stream_closed" for entry in logs),
                "the server logs stream_closed once it has seen the client go",
            )
    by_event: dict[str, list[dict[str, object]]] = {}
    for entry in logs:
        by_event.setdefault(str(entry["event"]), []).append(entry)
    (read,) = by_event["access_events"]
    assert read["token"] == "ward-screen" and read["events"] == 3
    assert read["filters"] == {"tables": ["hosp.patient_visit"], "since": read["filters"]["since"]}
    assert read["client"] == "127.0.0.1" and "duration_ms" in read
    reasons = {e["reason"] for e in by_event["access_denied"]}
    assert {"outside_grant_table", "unknown_token"} <= reasons
    (opened,) = by_event["stream_opened"]
    (closed,) = by_event["stream_closed"]
    assert opened["token"] == closed["token"] == "ward-screen" and opened["via"] == "ticket"
    assert closed["events"] == 3 and "duration_s" in closed
    text = repr(logs)
    assert ward not in text and ticket not in text


async def test_a_narrow_grant_walks_the_table_a_window_at_a_time(
    event_db: EventDb, tmp_path: Path
) -> None:
    """Resuming from far back (or from an id not issued yet) with a grant that matches
    almost nothing reads a window of the primary key per request, never the table.
    Counts the rows the server reads (Handler_read_*), not the time it takes."""
    rows = 250_000
    with event_db.conn.cursor() as cur:
        # Only the last event is of the ward's table.
        cur.execute(
            f"INSERT INTO `{event_db.name}`.event SELECT seq, UTC_TIMESTAMP(6), NULL, 'CREATE',"
            " 'hosp', IF(seq = %s, 'patient_visit', 'invoice'), seq, '{}', 't', NULL"
            " FROM seq_1_to_250000",
            (rows,),
        )

    def reads() -> int:
        with event_db.conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Handler_read%%'")
            return sum(int(v) for _, v in cur.fetchall())

    creds = hospital(tmp_path)
    ward = creds.tokens["ward-screen"]
    async with running(event_db, auth=creds.settings()) as app, aiohttp.ClientSession() as http:
        pages, after, found = 0, 0, []
        while after is not None:
            before = reads()
            status, body, _ = await get_json(http, f"{app.url}/events", ward, after_id=after)
            assert status == 200
            assert reads() - before < WINDOW * 1.5, "a request read more than its window"
            found += body["events"]
            after, pages = body["next_after_id"], pages + 1
        assert [e["id"] for e in found] == [rows] and pages == 3
        before = reads()
        status, body, _ = await get_json(http, f"{app.url}/events", ward, after_id=10**15)
        assert status == 200 and body == {"events": [], "next_after_id": None}
        assert reads() - before < 100  # an id not issued yet: nothing to walk
        async with stream(http, app.url, last_event_id=0, token=ward) as sse:
            (replayed,) = await sse.events(1)  # walked to, a window per query
            assert replayed["id"] == rows

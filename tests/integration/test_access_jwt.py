"""Signed tokens and reloads against the real server: a JWT's grant, an expired one, one
signed with another key or with `alg: none`, a stream closed at its token's exp, a login
with a JWT; SIGHUP's reload closing the streams and sessions of a removed token only."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import jwt
import pytest

from cdc.errors import ConfigError
from tests.access_support import Clock, bearer, fill, get_json, hospital, signed
from tests.http_support import EventDb, Sse, running, stream

pytestmark = pytest.mark.timeout(120)


async def until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)


def unsigned(**claims: object) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(b'{"alg":"none","typ":"JWT"}')
    return f"{header}.{part(json.dumps(claims).encode())}."


async def test_a_jwt_reads_its_claims_grant(event_db: EventDb, tmp_path: Path) -> None:
    fill(event_db)
    creds = hospital(tmp_path)
    async with running(event_db, auth=creds.settings()) as app, aiohttp.ClientSession() as http:
        nurse = signed(tables=["hosp.patient_visit", "hosp.patient"], types=["CREATE", "UPDATE"])
        status, body, _ = await get_json(http, f"{app.url}/events", nurse, after_id=0)
        assert status == 200 and body["events"]
        assert {e["table"] for e in body["events"]} <= {"patient_visit", "patient"}
        assert {e["type"] for e in body["events"]} <= {"CREATE", "UPDATE"}
        status, _, _ = await get_json(http, f"{app.url}/events", nurse, table="hosp.cash")
        assert status == 403
        refused = {
            "expired": signed(seconds=-5, tables=["hosp.*"]),
            "another key": jwt.encode(
                {"sub": "x", "exp": int(time.time()) + 60, "cdc": {"tables": ["hosp.*"]}},
                b"k" * 48,
                algorithm="HS256",
            ),
            "alg none": unsigned(sub="x", exp=int(time.time()) + 60, cdc={"tables": ["hosp.*"]}),
            "no exp": jwt.encode({"sub": "x"}, b"j" * 48, algorithm="HS256"),
        }
        for what, token in refused.items():
            for path in ("/events", "/stream"):
                async with http.get(app.url + path, headers=bearer(token)) as response:
                    assert response.status == 401, (what, path)
                    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        # A JWT logs in too; the session ends with the token.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            async with browser.post(f"{app.url}/login", json={"token": nurse}) as response:
                assert response.status == 204
                assert int(response.cookies["cdc_session"]["max-age"]) <= 300
            status, body, _ = await get_json(browser, f"{app.url}/events", after_id=0)
            assert status == 200 and {e["table"] for e in body["events"]} <= {
                "patient_visit",
                "patient",
            }


async def test_a_stream_ends_when_its_jwt_expires(event_db: EventDb, tmp_path: Path) -> None:
    creds = hospital(tmp_path)
    async with running(event_db, auth=creds.settings()) as app, aiohttp.ClientSession() as http:
        short = signed(seconds=3, tables=["hosp.*"])
        exp = jwt.decode(short, options={"verify_signature": False})["exp"]
        async with stream(http, app.url, token=short) as sse:
            app.commit(1, schema="hosp", table="invoice")
            assert len(await sse.events(1)) == 1
            assert await asyncio.wait_for(sse.frame(), 60) is None  # the server ended it
            assert time.time() >= exp - 1  # not before its exp (whole seconds)
        async with http.get(f"{app.url}/stream", headers=bearer(short)) as response:
            assert response.status == 401


async def test_a_reload_closes_the_removed_tokens_streams_only(
    event_db: EventDb, tmp_path: Path
) -> None:
    creds = hospital(tmp_path)
    clock = Clock()
    async with (
        running(event_db, auth=creds.settings(), clock=clock) as app,
        aiohttp.ClientSession() as http,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser,
    ):
        ward, finance = creds.tokens["ward-screen"], creds.tokens["finance"]
        async with browser.post(f"{app.url}/login", json={"token": ward}) as response:
            assert response.status == 204
        nurse = signed(tables=["hosp.*"])
        async with (
            stream(http, app.url, token=ward) as ward_sse,
            stream(http, app.url, token=finance) as finance_sse,
            stream(http, app.url, token=nurse) as nurse_sse,
        ):
            await until(lambda: app.hub.clients == 3, "three clients attached")
            del creds.tokens["ward-screen"]
            app.http.reload_auth(creds.settings())
            # The ward's stream ends at once, without any event to wake it.
            assert await asyncio.wait_for(ward_sse.frame(), 30) is None
            app.commit(1, schema="hosp", table="invoice")
            assert [e["table"] for e in await finance_sse.events(1)] == ["invoice"]
            assert [e["table"] for e in await nurse_sse.events(1)] == ["invoice"]
            assert app.hub.clients == 2
        status, _, _ = await get_json(http, f"{app.url}/events", ward)
        assert status == 401
        status, _, _ = await get_json(browser, f"{app.url}/events")  # its session ended too
        assert status == 401
        # A new JWT key: the streams of tokens signed with the old one close.
        async with stream(http, app.url, token=nurse) as sse:
            settings = creds.settings()
            (tmp_path / "jwt.secret").write_bytes(b"n" * 48)  # after settings() wrote the old
            app.http.reload_auth(settings)
            assert await asyncio.wait_for(sse.frame(), 30) is None
        status, _, _ = await get_json(http, f"{app.url}/events", finance)
        assert status == 200


async def test_a_bad_reload_keeps_the_keys_in_force(event_db: EventDb, tmp_path: Path) -> None:
    creds = hospital(tmp_path)
    async with running(event_db, auth=creds.settings()) as app, aiohttp.ClientSession() as http:
        broken = creds.settings()
        (tmp_path / "jwt.secret").unlink()
        with pytest.raises(ConfigError, match=r"cannot read the \[auth\.jwt\] key"):
            app.http.reload_auth(broken)
        status, _, _ = await get_json(http, f"{app.url}/events", creds.tokens["finance"])
        assert status == 200
        async with http.get(f"{app.url}/stream", headers=bearer(signed(tables=["*"]))) as r:
            assert r.status == 200
            await Sse(r).attached()

"""The issue's walk-through against the real daemon (`cdc run` with a TOML file) and a
real MariaDB: the ward's screen sees only patient_visit, the finance office invoice and
cash, the app server's users follow with their own JWT grants, phone numbers are masked
and found nowhere the daemon writes; removed tokens; the refusal to serve a public
address without credentials; a key column that would be masked."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from cdc._testing.mariadb import MariaDB, free_port
from cdc.policy.tokens import digest, new_token
from tests.http_support import Sse
from tests.support import Daemon, cdc_command, start_daemon, stop_daemon, wait_for_events

pytestmark = pytest.mark.timeout(300)

PHONES = ["+243-81-555-0101", "+243-81-555-0202", "+243-99-555-0303"]
JWT_SECRET = b"the app server's secret, 32 bytes or more"
_count = iter(range(1, 10_000))


@dataclass
class Hospital:
    server: MariaDB
    schema: str
    events: str
    folder: Path
    conn: Any
    port: int
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.folder / "cdc.toml"

    def write_config(self, tokens: dict[str, dict[str, Any]], redact: str | None = None) -> None:
        lines = ["[auth]"]
        for name, grant in tokens.items():
            lines += [
                "[[auth.tokens]]",
                f'name = "{name}"',
                f'sha256 = "{digest(self.tokens[name])}"',
            ]
            lines += [f"{key} = {json.dumps(value)}" for key, value in grant.items()]
        lines += ["[auth.jwt]", f'hs256_secret_file = "{self.folder / "jwt.secret"}"']
        lines += ['audience = "cdc"']
        lines.append(
            redact
            if redact is not None
            else f'[[redact]]\ncolumns = ["{self.schema}.patient.phone", "*.*.password_hash"]\n'
            'action = "mask"'
        )
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, *args: str, http: int | str | None = None) -> Daemon:
        dsn = f"mysql://root@127.0.0.1:{self.server.port}/{self.events}"
        return start_daemon(
            self.server,
            "--include",
            f"{self.schema}.*",
            *args,
            dsn=dsn,
            http=self.port if http is None else http,
            env={"CDC_CONFIG": str(self.config)},
        )

    def sql(self, *statements: str) -> None:
        with self.conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement.format(s=f"`{self.schema}`"))


@contextlib.contextmanager
def hospital(mariadb: MariaDB) -> Iterator[Hospital]:
    n = next(_count)
    schema, events = f"hosp_{n}", f"hosp_cdc_{n}"
    conn = mariadb.connect()
    with tempfile.TemporaryDirectory(prefix="cdc-access-") as folder:
        setup = Hospital(mariadb, schema, events, Path(folder), conn, free_port(), {})
        secret = Path(folder) / "jwt.secret"
        secret.write_bytes(JWT_SECRET)
        secret.chmod(0o600)
        for name in ("ward-screen", "finance", "probe"):
            setup.tokens[name] = new_token()
        setup.sql(
            "CREATE DATABASE {s}",
            "CREATE TABLE {s}.patient (id INT PRIMARY KEY, name VARCHAR(50), phone VARCHAR(30),"
            " password_hash CHAR(60), user_id INT)",
            "CREATE TABLE {s}.patient_visit (id INT PRIMARY KEY, patient_id INT, ward CHAR(1),"
            " user_id INT)",
            "CREATE TABLE {s}.invoice (id INT PRIMARY KEY, amount DECIMAL(10,2), user_id INT)",
            "CREATE TABLE {s}.cash (id INT PRIMARY KEY, amount DECIMAL(10,2), user_id INT)",
        )
        try:
            yield setup
        finally:
            setup.sql("DROP DATABASE IF EXISTS {s}", f"DROP DATABASE IF EXISTS `{events}`")
            conn.close()


GRANTS: dict[str, dict[str, Any]] = {
    "ward-screen": {"tables": ["{s}.patient_visit"]},
    "finance": {"tables": ["{s}.invoice", "{s}.cash"]},
    "probe": {"tables": [], "scopes": ["metrics"]},
}


def grants(setup: Hospital, *names: str) -> dict[str, dict[str, Any]]:
    out = {}
    for name in names or tuple(GRANTS):
        grant = dict(GRANTS[name])
        grant["tables"] = [t.replace("{s}", setup.schema) for t in grant["tables"]]
        out[name] = grant
    return out


@pytest.fixture
def hosp(mariadb: MariaDB) -> Iterator[Hospital]:
    with hospital(mariadb) as setup:
        yield setup


async def serving(setup: Hospital, proc: Daemon) -> None:
    """Waits until the daemon captures and its API answers."""
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"daemon exited {proc.returncode}:\n{proc.log()[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{setup.url}/health") as response:
                    if response.status == 200 and '"capture_start"' in proc.log():
                        return
            await asyncio.sleep(0.1)
    raise AssertionError(f"the daemon did not serve in 120 s:\n{proc.log()[-3000:]}")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_jwt(sub: str, tables: list[str], seconds: float = 600) -> str:
    claims = {
        "sub": sub,
        "aud": "cdc",
        "exp": int(time.time() + seconds),
        "cdc": {"tables": tables},
    }
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


@contextlib.asynccontextmanager
async def sse(
    http: aiohttp.ClientSession, url: str, token: str | None = None, **params: Any
) -> AsyncIterator[Sse]:
    headers = bearer(token) if token else {}
    async with http.get(f"{url}/stream", params=params, headers=headers) as response:
        assert response.status == 200, (response.status, await response.text())
        stream = Sse(response)
        await stream.attached()
        yield stream


def write_hospital_day(setup: Hospital) -> int:
    """Rows in all four tables, phones in patient; returns the number of row changes."""
    setup.sql(
        "INSERT INTO {s}.patient VALUES"
        f" (1, 'Ann', '{PHONES[0]}', '$2b$12$hash1', 7), (2, 'Bob', '{PHONES[1]}', 'h2', 7)",
        "INSERT INTO {s}.patient_visit VALUES (10, 1, 'A', 7), (11, 2, 'B', 8)",
        "INSERT INTO {s}.invoice VALUES (20, 12.50, 9)",
        "INSERT INTO {s}.cash VALUES (30, 12.50, 9)",
        f"UPDATE {{s}}.patient SET phone = '{PHONES[2]}' WHERE id = 1",  # a mask-only change
        "UPDATE {s}.patient_visit SET ward = 'C' WHERE id = 10",
        "DELETE FROM {s}.patient WHERE id = 2",
    )
    return 9


async def test_the_dba_walkthrough(hosp: Hospital) -> None:
    hosp.write_config(grants(hosp))
    proc = hosp.start()
    try:
        await serving(hosp, proc)
        total = await asyncio.to_thread(write_hospital_day, hosp)
        await asyncio.to_thread(wait_for_events, hosp.conn, total, 120, proc, hosp.events)
        async with aiohttp.ClientSession() as http:
            await the_ward_sees_only_patient_visit(hosp, http)
            await finance_sees_invoice_and_cash(hosp, http)
            frames = await a_user_follows_with_a_jwt_ticket(hosp, http)
            async with http.get(
                f"{hosp.url}/metrics", headers=bearer(hosp.tokens["probe"])
            ) as response:
                metrics_text = await response.text()
                assert response.status == 200
            async with http.get(f"{hosp.url}/events", params={"after_id": 0}) as response:
                assert response.status == 401
    finally:
        code, log = stop_daemon(proc)
    assert code == 0, log[-3000:]
    stored = stored_text(hosp)
    assert '"***"' in stored and "password_hash" in stored
    for phone in PHONES:
        for where, text in (("event table", stored), ("stream", frames), ("metrics", metrics_text)):
            assert phone not in text, f"a phone number in the {where}"
        assert phone not in log, "a phone number in the log"
    for token in hosp.tokens.values():
        assert token not in log
    assert "$2b$12$hash1" not in stored and "$2b$12$hash1" not in frames
    # The mask-only UPDATE of patient 1's phone is an event listing the column.
    with hosp.conn.cursor() as cur:
        cur.execute(
            f"SELECT data FROM `{hosp.events}`.event WHERE table_name = 'patient'"
            " AND type = 'UPDATE'"
        )
        (data,) = cur.fetchone()
    assert json.loads(data)["changed"] == ["phone"]
    for name in ("access_events", "stream_opened", "stream_closed", "access_denied"):
        assert f'"{name}"' in log, name


def stored_text(setup: Hospital) -> str:
    with setup.conn.cursor() as cur:
        cur.execute(f"SELECT user_id, row_id, data FROM `{setup.events}`.event")
        return repr(cur.fetchall())


async def the_ward_sees_only_patient_visit(setup: Hospital, http: aiohttp.ClientSession) -> None:
    ward = setup.tokens["ward-screen"]
    async with http.get(
        f"{setup.url}/events", params={"after_id": 0}, headers=bearer(ward)
    ) as response:
        body = await response.json()
    assert [(e["table"], e["type"]) for e in body["events"]] == [
        ("patient_visit", "CREATE"),
        ("patient_visit", "CREATE"),
        ("patient_visit", "UPDATE"),
    ]
    for other in (f"{setup.schema}.patient", f"{setup.schema}.invoice", "mysql.user", "x.y"):
        async with http.get(
            f"{setup.url}/events", params={"table": other}, headers=bearer(ward)
        ) as response:
            assert response.status == 403, other
    async with sse(http, setup.url, ward, last_event_id=0) as stream:
        replayed = await stream.events(3)
        assert [e["id"] for e in replayed] == [e["id"] for e in body["events"]]
        await asyncio.to_thread(
            setup.sql,
            "INSERT INTO {s}.invoice VALUES (21, 1.00, 9)",
            f"INSERT INTO {{s}}.patient VALUES (3, 'Cy', '{PHONES[0]}', 'h3', 7)",
            "INSERT INTO {s}.patient_visit VALUES (12, 3, 'A', 7)",
        )
        (live,) = await stream.events(1)  # had the other two been sent, they came first
        assert live["table"] == "patient_visit" and live["row_id"] == 12


async def finance_sees_invoice_and_cash(setup: Hospital, http: aiohttp.ClientSession) -> None:
    async with http.get(
        f"{setup.url}/events", params={"after_id": 0}, headers=bearer(setup.tokens["finance"])
    ) as response:
        body = await response.json()
    assert {e["table"] for e in body["events"]} == {"invoice", "cash"}
    assert len(body["events"]) == 3


async def a_user_follows_with_a_jwt_ticket(setup: Hospital, http: aiohttp.ClientSession) -> str:
    """A doctor's browser: a JWT from the app server for every table, a ticket for its
    EventSource; every frame it gets is kept (to look for phone numbers)."""
    doctor = user_jwt("doctor-3", [f"{setup.schema}.*"])
    async with http.post(f"{setup.url}/tickets", headers=bearer(doctor)) as response:
        ticket = (await response.json())["ticket"]
    frames = []
    async with sse(http, setup.url, ticket=ticket, last_event_id=0) as stream:
        for event in await stream.events(12):
            frames.append(json.dumps(event))
    assert doctor not in frames
    no_aud = jwt.encode(
        {"sub": "x", "exp": int(time.time()) + 60, "cdc": {"tables": ["*"]}},
        JWT_SECRET,
        algorithm="HS256",
    )
    async with http.get(f"{setup.url}/events", headers=bearer(no_aud)) as response:
        assert response.status == 401  # audience configured: a token without aud is refused
    return "\n".join(frames)


async def test_removed_tokens_after_a_reload_and_a_restart(hosp: Hospital) -> None:
    hosp.write_config(grants(hosp))
    proc = hosp.start()
    ward, finance = hosp.tokens["ward-screen"], hosp.tokens["finance"]
    try:
        await serving(hosp, proc)
        async with (
            aiohttp.ClientSession() as http,
            sse(http, hosp.url, ward) as ward_stream,
            sse(http, hosp.url, finance) as finance_stream,
        ):
            hosp.write_config(grants(hosp, "finance", "probe"))
            proc.send_signal(signal.SIGHUP)
            assert await asyncio.wait_for(ward_stream.frame(), 60) is None  # closed at once
            await asyncio.to_thread(hosp.sql, "INSERT INTO {s}.cash VALUES (1, 2.00, 9)")
            assert [e["table"] for e in await finance_stream.events(1)] == ["cash"]
            async with http.get(f"{hosp.url}/events", headers=bearer(ward)) as response:
                assert response.status == 401
    finally:
        assert stop_daemon(proc)[0] == 0
    proc = hosp.start()
    try:
        await serving(hosp, proc)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{hosp.url}/events", headers=bearer(ward)) as response:
                assert response.status == 401
            async with http.get(f"{hosp.url}/events", headers=bearer(finance)) as response:
                assert response.status == 200
    finally:
        code, log = stop_daemon(proc)
    assert '"auth_reloaded"' not in log  # the restart read the file afresh
    assert code == 0


async def test_tail_follows_with_a_token_file(hosp: Hospital) -> None:
    hosp.write_config(grants(hosp))
    token_file = hosp.folder / "ward.token"
    token_file.write_text(hosp.tokens["ward-screen"] + "\n")
    token_file.chmod(0o600)
    proc = hosp.start()
    out = hosp.folder / "tail.out"
    try:
        await serving(hosp, proc)
        await asyncio.to_thread(write_hospital_day, hosp)
        with open(out, "w") as sink:
            tail = subprocess.Popen(
                cdc_command(
                    "tail", hosp.url, "--token-file", str(token_file), "--last-event-id", "0"
                ),
                stdout=sink,
                stderr=subprocess.DEVNULL,
            )
        try:
            deadline = time.monotonic() + 120
            while len(out.read_text().splitlines()) < 3:
                assert tail.poll() is None, "cdc tail exited"
                assert time.monotonic() < deadline, "cdc tail printed too little in 120 s"
                await asyncio.sleep(0.1)
        finally:
            tail.terminate()
            tail.wait(30)
        printed = [json.loads(line) for line in out.read_text().splitlines()]
        assert {e["table"] for e in printed} == {"patient_visit"}
        refused = subprocess.run(
            [*cdc_command("tail", hosp.url), "--last-event-id", "0"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 2 and "--token-file" in refused.stderr
    finally:
        stop_daemon(proc)


async def test_a_public_address_without_credentials_is_refused(hosp: Hospital) -> None:
    hosp.config.write_text("")  # no [auth]
    public = f"0.0.0.0:{hosp.port}"
    proc = hosp.start(http=public)
    proc.wait(120)
    log = proc.log()
    assert proc.returncode == 2, log[-2000:]
    assert "cdc token create" in log and "--insecure-no-auth" in log
    proc = hosp.start("--insecure-no-auth", http=public)
    try:
        await serving(hosp, proc)
        assert '"insecure_no_auth"' in proc.log()
    finally:
        assert stop_daemon(proc)[0] == 0


async def test_a_masked_key_column_is_refused_at_start(hosp: Hospital) -> None:
    hosp.write_config(
        grants(hosp), redact=f'[[redact]]\ncolumns = ["{hosp.schema}.*.id"]\naction = "mask"'
    )
    proc = hosp.start()
    proc.wait(120)
    log = proc.log()
    assert proc.returncode == 2, log[-2000:]
    assert f"{hosp.schema}.patient.id (mask)" in log and "hash" in log


async def test_programs_publish_application_events_with_the_publish_scope(hosp: Hospital) -> None:
    """POST /events: an outbox row in a transaction of its own, back on the stream through
    capture, in order; refused without the scope, outside the grant, or with a bad body."""
    hosp.tokens["app"] = new_token()
    config = grants(hosp, "ward-screen")
    # Events about no table (LOGIN) are read by grants that name their type.
    config["app"] = {
        "tables": [f"{hosp.schema}.patient_visit"],
        "types": ["CREATE", "UPDATE", "DELETE", "LOGIN", "VISIT_PRINTED"],
        "scopes": ["publish"],
    }
    hosp.write_config(config)
    proc = hosp.start()
    try:
        await serving(hosp, proc)
        async with aiohttp.ClientSession() as http:
            url, app = f"{hosp.url}/events", bearer(hosp.tokens["app"])
            ward = sse(http, hosp.url, hosp.tokens["ward-screen"])
            async with sse(http, hosp.url, hosp.tokens["app"]) as stream, ward as screen:
                login = {"type": "LOGIN", "user_id": 7, "data": {"ip": "10.0.0.9"}}
                async with http.post(url, json=login, headers=app) as response:
                    assert response.status == 202, await response.text()
                    assert (await response.json())["outbox_id"] > 0
                about = {"type": "VISIT_PRINTED", "schema": hosp.schema, "table": "patient_visit",
                         "row_id": 10}  # fmt: skip
                async with http.post(url, json=about, headers=app) as response:
                    assert response.status == 202
                got = await stream.events(2)
                # The ward's screen (no type named) sees the event about its table only.
                assert [e["type"] for e in await screen.events(1)] == ["VISIT_PRINTED"]
            assert [(e["type"], e["user_id"], e["schema"]) for e in got] == [
                ("LOGIN", 7, None),
                ("VISIT_PRINTED", None, hosp.schema),
            ]
            assert got[0]["data"] == {"ip": "10.0.0.9"} and got[1]["row_id"] == 10
            refusals = [
                (bearer(hosp.tokens["ward-screen"]), login, 403),  # no publish scope
                (app, {**about, "table": "invoice"}, 403),  # outside its grant
                (app, {"type": "CREATE"}, 400),  # a row change's type
                (app, {"type": "LOGIN", "extra": 1}, 400),
                ({}, login, 401),
            ]
            for headers, body, status in refusals:
                async with http.post(url, json=body, headers=headers) as response:
                    assert response.status == status, (body, await response.text())
    finally:
        code, log = stop_daemon(proc)
    assert code == 0, log[-3000:]

"""The HTTP API against a real MariaDB: `/events`, `/health`, `/metrics`, the spec, the page."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from cdc.models import CaptureState
from cdc.serve import query as history
from tests.http_support import EventDb, all_ids, make_event, running


def ago(**delta: float) -> str:
    moment = datetime.now(UTC).replace(tzinfo=None) - timedelta(**delta)
    return moment.isoformat(sep=" ", timespec="microseconds")


async def get(url: str, **params: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body, response


async def test_events_default_to_the_last_day_oldest_first(event_db: EventDb) -> None:
    event_db.insert([make_event(i, timestamp=ago(days=2, seconds=-i)) for i in range(1, 6)])
    event_db.insert([make_event(i, timestamp=ago(hours=3, seconds=-i)) for i in range(6, 10)])
    async with running(event_db) as app:
        status, body, _ = await get(f"{app.url}/events")
    assert status == 200
    assert [e["id"] for e in body["events"]] == [6, 7, 8, 9]
    assert body["next_after_id"] is None
    first = body["events"][0]
    assert set(first) == {
        "id",
        "timestamp",
        "type",
        "schema",
        "table",
        "row_id",
        "user_id",
        "data",
        "context",
        "txn",
    }
    assert first["row_id"] == 6 and first["user_id"] == 7 and first["schema"] == "bhima"
    assert first["timestamp"].endswith("Z") and "T" in first["timestamp"]
    assert first["data"]["changed"] == ["name"]


async def test_paging_both_ways_sees_every_event_once(event_db: EventDb) -> None:
    event_db.insert([make_event(i, timestamp=ago(minutes=60 - i / 100)) for i in range(1, 2501)])
    async with running(event_db) as app:
        seen: list[int] = []
        params: dict[str, Any] = {"limit": 1000}
        while True:
            status, body, _ = await get(f"{app.url}/events", **params)
            assert status == 200
            seen += [e["id"] for e in body["events"]]
            if body["next_after_id"] is None:
                break
            params["after_id"] = body["next_after_id"]
        assert seen == list(range(1, 2501))
        back: list[int] = []
        params = {"limit": 700, "order": "desc", "since": "1d"}
        while True:
            status, body, _ = await get(f"{app.url}/events", **params)
            back += [e["id"] for e in body["events"]]
            if body["next_before_id"] is None:
                break
            params["before_id"] = body["next_before_id"]
        assert back == list(range(2500, 0, -1))


async def test_filters(event_db: EventDb) -> None:
    now = ago(minutes=1)
    rows = [
        make_event(1, table="patient", type="CREATE", user_id="7", timestamp=now),
        make_event(2, table="visit", type="UPDATE", user_id="8", timestamp=now),
        make_event(3, schema="other", table="patient", type="DELETE", timestamp=now),
        make_event(4, table="patient", type="UPDATE", row_id="[4, 1]", timestamp=now),
        make_event(5, table="patient", type="UPDATE", user_id=None, timestamp=ago(hours=5)),
    ]
    event_db.insert(rows)
    cases: list[tuple[list[tuple[str, str]], list[int]]] = [
        ([("table", "patient")], [1, 3, 4, 5]),
        ([("table", "bhima.patient")], [1, 4, 5]),
        ([("table", "bhima.patient"), ("table", "visit")], [1, 2, 4, 5]),
        ([("table", "visit,other.patient")], [2, 3]),
        ([("type", "UPDATE")], [2, 4, 5]),
        ([("type", "create,delete")], [1, 3]),
        ([("row_id", "1")], [1]),
        ([("row_id", "[4,1]")], [4]),
        ([("user_id", "8")], [2]),
        ([("since", "1h")], [1, 2, 3, 4]),
        ([("until", "1h")], [5]),
        ([("table", "patient"), ("type", "UPDATE"), ("since", "2h")], [4]),
        ([("table", "nothing")], []),
    ]
    async with running(event_db) as app, aiohttp.ClientSession() as session:
        for params, expected in cases:
            async with session.get(f"{app.url}/events", params=params) as response:
                body = await response.json()
            assert [e["id"] for e in body["events"]] == expected, params


@pytest.mark.parametrize(
    ("query", "on_events", "on_stream"),
    [
        ("nonsense=1", "nonsense", "nonsense"),
        ("since=tomorrow", "since", "since"),
        ("until=1x", "until", "until"),
        ("limit=0", "limit", "limit"),
        ("limit=100000", "limit", "limit"),
        ("after_id=-5", "after_id", "after_id"),
        ("type=NOT-A-TYPE", "type", "type"),
        ("table=bhima.", "table", "table"),
        ("order=sideways", "order", "order"),
        ("since=2h&until=3h", "until", "until"),
        ("row_id=" + "9" * 2000, "row_id", "row_id"),
        ("user_id=1&user_id=2", "user_id", "user_id"),
        ("last_event_id=x", "last_event_id", "last_event_id"),
        ("since=1h&last_event_id=-1", "last_event_id", "last_event_id"),
    ],
)
async def test_bad_parameters_get_400_naming_them(
    event_db: EventDb, query: str, on_events: str, on_stream: str
) -> None:
    async with running(event_db) as app, aiohttp.ClientSession() as session:
        for path, parameter in (("/events", on_events), ("/stream", on_stream)):
            async with session.get(f"{app.url}{path}?{query}") as response:
                assert response.status == 400, (path, query)
                body = await response.json()
            assert body["error"] == "bad_parameter"
            assert body["parameter"] == parameter, (path, body)
            assert body["message"] and not body["message"].startswith(parameter + ":")
        async with session.get(f"{app.url}/stream", headers={"Last-Event-ID": "x"}) as response:
            assert response.status == 400
            assert (await response.json())["parameter"] == "Last-Event-ID"


async def test_events_answer_503_when_the_table_cannot_be_read(event_db: EventDb) -> None:
    async with running(event_db) as app:
        with event_db.conn.cursor() as cur:
            cur.execute(f"DROP TABLE `{event_db.name}`.event")
        status, body, response = await get(f"{app.url}/events")
    assert status == 503 and body["error"] == "unavailable"
    assert response.headers["Retry-After"]


async def test_health(event_db: EventDb) -> None:
    async with running(event_db, health_max_lag=10) as app:
        status, body, _ = await get(f"{app.url}/health")
        assert status == 200
        assert body["healthy"] is True and body["state"] == "capturing"
        assert body["position"] == "binlog.000003:1234" and body["clients"] == 0
        assert body["lag_seconds"] == 0.5
        app.status = dataclasses.replace(app.status, lag_seconds=11.0)
        status, body, _ = await get(f"{app.url}/health")
        assert status == 503 and body["healthy"] is False
        app.status = dataclasses.replace(
            app.status, lag_seconds=None, state=CaptureState.RECONNECTING
        )
        status, body, _ = await get(f"{app.url}/health")
        assert status == 503 and body["state"] == "reconnecting"


async def test_metrics(event_db: EventDb) -> None:
    async with (
        running(event_db) as app,
        aiohttp.ClientSession() as session,
        session.get(f"{app.url}/metrics") as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    for name in (
        "cdc_events_captured",
        "cdc_capture_lag_seconds 0.5",
        "cdc_batch_commit_seconds",
        "cdc_stream_clients 0.0",
        "cdc_stream_clients_dropped_total",
        "cdc_stream_clients_rejected_total",
        "cdc_history_query_seconds",
    ):
        assert name in text


async def test_openapi_describes_the_parameters_the_server_takes(event_db: EventDb) -> None:
    async with running(event_db) as app:
        status, spec, _ = await get(f"{app.url}/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {
        "/events",
        "/stream",
        "/health",
        "/metrics",
        "/openapi.json",
        "/login",
        "/logout",
        "/tickets",
    }

    def names(path: str) -> set[str]:
        out = set()
        for parameter in spec["paths"][path]["get"]["parameters"]:
            if "$ref" in parameter:
                parameter = spec["components"]["parameters"][parameter["$ref"].split("/")[-1]]
            if parameter["in"] == "query":
                out.add(parameter["name"])
        return out

    assert names("/events") == history.EVENTS_PARAMETERS
    assert names("/stream") == history.STREAM_PARAMETERS


async def test_the_page_and_its_files_are_served(event_db: EventDb) -> None:
    async with running(event_db) as app, aiohttp.ClientSession() as session:
        async with session.get(f"{app.url}/") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            html = await response.text()
        assert "static/app.js" in html
        for asset in ("static/app.js", "static/app.css"):
            async with session.get(f"{app.url}/{asset}") as response:
                assert response.status == 200


@pytest.mark.slow
async def test_a_day_out_of_a_million_rows_is_read_from_the_indexes(event_db: EventDb) -> None:
    """Counts the rows the server reads (Handler_read_*), not the time it takes."""
    rows, day = 1_000_000, 30_000
    with event_db.conn.cursor() as cur:
        # 1M events over ~33 days, ~30k a day; one row in 50 is `visit`, ids in order.
        cur.execute(
            f"INSERT INTO `{event_db.name}`.event"
            " SELECT seq, UTC_TIMESTAMP(6) - INTERVAL ((%s - seq) * 86400 / %s) SECOND, seq %% 97,"
            " ELT(1 + seq %% 3, 'CREATE', 'UPDATE', 'DELETE'), 'bhima',"
            " IF(seq %% 50 = 0, 'visit', 'patient'), seq %% 1000,"
            " JSON_OBJECT('after', JSON_OBJECT('id', seq)), CONCAT('0-1-', seq), NULL"
            " FROM seq_1_to_1000000",
            (rows, day),
        )
        cur.execute(f"ANALYZE TABLE `{event_db.name}`.event")
        cur.fetchall()

    def reads() -> int:
        with event_db.conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Handler_read%%'")
            return sum(int(v) for _, v in cur.fetchall())

    async with running(event_db) as app, aiohttp.ClientSession() as session:
        cases: list[tuple[dict[str, Any], int]] = [
            ({"limit": 10000}, 10000),
            ({"limit": 10000, "order": "desc"}, 10000),
            ({"table": "bhima.visit", "limit": 10000}, day // 50),
            ({"row_id": "501", "table": "bhima.patient"}, day // 1000),
            ({"user_id": "5", "limit": 10000}, day // 97),
            ({"since": "2h", "type": "DELETE"}, day // 12 // 3),
        ]
        for params, about in cases:
            before = reads()
            async with session.get(f"{app.url}/events", params=params) as response:
                body = await response.json()
            read = reads() - before
            assert abs(len(body["events"]) - about) <= about // 10 + 2, params
            # The day's rows at most, a few times over (index and row): never the table.
            assert read < 4 * day, (params, read)


async def test_events_match_the_table(event_db: EventDb) -> None:
    event_db.insert([make_event(i, timestamp=ago(minutes=5)) for i in range(1, 40)])
    async with running(event_db) as app:
        _, body, _ = await get(f"{app.url}/events", table="patient")
    assert [e["id"] for e in body["events"]] == all_ids(event_db)

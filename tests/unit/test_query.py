"""Request parameters -> filters: every bad one is named, and memory agrees with SQL."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc.models import StoredEvent
from cdc.serve.query import BadParameter, parse_events_query, parse_stream_query, parse_time
from cdc.store.reader import Filters

NOW = datetime(2026, 5, 12, 12, 0, 0)


def events(query: str) -> Filters:
    return parse_events_query(_pairs(query), now=NOW)


def _pairs(query: str) -> list[tuple[str, str]]:
    return [tuple(p.split("=", 1)) for p in query.split("&") if p]  # type: ignore[misc]


def test_default_is_the_last_24_hours_oldest_first() -> None:
    filters = events("")
    assert filters == Filters(since="2026-05-11 12:00:00.000000", limit=1000)
    assert not filters.descending


def test_paging_by_id_drops_the_default_window() -> None:
    assert events("after_id=17").since is None
    assert events("before_id=17&order=desc").since is None


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("1h", "2026-05-12 11:00:00.000000"),
        ("30s", "2026-05-12 11:59:30.000000"),
        ("15m", "2026-05-12 11:45:00.000000"),
        ("7d", "2026-05-05 12:00:00.000000"),
        ("2w", "2026-04-28 12:00:00.000000"),
        ("2026-05-12T10:19:40Z", "2026-05-12 10:19:40.000000"),
        ("2026-05-12T12:19:40+02:00", "2026-05-12 10:19:40.000000"),
        ("2026-05-12 10:19:40.5", "2026-05-12 10:19:40.500000"),
        ("2026-05-12", "2026-05-12 00:00:00.000000"),
        ("999999999w", "1000-01-01 00:00:00.000000"),  # everything: clamped, not an error
        ("0001-01-01T00:00:00+01:00", "1000-01-01 00:00:00.000000"),
        ("9999-12-31T23:59:59-01:00", "9999-12-31 23:59:59.999999"),
    ],
)
def test_times(value: str, stored: str) -> None:
    assert parse_time("since", value, NOW) == stored


def test_tables_types_and_keys() -> None:
    filters = events("table=bhima.patient,visit&table=x.y&type=create&type=UPDATE,DELETE")
    assert filters.tables == (("bhima", "patient"), (None, "visit"), ("x", "y"))
    assert filters.types == ("CREATE", "UPDATE", "DELETE")
    assert events("row_id=42").row_ids == ("42",)
    assert set(events("row_id=[1, 2]").row_ids) == {"[1, 2]", "[1,2]"}
    assert events("user_id=7").user_id == "7"
    assert events("limit=10000").limit == 10000
    assert events("order=desc").descending


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("bogus=1", "bogus"),
        ("since=yesterday", "since"),
        ("since=", "since"),
        ("until=12:00", "until"),
        ("since=1h&until=2h", "until"),
        ("after_id=-1", "after_id"),
        ("after_id=abc", "after_id"),
        ("after_id=18446744073709551616", "after_id"),
        ("before_id=1.5", "before_id"),
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("limit=ten", "limit"),
        ("limit=1&limit=2", "limit"),
        ("type=NOT-A-TYPE", "type"),
        ("type=" + "X" * 33, "type"),
        ("table=.patient", "table"),
        ("table=bhima.", "table"),
        ("table=" + "x" * 65, "table"),
        ("row_id=" + "1" * 1025, "row_id"),
        ("user_id=" + "u" * 256, "user_id"),
        ("order=up", "order"),
        ("last_event_id=3", "last_event_id"),  # a /stream parameter
        ("since=\ud800", "since"),
    ],
)
def test_bad_parameters_are_named(query: str, parameter: str) -> None:
    with pytest.raises(BadParameter) as caught:
        events(query)
    assert caught.value.parameter == parameter
    body = caught.value.body()
    assert body["parameter"] == parameter and body["message"]


def test_stream_parameters() -> None:
    filters, after = parse_stream_query(_pairs("table=patient&last_event_id=12"), None, now=NOW)
    assert filters.tables == ((None, "patient"),) and after == 12
    assert filters.since is None  # live: no default window
    # The header of a reconnecting EventSource wins over the first request's parameter.
    assert parse_stream_query(_pairs("last_event_id=12"), "40", now=NOW)[1] == 40
    assert parse_stream_query([], None, now=NOW) == (Filters(), None)
    for query, header, parameter in [
        ("limit=5", None, "limit"),
        ("until=1h", None, "until"),
        ("after_id=5", None, "after_id"),
        ("", "x", "Last-Event-ID"),
        ("last_event_id=-4", None, "last_event_id"),
    ]:
        with pytest.raises(BadParameter) as caught:
            parse_stream_query(_pairs(query), header, now=NOW)
        assert caught.value.parameter == parameter


def _like_sql(filters: Filters, e: StoredEvent) -> bool:
    """What `Filters.conditions()` asks the server, evaluated by hand on one row."""
    checks = []
    if filters.tables:
        checks.append(
            any(e.table_name == t and (s is None or e.schema_name == s) for s, t in filters.tables)
        )
    if filters.types:
        checks.append(e.type in filters.types)
    if filters.row_ids:
        checks.append(e.row_id in filters.row_ids)
    if filters.user_id is not None:
        checks.append(e.user_id == filters.user_id)
    if filters.since is not None:
        checks.append(e.timestamp >= filters.since)
    if filters.until is not None:
        checks.append(e.timestamp < filters.until)
    return all(checks)


_names = st.sampled_from(["a", "b", "patient"])
_stored_events = st.builds(
    StoredEvent,
    id=st.integers(1, 10),
    timestamp=st.sampled_from(["2026-05-11 00:00:00.000000", "2026-05-12 11:30:00.000001"]),
    user_id=st.sampled_from([None, "7", "8"]),
    type=st.sampled_from(["CREATE", "UPDATE", "DELETE"]),
    schema_name=_names,
    table_name=_names,
    row_id=st.sampled_from([None, "1", "[1,2]"]),
    data=st.just("{}"),
    txn=st.just("t"),
)
_queries = st.lists(
    st.sampled_from(
        [
            ("table", "a.b"),
            ("table", "patient"),
            ("table", "b.a,a"),
            ("type", "CREATE"),
            ("type", "update,delete"),
            ("row_id", "1"),
            ("row_id", "[1, 2]"),
            ("user_id", "7"),
            ("since", "1h"),
            ("until", "2026-05-12"),
        ]
    ),
    max_size=4,
    unique_by=lambda pair: pair[0] if pair[0] not in ("table", "type") else pair,
)


@given(_queries, _stored_events)
def test_live_filtering_agrees_with_the_sql(query: list[tuple[str, str]], e: StoredEvent) -> None:
    try:
        filters = parse_events_query(query, now=NOW)
    except BadParameter:
        return
    assert filters.matches(e) == _like_sql(filters, e)
    where, args = filters.conditions()
    assert sum(part.count("%s") for part in where) == len(args)
    if filters.selects_all:
        assert filters.matches(e)


def test_conditions_are_parameterised() -> None:
    where, args = events("table=a.b'--&user_id=x' OR 1=1").conditions()
    assert all("'" not in part for part in where)
    assert "b'--" in args and "x' OR 1=1" in args

"""The event JSON: one shape for history and live, straight from a stored row."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdc.models import StoredEvent
from cdc.wire import event_json, iso_timestamp, key_value, sse_frame


def stored(**overrides: Any) -> StoredEvent:
    fields: dict[str, Any] = {
        "id": 1017,
        "timestamp": "2026-05-12 12:19:40.000000",
        "user_id": None,
        "type": "UPDATE",
        "schema_name": "bhima",
        "table_name": "patient",
        "row_id": "42",
        "data": '{"after": {"display_name": "Ann"}, "before": {"display_name": "An"},'
        ' "changed": ["display_name"]}',
        "txn": "0-1-5531",
    }
    fields.update(overrides)
    return StoredEvent(**fields)


def test_the_design_example() -> None:
    event = stored(user_id="7", context='{"route": "/patients"}')
    assert json.loads(event_json(event)) == {
        "id": 1017,
        "timestamp": "2026-05-12T12:19:40Z",
        "type": "UPDATE",
        "schema": "bhima",
        "table": "patient",
        "row_id": 42,
        "user_id": 7,
        "data": {
            "after": {"display_name": "Ann"},
            "before": {"display_name": "An"},
            "changed": ["display_name"],
        },
        "context": {"route": "/patients"},
        "txn": "0-1-5531",
    }
    # Without tags, and for an application event about no record: null, not absent.
    plain = json.loads(event_json(stored(type="LOGIN", schema_name=None, table_name=None)))
    assert (plain["context"], plain["schema"], plain["table"]) == (None, None, None)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (None, None),
        ("42", 42),
        ("0", 0),
        ("-7", -7),
        ("18446744073709551615", 18446744073709551615),  # BIGINT UNSIGNED max
        ("18446744073709551616", "18446744073709551616"),  # too big for JSON numbers here
        ("007", "007"),  # not canonical: a string key
        ("-0", "-0"),
        ("4.5", "4.5"),  # DECIMAL keys stay exact strings
        ("", ""),
        ("abc", "abc"),
        ("[1, 2]", [1, 2]),
        ('[1,"a"]', [1, "a"]),
        ("[not json", "[not json"),
        (" 42", " 42"),
    ],
)
def test_row_and_user_ids_come_back_as_values(text: str | None, value: Any) -> None:
    assert key_value(text) == value
    rendered = json.loads(event_json(stored(row_id=text, user_id=text)))
    assert rendered["row_id"] == value
    assert rendered["user_id"] == value


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2026-05-12 12:19:40.000000", "2026-05-12T12:19:40Z"),
        ("2026-05-12 12:19:40.120000", "2026-05-12T12:19:40.120000Z"),
        ("2026-05-12 12:19:40.000001", "2026-05-12T12:19:40.000001Z"),
        ("2026-05-12 12:19:40", "2026-05-12T12:19:40Z"),
    ],
)
def test_timestamps_are_iso_utc(text: str, iso: str) -> None:
    assert iso_timestamp(text) == iso


def test_data_is_embedded_as_is() -> None:
    data = '{"after": {"price": "12.50", "big": 123456789012345678901234567890, "t": "\\u00e9"}}'
    rendered = event_json(stored(data=data, type="CREATE"))
    # Spliced in unparsed: the number too big for a float and the escapes survive untouched.
    assert data.encode() in rendered
    assert json.loads(rendered)["data"]["after"]["big"] == 123456789012345678901234567890


def test_data_with_line_breaks_stays_on_one_line() -> None:
    rendered = event_json(stored(data='{\n  "after": {"note": "a\\nb"}\r\n}'))
    assert b"\n" not in rendered and b"\r" not in rendered
    assert json.loads(rendered)["data"] == {"after": {"note": "a\nb"}}


def test_unicode_stays_one_line() -> None:
    rendered = event_json(stored(data='{"after": {"n": "l\u2028x \U0001f600"}}', row_id="é"))
    assert b"\n" not in rendered
    assert json.loads(rendered)["row_id"] == "é"


def test_sse_frame() -> None:
    frame = sse_frame(stored(type="DELETE"))
    head, data = frame.split(b"data: ")
    assert head == b"id: 1017\nevent: DELETE\n"
    assert data.endswith(b"\n\n") and data.count(b"\n") == 2
    assert json.loads(data)["type"] == "DELETE"

"""Events that the event table could not hold: JSON nested deeper than MariaDB's JSON
type takes becomes its text; images over the size budget lose their largest values."""

from __future__ import annotations

import hashlib

import orjson

from cdc.capture.records import MAX_JSON_DEPTH, fit_depth, fit_size, omitted, to_record
from cdc.models import Column, Op, RowChange, Table

TABLE = Table("s", "t", (Column("id", 3), Column("doc", 245), Column("big", 252)), ("id",))


def nested(depth: int) -> list[object]:
    value: list[object] = [1]
    for _ in range(depth - 1):
        value = [value]
    return value


def test_json_as_deep_as_an_event_holds_stays_json() -> None:
    row = {"id": 1, "doc": nested(MAX_JSON_DEPTH), "flat": {"a": [1, {"b": 2}]}}
    assert fit_depth(dict(row)) == row


def test_deeper_json_becomes_its_text() -> None:
    deep = nested(MAX_JSON_DEPTH + 1)
    fitted = fit_depth({"id": 1, "doc": deep})
    assert fitted["doc"] == orjson.dumps(deep).decode()
    record = to_record(RowChange(Op.CREATE, TABLE, None, {"id": 1, "doc": nested(100)}), 0, "t")
    assert isinstance(record.data["after"]["doc"], str)


def test_images_over_the_budget_lose_their_largest_values_first() -> None:
    before = {"id": 1, "big": "ab" * 600, "doc": "x" * 100}
    after = {"id": 1, "big": "cd" * 600, "doc": "x" * 100}
    fit_size(before, after, budget=1000)
    assert before["big"] == omitted("ab" * 600) and after["big"] == omitted("cd" * 600)
    assert before["doc"] == after["doc"] == "x" * 100 and before["id"] == 1
    text = orjson.dumps("ab" * 600)
    assert before["big"] == {
        "omitted": "too_large",
        "bytes": len(text),
        "sha256": hashlib.sha256(text).hexdigest(),
    }
    small = {"id": 1, "doc": "é" * 10}
    fit_size(small, budget=1500)
    assert small == {"id": 1, "doc": "é" * 10}


def test_an_update_of_a_big_row_still_lists_what_changed() -> None:
    big = "00" * (7 * 2**20)  # 14 MiB of hex, twice in an UPDATE
    change = RowChange(
        Op.UPDATE, TABLE, {"id": 1, "doc": "a", "big": big}, {"id": 1, "doc": "b", "big": big}
    )
    record = to_record(change, 0, "t")
    assert record.data["changed"] == ["doc"]
    assert record.data["before"]["big"] == record.data["after"]["big"] == omitted(big)

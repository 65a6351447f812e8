"""Redaction at capture, on records as `to_record` builds them: drop, mask, hash, for every
value type; `changed`, `row_id` and `user_id`; CASCADE records; keys refused."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
import pytest

from cdc.capture.records import to_record
from cdc.errors import ConfigError
from cdc.models import CASCADE, ChangeRecord, Column, Op, RowChange, Table
from cdc.policy.redaction import MASK, RedactionPlan, hash_value
from cdc.sections import parse_redact

KEY = b"hmac key of the test"
PATIENT = Table(
    "hosp",
    "patient",
    tuple(Column(n, 3) for n in ("id", "name", "phone", "dob", "balance", "notes", "photo")),
    ("id",),
)


def plan(*rules: dict[str, Any], user_column: str = "user_id") -> RedactionPlan:
    return RedactionPlan(parse_redact(list(rules)), {"/k": KEY}, user_column)


def hmac_of(value: Any) -> str:
    return hmac.new(KEY, orjson.dumps(value), hashlib.sha256).hexdigest()


ROW = {
    "id": 42,
    "name": "Ann",
    "phone": "+243 81 555 0101",
    "dob": "1990-02-03",
    "balance": "12.3400",
    "notes": {"allergies": ["penicillin"]},
    "photo": "ffd8ffe0",
    "user_id": 7,
}


def record(op: Op, before: Any, after: Any, table: Table = PATIENT) -> ChangeRecord:
    return to_record(RowChange(op, table, before, after), 1778588380.5, "0-1-1")


def test_drop_mask_and_hash_every_kind_of_value() -> None:
    rules = plan(
        {"columns": ["hosp.patient.phone", "hosp.patient.balance"], "action": "mask"},
        {"columns": ["hosp.patient.dob", "*.*.notes"], "action": "hash", "hash_key_file": "/k"},
        {"columns": ["hosp.patient.photo"], "action": "drop"},
    )
    created = record(Op.CREATE, None, dict(ROW))
    rules.apply([created])
    after = created.data["after"]
    assert list(after) == ["id", "name", "phone", "dob", "balance", "notes", "user_id"]
    assert after["phone"] == MASK and after["balance"] == MASK  # a string, a DECIMAL
    assert after["dob"] == hmac_of("1990-02-03") and len(after["dob"]) == 64
    assert after["notes"] == hmac_of({"allergies": ["penicillin"]})  # JSON hashed as its text
    assert "photo" not in after
    assert after["name"] == "Ann" and created.row_id == 42 and created.user_id == 7


def test_numbers_null_and_binary_are_masked_too() -> None:
    table = Table("s", "t", (Column("id", 3), Column("n", 3)), ("id",))
    rules = plan({"columns": ["s.t.n"], "action": "mask"})
    for value in (5, 1.5, None, True, "00ff", [1, 2]):
        r = record(Op.CREATE, None, {"id": 1, "n": value}, table)
        rules.apply([r])
        assert r.data["after"]["n"] == MASK


def test_changed_is_computed_on_clear_values_then_pruned_of_dropped_columns() -> None:
    rules = plan(
        {"columns": ["hosp.patient.phone"], "action": "mask"},
        {"columns": ["hosp.patient.photo"], "action": "drop"},
    )
    update = record(Op.UPDATE, dict(ROW), {**ROW, "phone": "+243 81 555 0202", "photo": "00"})
    assert update.data["changed"] == ["phone", "photo"]
    rules.apply([update])
    # The mask-only change still lists the column (its event is kept); the dropped one never.
    assert update.data["changed"] == ["phone"]
    assert update.data["before"]["phone"] == update.data["after"]["phone"] == MASK
    assert "photo" not in update.data["before"] and "photo" not in update.data["after"]
    only_dropped = record(Op.UPDATE, dict(ROW), {**ROW, "photo": "00"})
    rules.apply([only_dropped])
    assert only_dropped.data["changed"] == []  # the event is still produced


def test_a_hashed_key_is_hashed_in_row_id_too() -> None:
    rules = plan({"columns": ["hosp.patient.id"], "action": "hash", "hash_key_file": "/k"})
    deleted = record(Op.DELETE, dict(ROW), None)
    rules.apply([deleted])
    assert deleted.row_id == hmac_of(42) == deleted.data["before"]["id"]
    composite = Table("s", "visit", (Column("ward", 3), Column("bed", 3)), ("ward", "bed"))
    rules = plan({"columns": ["s.visit.bed"], "action": "hash", "hash_key_file": "/k"})
    r = record(Op.CREATE, None, {"ward": "A", "bed": 3}, composite)
    rules.apply([r])
    assert r.row_id == ["A", hmac_of(3)]


@pytest.mark.parametrize("action", ["drop", "mask"])
def test_dropping_or_masking_a_key_is_refused(action: str) -> None:
    rules = plan({"columns": ["hosp.*.id"], "action": action})
    with pytest.raises(ConfigError, match=r"hosp\.patient\.id") as refused:
        rules.check_keys({("hosp", "patient"): ("id",), ("other", "x"): ("id",)})
    assert "hash" in refused.value.fix
    rules.check_keys({("other", "patient"): ("id",)})  # not matched: fine
    with pytest.raises(ConfigError, match="key column"):
        rules.apply([record(Op.CREATE, None, dict(ROW))])


@pytest.mark.parametrize(
    ("action", "expected"), [("drop", None), ("mask", MASK), ("hash", hmac_of(7))]
)
def test_the_user_column_redacts_user_id_the_same_way(action: str, expected: Any) -> None:
    rule: dict[str, Any] = {"columns": ["hosp.patient.user_id"], "action": action}
    if action == "hash":
        rule["hash_key_file"] = "/k"
    r = record(Op.CREATE, None, dict(ROW))
    plan(rule).apply([r])
    assert r.user_id == expected
    assert r.data["after"].get("user_id", None) == expected


def cascade(table: str, data: dict[str, Any], cause: ChangeRecord | None) -> ChangeRecord:
    return ChangeRecord(
        type=CASCADE,  # type: ignore[arg-type]
        schema="hosp",
        table=table,
        row_id=None,
        user_id=7,  # the cause's, as capture/cascades.py copies it
        data=data,
        timestamp=0.0,
        txn="0-1-2",
        cause=cause,
    )


def test_cascade_records_are_redacted_by_the_child_tables_rules() -> None:
    rules = plan(
        {"columns": ["hosp.visit.phone"], "action": "mask"},
        {"columns": ["hosp.visit.patient_id"], "action": "hash", "hash_key_file": "/k"},
        {"columns": ["hosp.visit.note", "hosp.patient.user_id"], "action": "drop"},
    )
    parent = record(Op.DELETE, dict(ROW), None)
    child = cascade(
        "visit",
        {
            "action": "SET NULL",
            "where": {"patient_id": 42},
            "set": {"phone": "+243 81 555 0101", "note": "x", "ward": "B"},
        },
        parent,
    )
    # A grandchild's rows are "those of visit matching where": that where is visit's.
    grandchild = cascade(
        "note",
        {
            "action": "DELETE",
            "where": {
                "visit_id": {
                    "in": {
                        "schema": "hosp",
                        "table": "visit",
                        "column": "id",
                        "where": {"patient_id": 42},
                    }
                }
            },
        },
        parent,
    )
    rules.apply([parent, child, grandchild])
    assert child.data == {
        "action": "SET NULL",
        "where": {"patient_id": hmac_of(42)},
        "set": {"phone": MASK, "ward": "B"},
    }
    inner = grandchild.data["where"]["visit_id"]["in"]
    assert inner["where"] == {"patient_id": hmac_of(42)} and inner["column"] == "id"
    # The cause's user column is dropped: so is the user_id its cascades carry.
    assert parent.user_id is None and child.user_id is None and grandchild.user_id is None


def test_the_strongest_rule_wins_and_tables_without_rules_are_untouched() -> None:
    rules = plan(
        {"columns": ["*.*.phone"], "action": "hash", "hash_key_file": "/k"},
        {"columns": ["hosp.patient.phone"], "action": "mask"},
    )
    r = record(Op.CREATE, None, dict(ROW))
    untouched = record(Op.CREATE, None, {"id": 1, "name": "x"})
    before = untouched.data["after"]
    rules.apply([r, untouched])
    assert r.data["after"]["phone"] == MASK
    assert untouched.data["after"] is before  # no copy when nothing is redacted


def test_hash_value_is_the_hmac_of_the_json_text() -> None:
    assert hash_value(KEY, "Ann") == hmac.new(KEY, b'"Ann"', hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"columns": ["hosp.patient.phone"], "action": "hide"}], "not drop, mask or hash"),
        ([{"columns": ["hosp.patient.phone"], "action": "hash"}], "hash needs hash_key_file"),
        ([{"columns": [], "action": "mask"}], "columns is missing or empty"),
        ([{"columns": ["phone"], "action": "mask"}], "not schema.table.column"),
        ([{"columns": ["a.b.c"], "action": "mask", "extra": 1}], "unknown key"),
        ({"columns": ["a.b.c"]}, "array of tables"),
    ],
)
def test_bad_rules_name_the_key(rules: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_redact(rules)

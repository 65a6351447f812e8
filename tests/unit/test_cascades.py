"""CASCADE events from the foreign-key graph, without a server."""

from __future__ import annotations

from typing import Any

from cdc.capture.cascades import Cascades, foreign_keys
from cdc.models import CASCADE, ChangeRecord, Op

# (schema, table, constraint, column, ref schema, ref table, ref column, delete, update)
KEYS = [
    ("h", "visit", "fk_p", "patient_id", "h", "patient", "id", "CASCADE", "CASCADE"),
    ("h", "item", "fk_v1", "visit_id", "h", "visit", "id", "CASCADE", "RESTRICT"),
    ("h", "pair", "fk_c", "a", "h", "patient", "id", "SET NULL", "NO ACTION"),
    ("h", "pair", "fk_c", "b", "h", "patient", "site", "SET NULL", "NO ACTION"),
    ("h", "audit", "fk_r", "patient_id", "h", "patient", "id", "RESTRICT", "RESTRICT"),
    ("h", "emp", "fk_m", "manager", "h", "emp", "id", "CASCADE", "CASCADE"),
]


def change(op: Op, table: str, before: Any, after: Any = None) -> ChangeRecord:
    data: dict[str, Any] = {"before": before}
    if after is not None:
        data["after"] = after
    return ChangeRecord(op, "h", table, 1, "7", data, 1.0, "0-1-1")


def graph(captured: set[str] | None = None) -> Cascades:
    return Cascades(foreign_keys(KEYS), lambda s, t: captured is None or t in captured)


def summary(records: list[ChangeRecord]) -> list[tuple[str, dict[str, Any]]]:
    assert all(r.type == CASCADE and r.row_id is None and r.user_id == "7" for r in records)
    return [(r.table, r.data) for r in records]


def test_a_delete_two_levels_deep_and_set_null_composite() -> None:
    cause = change(Op.DELETE, "patient", {"id": 5, "site": 2, "name": "x"})
    got = graph().after(cause)
    visits = {"in": {"schema": "h", "table": "visit", "column": "id", "where": {"patient_id": 5}}}
    assert summary(got) == [
        ("pair", {"action": "SET NULL", "where": {"a": 5, "b": 2}, "set": {"a": None, "b": None}}),
        ("item", {"action": "DELETE", "where": {"visit_id": visits}}),
        ("visit", {"action": "DELETE", "where": {"patient_id": 5}}),
    ]
    assert all(r.cause is cause for r in got)


def test_a_key_update_cascades_and_others_do_not() -> None:
    moved = change(Op.UPDATE, "patient", {"id": 5, "site": 2}, {"id": 6, "site": 2})
    assert summary(graph().after(moved)) == [
        ("visit", {"action": "UPDATE", "where": {"patient_id": 5}, "set": {"patient_id": 6}}),
    ]
    same = change(Op.UPDATE, "patient", {"id": 5, "site": 2}, {"id": 5, "site": 2})
    assert graph().after(same) == []
    assert graph().after(change(Op.CREATE, "patient", None)) == []


def test_null_keys_match_nothing_and_cycles_stop() -> None:
    assert summary(graph().after(change(Op.DELETE, "patient", {"id": None, "site": None}))) == []
    got = summary(graph().after(change(Op.DELETE, "emp", {"id": 1, "manager": None})))
    assert got == [("emp", {"action": "DELETE", "where": {"manager": 1}})]  # one step only


def test_only_captured_tables_get_events_but_the_graph_is_followed() -> None:
    got = graph({"item"}).after(change(Op.DELETE, "patient", {"id": 5, "site": 2}))
    assert [r.table for r in got] == ["item"]

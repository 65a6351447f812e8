"""Trigger mode's pure parts: the staged form of each kind and back, the SQL of both
servers (MySQL's paths are tested here: no MySQL server runs in the tests), table
versions, the HMAC pads, and the mover's bookkeeping."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from cdc.capture.triggers import pattern, sql
from cdc.capture.triggers.columns import (
    Kind,
    Redact,
    StagedColumn,
    column_kind,
    quote_text,
    renderer,
    staged_sql,
    value_sql,
)
from cdc.capture.triggers.mover import Mover, _Handed
from cdc.capture.triggers.spec import TableSpec, UserSource, key_id, key_pads, table_spec
from cdc.errors import CaptureError, ConfigError
from cdc.models import ChangeRecord, Op
from cdc.values import UndecodableText

KEYS = "`cdc`.`cdc_redact_keys`"


def _spec(
    *columns: StagedColumn, user: UserSource | None = None, outbox: bool = False
) -> TableSpec:
    spec = TableSpec(
        "app",
        "patient",
        columns,
        ("id",),
        outbox=outbox,
        user=user,
        staging="`cdc`.`cdc_staging`",
        keys_table=KEYS,
    )
    return sql.versioned(spec)


ID = StagedColumn("id", Kind.INTEGER)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (Kind.INTEGER, "NEW.`c`"),
        (Kind.DOUBLE, "NEW.`c`"),
        (Kind.JSON, "NEW.`c`"),  # MySQL's JSON: embedded as it is
        (Kind.FLOAT, "CAST(NEW.`c` AS DOUBLE)"),  # a FLOAT in JSON_OBJECT keeps 6 digits
        (Kind.YEAR, "NEW.`c` + 0"),  # JSON_OBJECT writes YEAR 0 as 0000
        (Kind.BIT, "NEW.`c` + 0"),
        (Kind.DECIMAL, "CAST(NEW.`c` AS CHAR)"),
        (Kind.DATE, "CAST(NEW.`c` AS CHAR)"),
        (Kind.TIME, "CAST(NEW.`c` AS CHAR)"),
        (Kind.AS_TEXT, "CAST(NEW.`c` AS CHAR)"),
        (Kind.TEXT, "HEX(NEW.`c`)"),
        (Kind.ENUM, "HEX(NEW.`c`)"),
        (Kind.SET, "HEX(NEW.`c`)"),
        (Kind.BINARY, "HEX(NEW.`c`)"),
        (Kind.JSON_TEXT, "HEX(NEW.`c`)"),
    ],
)
def test_the_staged_form_of_each_kind(kind: Kind, expected: str) -> None:
    assert value_sql(StagedColumn("c", kind), "NEW.`c`") == expected


def test_a_timestamp_is_staged_as_its_stored_seconds() -> None:
    text = value_sql(StagedColumn("c", Kind.TIMESTAMP, fsp=3), "NEW.`c`")
    assert "UNIX_TIMESTAMP(NEW.`c`)" in text and "'0'" in text  # the zero TIMESTAMP is 0


def test_redaction_happens_in_the_trigger() -> None:
    drop = StagedColumn("phone", Kind.TEXT, "utf8mb4", redact=Redact.DROP)
    mask = StagedColumn("note", Kind.TEXT, "utf8mb4", redact=Redact.MASK)
    hashed = StagedColumn("name", Kind.TEXT, "utf8mb4", redact=Redact.HASH, key="0123456789abcdef")
    assert staged_sql(drop, "NEW.`phone`", KEYS) is None
    assert staged_sql(mask, "NEW.`note`", KEYS) == "'***'"
    digest = staged_sql(hashed, "NEW.`name`", KEYS)
    assert digest is not None
    assert digest.startswith("SHA2(CONCAT((SELECT opad FROM `cdc`.`cdc_redact_keys`")
    assert "WHERE id = '0123456789abcdef'" in digest and "COALESCE(CAST(HEX(NEW.`name`)" in digest
    spec = _spec(ID, drop, mask, hashed)
    update = sql.body_sql(spec, Op.UPDATE)
    assert "`phone`" not in update.split("'redacted_changed'")[0]  # never staged
    assert (
        "'redacted_changed', JSON_ARRAY(IF(HEX(OLD.`phone`) <=> HEX(NEW.`phone`), NULL, 'phone')"
        in update
    )
    assert spec.redacted == {"phone", "note", "name"}


def test_the_user_comes_from_the_session_or_from_the_redacted_column() -> None:
    plain = _spec(ID)
    assert sql.user_sql(plain, Op.CREATE) == "LEFT(CAST(@cdc_user_id AS CHAR), 255)"
    masked = _spec(ID, user=UserSource("user_id", Redact.MASK))
    text = sql.user_sql(masked, Op.DELETE)
    assert "COALESCE(LEFT(CAST(@cdc_user_id AS CHAR), 255), CAST(OLD.`user_id` AS CHAR))" in text
    assert text.endswith("'***')")
    assert sql.user_sql(_spec(ID, user=UserSource("user_id", Redact.DROP)), Op.CREATE) == "NULL"
    hashed = sql.user_sql(_spec(ID, user=UserSource("user_id", Redact.HASH, "k" * 16)), Op.CREATE)
    assert "SHA2(" in hashed and "NEW.`user_id`" in hashed


def test_mariadb_replaces_a_trigger_atomically_before_the_applications() -> None:
    spec = _spec(ID)
    [statement] = sql.create_sql(spec, Op.UPDATE, "app_touch", is_mariadb=True, replace=True)
    assert statement.startswith(
        "CREATE OR REPLACE TRIGGER `app`.`cdc_patient_au` AFTER UPDATE ON `app`.`patient`"
        " FOR EACH ROW PRECEDES `app_touch`\nINSERT INTO `cdc`.`cdc_staging`"
    )


def test_mysql_creates_or_replaces_under_a_write_lock() -> None:
    spec = _spec(ID)
    [created] = sql.create_sql(spec, Op.CREATE, None, is_mariadb=False, replace=False)
    assert created.startswith("CREATE TRIGGER `app`.`cdc_patient_ai` AFTER INSERT ON")
    lock, drop, create, unlock = sql.create_sql(
        spec, Op.DELETE, "x", is_mariadb=False, replace=True
    )
    assert (lock, drop, unlock) == (
        "LOCK TABLES `app`.`patient` WRITE",
        "DROP TRIGGER IF EXISTS `app`.`cdc_patient_ad`",
        "UNLOCK TABLES",
    )
    assert create.startswith("CREATE TRIGGER") and " PRECEDES `x`\n" in create


def test_the_outbox_gets_one_insert_trigger() -> None:
    spec = _spec(ID, outbox=True)
    assert sql.ops(spec) == (Op.CREATE,)
    assert "VALUES ('OUTBOX', 'app', 'patient'" in sql.body_sql(spec, Op.CREATE)


def test_trigger_names_fit_and_stay_apart() -> None:
    assert sql.trigger_name("patient", Op.CREATE) == "cdc_patient_ai"
    long_a, long_b = "a" * 64, "a" * 63 + "b"
    names = {sql.trigger_name(t, op) for t in (long_a, long_b) for op in Op}
    assert len(names) == 6 and all(len(n) <= 64 for n in names)


def test_literals_and_names_are_quoted() -> None:
    assert quote_text("it's a \\ path") == "'it''s a \\\\ path'"
    assert "`we``ird`" in sql.image_sql(_spec(StagedColumn("we`ird", Kind.INTEGER)), "NEW")
    assert "'we''ird'" in sql.image_sql(_spec(StagedColumn("we'ird", Kind.INTEGER)), "NEW")


def test_a_type_that_cannot_be_staged_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError) as error:
        column_kind("app", "t", "v", "vector", False, True)
    assert "--exclude app.t" in (error.value.fix or "")
    assert column_kind("app", "t", "j", "longtext", True, True) is Kind.JSON_TEXT
    assert column_kind("app", "t", "j", "longtext", True, False) is Kind.TEXT  # MySQL: a check
    assert column_kind("app", "t", "j", "json", False, False) is Kind.JSON


def test_a_version_is_a_digest_of_what_the_triggers_write() -> None:
    rows = [("id", "int", None, None, None), ("name", "varchar", "utf8mb4", None, None)]
    base = sql.versioned(table_spec("app", "t", rows, ("id",), frozenset(), True, database="cdc"))
    same = sql.versioned(table_spec("app", "t", rows, ("id",), frozenset(), True, database="cdc"))
    other_db = sql.versioned(table_spec("app", "t", rows, ("id",), frozenset(), True, database="x"))
    wider = sql.versioned(
        table_spec("app", "t", [*rows, ("n", "int", None, None, None)], ("id",), frozenset(), True,
                   database="cdc")
    )  # fmt: skip
    assert base.version == same.version and len(base.version) == 16
    assert len({base.version, other_db.version, wider.version}) == 3
    again = TableSpec.from_json(base.to_json(), base.version)
    assert again == base and again.version == base.version


def test_the_pads_give_rfc_2104_hmac() -> None:
    for key in (b"", b"short", b"k" * 64, b"long" * 40):
        ipad, opad = key_pads(key)
        for message in (b"", b"null", b"ABCDEF0123"):
            inner = hashlib.sha256(ipad + message).digest()
            assert (
                hashlib.sha256(opad + inner).hexdigest()
                == hmac.new(key, message, hashlib.sha256).hexdigest()
            )
    assert key_id(b"a") != key_id(b"b") and len(key_id(b"a")) == 16
    assert key_id(b"a") not in hashlib.sha256(b"a").hexdigest()  # not a plain digest


@pytest.mark.parametrize(
    ("column", "staged", "expected"),
    [
        (StagedColumn("c", Kind.FLOAT), 16777216, 16777216.0),
        (StagedColumn("c", Kind.FLOAT), 1.100000023841858, 1.1),
        (StagedColumn("c", Kind.DOUBLE), 0, 0.0),
        (StagedColumn("c", Kind.DECIMAL, scale=2), "-0.50", "-0.50"),
        (StagedColumn("c", Kind.DATETIME), "2026-02-31 10:00:00.120", "2026-02-31T10:00:00.120"),
        (StagedColumn("c", Kind.TIMESTAMP, fsp=3), "1767207600.123000", "2025-12-31T19:00:00.123Z"),
        (StagedColumn("c", Kind.TIMESTAMP, fsp=0), "0", "0000-00-00T00:00:00Z"),
        (StagedColumn("c", Kind.SET, "utf8mb4"), "612C62", ["a", "b"]),
        (StagedColumn("c", Kind.SET, "utf8mb4"), "", []),
        (StagedColumn("c", Kind.ENUM, "sjis"), "9353", "鉄"),
        (
            StagedColumn("c", Kind.ENUM, "utf8mb4"),
            "FF",
            UndecodableText(charset="utf8mb4", hex="ff"),
        ),
        (StagedColumn("c", Kind.TEXT, "latin1"), "E9", "é"),
        (StagedColumn("c", Kind.TEXT, "koi8r"), "D6", "ж"),
        (StagedColumn("c", Kind.BINARY), "00FF", "00ff"),
        (StagedColumn("c", Kind.JSON_TEXT, "utf8mb4"), "5B315D", [1]),
        (StagedColumn("c", Kind.JSON), {"a": [1]}, {"a": [1]}),
        (StagedColumn("c", Kind.YEAR), 0, 0),
        (StagedColumn("c", Kind.TEXT, redact=Redact.MASK), "***", "***"),
    ],
)
def test_a_staged_value_is_rendered_as_binlog_capture_renders_it(
    column: StagedColumn, staged: object, expected: object
) -> None:
    value = renderer(column, "hex")(staged)
    assert value == expected and type(value) is type(expected)


def test_a_staged_value_of_the_wrong_form_stops_capture_with_a_fix() -> None:
    with pytest.raises(CaptureError) as error:
        renderer(StagedColumn("c", Kind.TEXT, "utf8mb4"), "hex")("not hex")
    assert "cdc triggers status" in (error.value.fix or "")


def test_handed_ids_are_forgotten_once_their_deletion_is_seen() -> None:
    handed = _Handed()
    handed.ids = {3, 5, 9}
    handed.prune([5, 9], complete=True)  # 3 was deleted (its event stored)
    assert handed.ids == {5, 9} and handed.top == 9
    handed.prune([9], complete=False)  # a partial scan up to 9: 5 is gone
    assert handed.ids == {9}
    handed.ids = {4, 20}
    handed.prune([1, 4], complete=False)  # scanned up to 4 only: 20 is not known gone
    assert handed.ids == {4, 20}
    handed.prune([], complete=True)
    assert handed.ids == set()


def _update(
    before: dict[str, object], after: dict[str, object], changed: list[str]
) -> ChangeRecord:
    data = {"before": before, "after": after, "changed": changed}
    return ChangeRecord(Op.UPDATE, "app", "t", 1, None, data, 0.0, "t")


def test_an_update_that_changed_nothing_is_no_event() -> None:
    assert not Mover._changed(_update({"a": 1}, {"a": 1}, []), [None, None])
    masked = _update({"a": 1, "m": "***", "b": 2}, {"a": 1, "m": "***", "b": 3}, ["b"])
    assert Mover._changed(masked, ["m", None])
    assert masked.data["changed"] == ["m", "b"]  # in the row's order
    dropped = _update({"a": 1}, {"a": 1}, [])
    assert Mover._changed(dropped, ["phone"])  # a dropped column changed: an event
    assert dropped.data["changed"] == []


def test_the_documented_pattern_is_what_the_generator_writes() -> None:
    text = (Path(__file__).parents[2] / "sql" / "triggers.sql").read_text()
    assert text == pattern.render(), "regenerate sql/triggers.sql from pattern.render()"
    assert "CREATE OR REPLACE TRIGGER `hosp`.`cdc_patient_au` AFTER UPDATE" in text
    assert "CREATE TRIGGER `hosp`.`cdc_patient_ad` AFTER DELETE" in text  # the MySQL half
    assert "LEFT(CAST(@cdc_user_id AS CHAR), 255)" in text

"""The reader's pure parts: table filters, GTID state (MariaDB and MySQL), library tables."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cdc.capture.binlog import library
from cdc.capture.binlog.gtid import GtidState
from cdc.capture.binlog.tables import table_from_library
from cdc.capture.filters import TableFilter
from cdc.models import Position
from cdc.settings import CaptureSettings, Dsn
from cdc.store.schema import OWN_TABLES


@pytest.mark.parametrize(
    ("include", "exclude", "name", "captured"),
    [
        ((), (), ("bhima", "patient"), True),
        ((), (), ("mysql", "user"), False),
        ((), (), ("sys", "x"), False),
        ((), (), ("cdc", "event"), False),  # the daemon's own tables, never
        ((), (), ("cdc", "cdc_checkpoint"), False),
        ((), (), ("cdc", "other"), True),
        (("bhima.*",), (), ("bhima", "patient"), True),
        (("bhima.*",), (), ("other", "patient"), False),
        (("cdc.*",), (), ("cdc", "event"), False),  # whatever the include patterns say
        (("*.*",), (), ("mysql", "user"), True),  # asked for explicitly
        ((), ("bhima.session*",), ("bhima", "session_log"), False),
        ((), ("bhima.session*",), ("bhima", "patient"), True),
        (("bhima.*",), ("*.tmp_*",), ("bhima", "tmp_x"), False),
    ],
)
def test_table_filter(
    include: tuple[str, ...], exclude: tuple[str, ...], name: tuple[str, str], captured: bool
) -> None:
    own = frozenset(("cdc", table) for table in OWN_TABLES)
    assert TableFilter(own, include, exclude)(*name) is captured


def test_mariadb_gtid_state_keeps_one_gtid_per_domain() -> None:
    state = GtidState()
    assert not state
    state.add_mariadb("0-1-5")
    state.add_mariadb("1-2-9")
    state.add_mariadb("0-1-6")
    assert str(state) == "0-1-6,1-2-9"
    assert str(GtidState("1-2-9,0-1-6")) == "0-1-6,1-2-9"


def test_mysql_gtid_state_accumulates_the_executed_set() -> None:
    uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
    other = "57b70f4e-20d3-11e5-a393-4a63946f7eac"
    state = GtidState()
    for gno in (1, 2, 3):
        state.add_mysql(f"{uuid}:{gno}")
    state.add_mysql(f"{other}:7")
    state.add_mysql(f"{uuid}:5")
    assert str(state) == f"{uuid}:1-3:5,{other}:7"
    resumed = GtidState(str(state))
    resumed.add_mysql(f"{uuid}:4")
    assert str(resumed) == f"{uuid}:1-5,{other}:7"


def _column(name: str, type_: int, **extra: object) -> SimpleNamespace:
    base = {
        "name": name,
        "type": type_,
        "unsigned": False,
        "collation_name": None,
        "character_set_name": None,
        "enum_values": None,
        "set_values": None,
    }
    base.update(extra)
    return SimpleNamespace(**base)


def test_table_from_library_keys_charsets_and_enums() -> None:
    lib = SimpleNamespace(
        schema="s",
        table="t",
        primary_key=("a", "b"),
        columns=[
            _column("a", 3, unsigned=True),
            _column("b", 254, collation_name="binary", character_set_name="binary", max_length=16),
            _column("c", 247, character_set_name="utf8", enum_values=["", "x", "y"], size=1),
            _column(None, 15, character_set_name="cp1252", max_length=10),  # type: ignore[arg-type]
        ],
    )
    table = table_from_library(lib, {"b": "uuid"})
    assert table.primary_key == ("a", "b")
    assert [c.name for c in table.columns] == ["a", "b", "c", "UNKNOWN_COL3"]
    assert table.columns[0].unsigned
    assert (table.columns[1].charset, table.columns[1].max_length) == ("binary", 16)
    assert table.columns[1].logical == "uuid"
    assert table.columns[2].enum_values == ("x", "y")
    single = SimpleNamespace(schema="s", table="t", primary_key="a", columns=lib.columns[:1])
    assert table_from_library(single).primary_key == ("a",)
    none = SimpleNamespace(schema="s", table="t", primary_key="", columns=lib.columns[:1])
    assert table_from_library(none).primary_key == ()


@pytest.mark.parametrize(
    ("mariadb", "gtid", "expect"),
    [
        (True, "0-1-42", {"auto_position": "0-1-42", "is_mariadb": True, "log_file": None}),
        (True, None, {"auto_position": None, "is_mariadb": False, "log_file": "binlog.000007"}),
        (
            False,
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9",
            {
                "auto_position": "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9",
                "is_mariadb": False,
                "log_file": None,
            },
        ),
        (False, None, {"auto_position": None, "is_mariadb": False, "log_file": "binlog.000007"}),
    ],
)
def test_resume_by_gtid_where_the_position_has_one(
    mariadb: bool, gtid: str | None, expect: dict[str, object]
) -> None:
    """The stream asks for a GTID position when stored (MySQL: the whole executed set),
    by binlog file and offset otherwise. Building the stream does not connect."""
    dsn = Dsn.parse("mysql://root@127.0.0.1:1/cdc")
    start = Position("binlog.000007", 1234, gtid)
    stream = library.open_stream(dsn, CaptureSettings(server_id=9), start, mariadb, None)
    got = {key: getattr(stream, key) for key in expect}
    assert got == expect
    if not gtid:
        assert stream.log_pos == 1234


def test_the_library_is_not_patched_by_importing_cdc() -> None:
    """The TableMap hook is installed by an open stream only, and removed after it."""
    assert not library.hook_installed()
    with library.library_hooks():
        assert library.hook_installed()
        with library.library_hooks():  # a second stream of the same process
            assert library.hook_installed()
        assert library.hook_installed()
    assert not library.hook_installed()

"""Standby failover's pure parts: the same-server decision, the purge estimate, the lock
name, own writes after a rotation, the server-id message."""

from __future__ import annotations

import datetime

import pymysql
import pytest

from cdc.admin.status import purge_in
from cdc.capture.batching import Action, Batcher
from cdc.capture.lease import lock_name
from cdc.capture.same_server import check_resume
from cdc.errors import CaptureError, StartupError, classify
from cdc.models import Commit, Position
from cdc.settings import Dsn
from cdc.store.checkpoint import Checkpoint
from cdc.store.registry import Registry

NOW = datetime.datetime(2026, 5, 12, 12, 0, 0)


def stored(server: str | None, gtid: str | None = "0-1-9") -> Checkpoint:
    return Checkpoint(Position("binlog.000007", 1234, gtid), 9, None, NOW, server)


@pytest.mark.parametrize(
    ("server", "here", "gtid", "gtid_resume"),
    [
        ("mariadb:1:0", "mariadb:1:0", None, False),  # the same server, by file
        ("mariadb:1:0", "mariadb:2:0", "0-1-9", True),  # a replica, by GTID
        (None, "mariadb:2:0", None, False),  # a checkpoint of a version that kept none
    ],
)
def test_resumes_that_go_on(
    server: str | None, here: str, gtid: str | None, gtid_resume: bool
) -> None:
    check_resume(stored(server, gtid), here, gtid_resume)


@pytest.mark.parametrize(("gtid", "gtid_resume", "why"), [
    (None, True, "the checkpoint holds no GTID"),
    ("0-1-9", False, "GTID resume is off"),
])  # fmt: skip
def test_another_server_by_file_and_offset_is_refused(
    gtid: str | None, gtid_resume: bool, why: str
) -> None:
    with pytest.raises(StartupError) as refused:
        check_resume(stored("mariadb:1:0", gtid), "mariadb:2:0", gtid_resume)
    assert "binlog.000007:1234" in refused.value.problem
    assert "unrelated offset" in refused.value.problem and why in refused.value.problem
    assert "--from-now" in refused.value.fix and "GTID" in refused.value.fix


def test_trigger_mode_positions_are_not_the_binlog_s() -> None:
    checkpoint = Checkpoint(Position("cdc_staging", 5), 5, None, NOW, "mariadb:1:0")
    check_resume(checkpoint, "mariadb:2:0", False)


DAY = 86400


@pytest.mark.parametrize(("retention", "stored_file", "last_write", "expected"), [
    (None, "b.000001", NOW, None),  # binlogs kept for ever
    (DAY, "b.000002", None, DAY),  # the file being written: not before it is closed
    (DAY, "b.000001", NOW - datetime.timedelta(hours=6), DAY - 6 * 3600),
    (DAY, "b.000001", NOW - datetime.timedelta(days=2), -DAY),  # may go at any moment
    (DAY, "b.000001", None, None),  # nothing tells its age
])  # fmt: skip
def test_purge_estimate(
    retention: int | None,
    stored_file: str,
    last_write: datetime.datetime | None,
    expected: float | None,
) -> None:
    assert purge_in(retention, stored_file, "b.000002", last_write, NOW) == expected


def test_lock_names_fit_in_64_characters() -> None:
    assert lock_name("cdc") == "cdc.cdc"
    long = lock_name("d" * 64)
    assert len(long) <= 64 and long != lock_name("d" * 63 + "e")


def own(pos: int, log_file: str = "binlog.000001") -> Commit:
    return Commit(Position(log_file, pos), 1_700_000_000.0, captured=False, foreign=False)


def test_own_writes_alone_are_stored_only_once_the_binlog_moved_on() -> None:
    batch = Batcher(10, 0.2, 0.005, idle_every=1.0)
    batch.stored_file = "binlog.000001"
    batch.commit(0.0, own(100))
    assert batch.decide(5.0, arrived=True) is Action.NONE  # no feedback loop
    batch.commit(5.0, own(200, "binlog.000002"))
    assert batch.decide(6.0, arrived=True) is Action.STORE_IDLE
    batch.stored(6.0)
    assert batch.stored_file == "binlog.000002"
    batch.commit(7.0, own(300, "binlog.000002"))
    assert batch.decide(9.0, arrived=True) is Action.NONE


@pytest.mark.parametrize("error", [
    pymysql.err.OperationalError(4052, "A slave with the same server_uuid/server_id as this slave has connected to the master"),
    pymysql.err.OperationalError(1236, "A replica with the same server_uuid/server_id as this replica has connected to the source"),
])  # fmt: skip
def test_a_server_id_in_use_names_the_fix(error: Exception) -> None:
    verdict = classify(error)
    assert not verdict.retry and isinstance(verdict.error, CaptureError)
    assert "server id" in verdict.error.problem and "--server-id" in verdict.error.fix


def test_the_registry_knows_its_roles() -> None:
    dsn = Dsn.parse("mysql://u@h/cdc")
    assert Registry(dsn, "serve").role == "serve"
    with pytest.raises(ValueError, match="role"):
        Registry(dsn, "leader")

"""The store's sink transaction against a real MariaDB: ids, checkpoint, lost connections."""

from __future__ import annotations

from collections.abc import Iterator

import pymysql
import pytest

from cdc._testing.mariadb import MariaDB
from cdc.errors import StartupError
from cdc.models import ChangeRecord, Op, Position
from cdc.settings import Dsn
from cdc.store.schema import init_schema
from cdc.store.writer import Store


def records(n: int, txn: str = "0-1-1") -> list[ChangeRecord]:
    return [
        ChangeRecord(Op.CREATE, "app", "t", i, None, {"after": {"id": i}}, 1_700_000_000.0, txn)
        for i in range(n)
    ]


@pytest.fixture
def st(mariadb: MariaDB) -> Iterator[Store]:
    dsn = Dsn.parse(f"mysql://root@127.0.0.1:{mariadb.port}/store_test")
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS store_test")
    conn.close()
    init_schema(dsn)
    st = Store(dsn)
    assert st.load_checkpoint() is None
    yield st
    st.close()


def stored(mariadb: MariaDB) -> tuple[int, int, int]:
    conn = mariadb.connect("store_test")
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM event")
        count, top = cur.fetchone()
        cur.execute("SELECT last_event_id FROM cdc_checkpoint")
        row = cur.fetchone()
    conn.close()
    return int(count), int(top), int(row[0]) if row else -1


def test_events_and_checkpoint_commit_together(st: Store, mariadb: MariaDB) -> None:
    st.add(records(3))
    assert stored(mariadb) == (0, 0, -1)  # nothing visible before the commit
    st.commit(Position("binlog.000001", 500, "0-1-1"), 1_700_000_000.0)
    assert stored(mariadb) == (3, 3, 3)
    assert [e.id for e in st.published] == [1, 2, 3]


def test_a_lost_connection_forgets_the_open_transaction(st: Store, mariadb: MariaDB) -> None:
    """After the connection drops mid-transaction, nothing of that transaction is sent again
    with the next one: ids go on from the last commit, without duplicates or gaps."""
    st.add(records(2))
    st.commit(Position("binlog.000001", 400), None)
    st.add(records(5, "0-1-2"))  # pending, not yet sent
    assert st.in_transaction
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = 'store_test'")
        for (thread_id,) in cur.fetchall():
            cur.execute(f"KILL {thread_id}")
    conn.close()
    with pytest.raises(pymysql.err.OperationalError):
        st.commit(Position("binlog.000001", 900), None)
    st.close()  # what the daemon does before it retries
    checkpoint = st.load_checkpoint()
    assert checkpoint is not None and checkpoint.last_event_id == 2
    st.add(records(4, "0-1-2"))
    st.commit(Position("binlog.000001", 900), None)
    assert stored(mariadb) == (6, 6, 6)


def test_rollback_forgets_and_numbers_again(st: Store, mariadb: MariaDB) -> None:
    st.add(records(3))
    st.rollback()
    assert not st.in_transaction
    st.add(records(1))
    st.commit(Position("binlog.000001", 300), None)
    assert stored(mariadb) == (1, 1, 1)


def test_events_past_the_checkpoint_are_refused(st: Store, mariadb: MariaDB) -> None:
    st.add(records(1))
    st.commit(Position("binlog.000001", 300), None)
    conn = mariadb.connect("store_test")
    with conn.cursor() as cur:
        cur.execute("UPDATE cdc_checkpoint SET last_event_id = 0")
    conn.close()
    with pytest.raises(StartupError, match="past the checkpoint"):
        st.load_checkpoint()

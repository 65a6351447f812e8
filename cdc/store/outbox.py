"""The outbox's write side for programs without a database connection (`POST /events`):
one row per application event, in a transaction of its own; capture then makes it an
event in commit order, as it does the applications' own outbox rows."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import pymysql

from cdc import mysql
from cdc.errors import classify
from cdc.store.reader import HistoryUnavailable
from cdc.store.schema import OUTBOX, qualified
from cdc.wire import key_text

if TYPE_CHECKING:
    from cdc.settings import Dsn


@dataclass(frozen=True, slots=True)
class OutboxRow:
    type: str
    user_id: Any = None
    data: Any = None
    schema: str | None = None
    table: str | None = None
    row_id: Any = None


class Outbox:
    """Inserts outbox rows on a thread and a connection of its own."""

    def __init__(self, dsn: Dsn) -> None:
        self._dsn = dsn
        self._sql = (
            f"INSERT INTO {qualified(dsn.database, OUTBOX)}"
            " (type, user_id, data, schema_name, table_name, row_id)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
        )
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="cdc-outbox")
        self._conn: mysql.Connection | None = None

    async def insert(self, row: OutboxRow) -> int:
        """The new row's id; `HistoryUnavailable` when the database cannot take it."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._insert, row)

    def _insert(self, row: OutboxRow) -> int:
        values = (
            row.type,
            key_text(row.user_id),
            None if row.data is None else orjson.dumps(row.data).decode(),
            row.schema,
            row.table,
            key_text(row.row_id),
        )
        for attempt in (1, 2):
            try:
                if self._conn is None:
                    self._conn = mysql.connect(self._dsn, autocommit=True)
                with self._conn.cursor() as cur:
                    cur.execute(self._sql, values)
                    return int(cur.lastrowid)
            except (pymysql.err.Error, OSError) as error:
                self._close()
                verdict = classify(error)
                if verdict.retry and attempt == 1:
                    continue
                raise HistoryUnavailable(
                    f"cannot write the outbox: {error}",
                    fix="check that the database server is up and the outbox exists (`cdc init`)",
                ) from error
        raise AssertionError("unreachable")

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(pymysql.err.Error, OSError):
                self._conn.close()
            self._conn = None

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, True)
        self._close()

"""The read side of the event table: `Filters` -> SQL, on a small pool of connections.

`/events` and the replay part of `/stream` read through here; `Filters.matches` applies
the same filters to live events in memory, so both sides select the same events.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import pymysql
import pymysql.converters
from pymysql.constants import FIELD_TYPE

from cdc import mysql
from cdc.errors import CdcError, classify
from cdc.globs import LIKE_ESCAPE, Glob
from cdc.models import StoredEvent
from cdc.store.schema import EVENT, columns, qualified

if TYPE_CHECKING:
    from pymysql.cursors import Cursor

    from cdc.settings import Dsn

T = TypeVar("T")

DEFAULT_LIMIT = 1000
WINDOW = 100_000
"""The most ids one query walks on the primary key when no index selects the events (a
narrow grant or a table filter from far back): a page comes back short, with the id to
go on from, instead of a scan of the whole table."""

# DATETIME comes back as the text the server prints ('YYYY-MM-DD HH:MM:SS.ffffff'),
# exactly what StoredEvent holds, instead of a datetime object.
_CONVERSIONS = dict(pymysql.converters.conversions)
for _field in (FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP):
    _CONVERSIONS.pop(_field, None)


class HistoryUnavailable(CdcError):
    """The event table cannot be read right now (server down, lost connection)."""


@dataclass(frozen=True, slots=True)
class Filters:
    """Which events a request asks for. Times are UTC in the stored text format.

    `since` is inclusive, `until` exclusive. `tables` holds (schema or None, table)
    pairs; `row_ids` the accepted spellings of the one row id asked for.
    `allowed_tables` (globs on schema.table) and `allowed_types` are the grant of the
    client: None allows all, an empty tuple nothing.
    """

    since: str | None = None
    until: str | None = None
    after_id: int | None = None
    before_id: int | None = None
    tables: tuple[tuple[str | None, str], ...] = ()
    types: tuple[str, ...] = ()
    row_ids: tuple[str, ...] = ()
    user_id: str | None = None
    limit: int = DEFAULT_LIMIT
    descending: bool = False
    allowed_tables: tuple[str, ...] | None = None
    allowed_types: tuple[str, ...] | None = None
    _globs: tuple[Glob, ...] = field(init=False, repr=False, compare=False)
    _allowed: dict[tuple[str, str], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_globs", tuple(Glob(t) for t in self.allowed_tables or ()))
        object.__setattr__(self, "_allowed", {})

    def allows(self, schema: str | None, table: str | None) -> bool:
        """True when the grant allows this table (decided once per table). An event about
        no table (an application's LOGIN) needs a grant naming its type: see `matches`."""
        if self.allowed_tables is None:
            return True
        if schema is None or table is None:
            return False
        key = (schema, table)
        allowed = self._allowed.get(key)
        if allowed is None:
            name = f"{schema}.{table}"
            allowed = any(g.matches(name) for g in self._globs)
            if len(self._allowed) < 10_000:
                self._allowed[key] = allowed
        return allowed

    def matches(self, e: StoredEvent) -> bool:
        """True when `e` passes the filters (the id bounds and the limit aside)."""
        if self.allowed_types is not None and e.type not in self.allowed_types:
            return False
        if not self.allows(e.schema_name, e.table_name) and not self._tableless_allowed(e):
            return False
        if self.types and e.type not in self.types:
            return False
        if self.tables and not any(
            e.table_name == table and (schema is None or e.schema_name == schema)
            for schema, table in self.tables
        ):
            return False
        if self.row_ids and e.row_id not in self.row_ids:
            return False
        if self.user_id is not None and e.user_id != self.user_id:
            return False
        if self.since is not None and e.timestamp < self.since:
            return False
        return self.until is None or e.timestamp < self.until

    @property
    def selects_all(self) -> bool:
        """True when every event passes (the live fast path)."""
        return not (
            self.types or self.tables or self.row_ids or self.user_id is not None or self.since
        ) and (self.until is None and self.allowed_tables is None and self.allowed_types is None)

    @property
    def indexed(self) -> bool:
        """True when an index selects the events (one user's, or one row's in named
        tables), so the query reads about as many rows as it returns."""
        return self.user_id is not None or bool(
            self.row_ids and self.tables and all(schema for schema, _ in self.tables)
        )

    def _tableless_allowed(self, e: StoredEvent) -> bool:
        """An event about no table passes a table grant when the grant names its type."""
        return e.table_name is None and bool(self.allowed_types) and e.type in self.allowed_types  # type: ignore[operator]

    def _grant_conditions(self, where: list[str], args: list[Any]) -> None:
        if self.allowed_types is not None:
            if not self.allowed_types:
                where.append("FALSE")
            else:
                where.append("`type` IN (" + ", ".join(["%s"] * len(self.allowed_types)) + ")")
                args.extend(self.allowed_types)
        if self.allowed_tables is not None:
            if not self.allowed_tables:
                where.append("FALSE")
                return
            # `_` and `%` of a name are escaped in the pattern: only * and ? are wildcards.
            like = f"CONCAT(`schema_name`, '.', `table_name`) LIKE %s ESCAPE '{LIKE_ESCAPE}'"
            alternatives = [like] * len(self._globs)
            args.extend(g.like() for g in self._globs)
            if self.allowed_types:  # events about no table, of a type the grant names
                marks = ", ".join(["%s"] * len(self.allowed_types))
                alternatives.append(f"(`table_name` IS NULL AND `type` IN ({marks}))")
                args.extend(self.allowed_types)
            where.append("(" + " OR ".join(alternatives) + ")")

    def conditions(self) -> tuple[list[str], list[Any]]:
        """SQL conditions (ANDed) and their arguments for everything but the id bounds."""
        where: list[str] = []
        args: list[Any] = []
        self._grant_conditions(where, args)
        if self.tables:
            alternatives = []
            for schema, table in self.tables:
                if schema is None:
                    alternatives.append("`table_name` = %s")
                    args.append(table)
                else:
                    alternatives.append("(`schema_name` = %s AND `table_name` = %s)")
                    args.extend((schema, table))
            where.append("(" + " OR ".join(alternatives) + ")")
        if self.types:
            where.append("`type` IN (" + ", ".join(["%s"] * len(self.types)) + ")")
            args.extend(self.types)
        if self.row_ids:
            where.append("`row_id` IN (" + ", ".join(["%s"] * len(self.row_ids)) + ")")
            args.extend(self.row_ids)
        if self.user_id is not None:
            where.append("`user_id` = %s")
            args.append(self.user_id)
        if self.since is not None:
            where.append("`timestamp` >= %s")
            args.append(self.since)
        if self.until is not None:
            where.append("`timestamp` < %s")
            args.append(self.until)
        return where, args


# -- reading -------------------------------------------------------------------------


class History:
    """Reads the event table of `dsn`'s database with blocking pymysql on a few threads
    of its own; connections are kept for reuse, at most `pool_size` at a time."""

    def __init__(self, dsn: Dsn, pool_size: int = 4) -> None:
        self.dsn = dsn
        self._dsn = dsn
        self._table = qualified(dsn.database, EVENT)
        self._idle: list[pymysql.connections.Connection[Cursor]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._floors: dict[str, int] = {}  # since -> the smallest id at or after it
        self._executor = ThreadPoolExecutor(pool_size, thread_name_prefix="cdc-history")

    async def query(self, filters: Filters) -> tuple[list[StoredEvent], int | None]:
        """The events `filters` selects, at most `filters.limit`, and the id to page on.

        Ascending: the next id is for `after_id`; descending: for `before_id`; None when
        there is nothing more. A page may be short (even empty) and still have a next id:
        the query walked its `WINDOW` of ids without finding `limit` events.
        """
        rows, read_to = await self._run(
            self._select, filters, filters.after_id, filters.limit + 1, True
        )
        if len(rows) > filters.limit:
            rows = rows[: filters.limit]
            return rows, rows[-1].id
        return rows, read_to

    async def after(
        self, last_id: int, filters: Filters, limit: int
    ) -> tuple[list[StoredEvent], int | None]:
        """The events after `last_id` that pass `filters`, oldest first, at most `limit`,
        and the id up to which the table was read when that is short of its end (None:
        everything committed before the query was read)."""
        return await self._run(
            self._select,
            Filters(
                since=filters.since,
                tables=filters.tables,
                types=filters.types,
                row_ids=filters.row_ids,
                user_id=filters.user_id,
                allowed_tables=filters.allowed_tables,
                allowed_types=filters.allowed_types,
            ),
            last_id,
            limit,
            False,
        )

    async def last_id(self) -> int:
        """The highest event id in the table (0 when it is empty)."""

        def select(cursor: Cursor) -> int:
            cursor.execute(f"SELECT COALESCE(MAX(`id`), 0) FROM {self._table}")
            row = cursor.fetchone()
            return int(row[0]) if row else 0

        return await self._run(select)

    async def bounds(self) -> tuple[int | None, int]:
        """The oldest event id the table holds (None when it is empty) and the newest (0)."""

        def select(cursor: Cursor) -> tuple[int | None, int]:
            cursor.execute(f"SELECT MIN(`id`), COALESCE(MAX(`id`), 0) FROM {self._table}")
            row = cursor.fetchone()
            if not row:
                return None, 0
            return (None if row[0] is None else int(row[0])), int(row[1])

        return await self._run(select)

    async def close(self) -> None:
        self._closed = True
        # Queries not started yet are dropped, not run: at a stop with the server gone,
        # thousands of queued replays would each try to connect first.
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(pymysql.err.Error, OSError):
                connection.close()

    # Everything below runs on the pool's threads.

    def _select(
        self, cursor: Cursor, filters: Filters, after_id: int | None, limit: int, page: bool
    ) -> tuple[list[StoredEvent], int | None]:
        """The rows, and where a windowed walk stopped short of the bounds (see `query`;
        `page`: the caller pages on, so a walk that reached the newest id says None)."""
        bounds = self._bounds(cursor, filters, after_id)
        if bounds is None:
            return [], None
        low, high = bounds  # exclusive, None: open
        read_to = None
        if not filters.indexed:
            low, high, read_to = self._window(cursor, filters.descending, low, high, page)
        where, args = filters.conditions()
        conditions = ["`id` > %s"] if low is not None else []
        bound_args: list[Any] = [low] if low is not None else []
        if high is not None:
            conditions.append("`id` < %s")
            bound_args.append(high)
        conditions += where
        sql = f"SELECT {columns()} FROM {self._table}"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += " ORDER BY `id` DESC" if filters.descending else " ORDER BY `id`"
        sql += " LIMIT %s"
        cursor.execute(sql, [*bound_args, *args, limit])
        rows = [
            StoredEvent(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9])
            for r in cursor.fetchall()
        ]
        return rows, read_to

    def _bounds(
        self, cursor: Cursor, filters: Filters, after_id: int | None
    ) -> tuple[int | None, int | None] | None:
        """The id bounds (exclusive) of a query; None when nothing can match.

        The time window becomes an id window first (an index-only range scan of
        `event_by_time`), so the main query walks the primary key over the window only,
        whatever other filters it has. Exact even if commit times go backwards.
        """
        low, high = after_id, filters.before_id
        if filters.since is not None:
            floor = self._floors.get(filters.since)
            if floor is None:
                cursor.execute(
                    f"SELECT MIN(`id`) FROM {self._table} WHERE `timestamp` >= %s",
                    (filters.since,),
                )
                row = cursor.fetchone()
                if not row or row[0] is None:
                    return None
                floor = int(row[0])
                # Stays a valid bound: later events get larger ids (a stream replaying
                # from `since` asks again at every batch).
                if len(self._floors) >= 256:
                    self._floors.clear()
                self._floors[filters.since] = floor
            low = floor - 1 if low is None else max(low, floor - 1)
        if filters.until is not None and filters.since is None:
            cursor.execute(
                f"SELECT MAX(`id`) FROM {self._table} WHERE `timestamp` < %s", (filters.until,)
            )
            row = cursor.fetchone()
            if not row or row[0] is None:
                return None
            high = int(row[0]) + 1 if high is None else min(high, int(row[0]) + 1)
        return low, high

    def _window(
        self, cursor: Cursor, descending: bool, low: int | None, high: int | None, page: bool
    ) -> tuple[int | None, int | None, int | None]:
        """Narrows (low, high) to at most `WINDOW` ids from where the walk starts; the
        third value is the last id the walk covers when that is short of the bounds."""
        if not descending:
            start = low or 0
            if high is not None and high - start <= WINDOW + 1:
                return low, high, None
            end = start + WINDOW  # the last id walked
            if page and end >= self._newest(cursor):
                return low, high, None
            return low, end + 1, end
        if high is None:
            high = self._newest(cursor) + 1
        start = high - WINDOW  # the first (smallest) id walked
        if low is not None and start <= low + 1:
            return low, high, None
        if start <= 1:
            return low, high, None
        return start - 1, high, start

    def _newest(self, cursor: Cursor) -> int:
        cursor.execute(f"SELECT COALESCE(MAX(`id`), 0) FROM {self._table}")
        row = cursor.fetchone()
        return int(row[0]) if row else 0

    def _connect(self) -> pymysql.connections.Connection[Cursor]:
        return mysql.connect(
            self._dsn,
            database=True,
            read_timeout=60,
            write_timeout=60,
            autocommit=True,  # every query sees the latest commits, never an old snapshot
            conv=_CONVERSIONS,
        )

    def _with_connection(self, work: Callable[..., T], *args: Any) -> T:
        if self._closed:  # queued before `close`, started after it: not run
            raise HistoryUnavailable("the history reader is closed")
        for attempt in (1, 2):
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            try:
                if connection is None:
                    connection = self._connect()
                with connection.cursor() as cursor:
                    result = work(cursor, *args)
            except (pymysql.err.Error, OSError) as error:
                verdict = classify(error)
                if verdict.retry and connection is not None:
                    # A dropped connection (the server restarted): retried once on a new one.
                    with contextlib.suppress(pymysql.err.Error, OSError):
                        connection.close()
                    connection = None
                elif connection is not None:
                    self._release(connection)
                if verdict.retry and attempt == 1 and not self._closed:
                    continue
                raise HistoryUnavailable(
                    f"cannot read the event table: {error}",
                    fix="check that the database server is up and reachable"
                    if verdict.retry
                    else "run `cdc init` to create the event table, and check the privileges",
                ) from error
            self._release(connection)
            return result
        raise AssertionError("unreachable")

    def _release(self, connection: pymysql.connections.Connection[Cursor]) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(connection)
                return
        connection.close()

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise HistoryUnavailable("the history reader is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._with_connection, work, *args)

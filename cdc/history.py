"""The read side of the event table: query parameters -> validated `Filters` -> SQL.

`/events` and the replay part of `/stream` read through here; `Filters.matches` applies
the same filters to live events in memory, so both sides select the same events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import pymysql
import pymysql.converters
from pymysql.constants import FIELD_TYPE

from cdc.errors import CdcError
from cdc.models import StoredEvent

if TYPE_CHECKING:
    from pymysql.cursors import Cursor

T = TypeVar("T")

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
DEFAULT_WINDOW = timedelta(hours=24)
TYPES = ("CREATE", "UPDATE", "DELETE")

# Parameters each endpoint takes; anything else is refused with 400.
EVENTS_PARAMETERS = frozenset(
    {"since", "until", "after_id", "before_id", "order", "table", "type", "row_id", "user_id"}
    | {"limit"}
)
STREAM_PARAMETERS = frozenset({"since", "table", "type", "row_id", "user_id", "last_event_id"})
_REPEATABLE = frozenset({"table", "type"})

_RELATIVE = re.compile(r"([0-9]{1,9})\s*(s|m|h|d|w)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ID = re.compile(r"[0-9]{1,20}")
_ID_MAX = 2**64 - 1
_OLDEST = datetime(1000, 1, 1)  # DATETIME's documented range starts here
_NEWEST = datetime(9999, 12, 31, 23, 59, 59, 999999)
_MAX_TEXT = {"row_id": 1024, "user_id": 255}
_IDENTIFIER_MAX = 64

_COLUMNS = (
    "`id`, `timestamp`, `user_id`, `type`, `schema_name`, `table_name`, `row_id`, `data`, `txn`"
)

# DATETIME comes back as the text the server prints ('YYYY-MM-DD HH:MM:SS.ffffff'),
# exactly what StoredEvent holds, instead of a datetime object.
_CONVERSIONS = dict(pymysql.converters.conversions)
for _field in (FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP):
    _CONVERSIONS.pop(_field, None)


class BadParameter(CdcError):
    """A request parameter that cannot be used; the server answers 400 with `body()`."""

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{parameter}: {problem}")
        self.parameter = parameter
        self.message = problem

    def body(self) -> dict[str, str]:
        return {"error": "bad_parameter", "parameter": self.parameter, "message": self.message}


class HistoryUnavailable(CdcError):
    """The event table cannot be read right now (server down, lost connection)."""


@dataclass(frozen=True, slots=True)
class Filters:
    """Which events a request asks for. Times are UTC in the stored text format.

    `since` is inclusive, `until` exclusive. `tables` holds (schema or None, table)
    pairs; `row_ids` the accepted spellings of the one row id asked for.
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

    def matches(self, e: StoredEvent) -> bool:
        """True when `e` passes the filters (the id bounds and the limit aside)."""
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
        ) and (self.until is None)

    def conditions(self) -> tuple[list[str], list[Any]]:
        """SQL conditions (ANDed) and their arguments for everything but the id bounds."""
        where: list[str] = []
        args: list[Any] = []
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


# -- parsing -----------------------------------------------------------------------


def _group(pairs: Iterable[tuple[str, str]], allowed: frozenset[str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            raise BadParameter(name, f"unknown parameter (known: {known})")
        if name in grouped and name not in _REPEATABLE:
            raise BadParameter(name, "given more than once")
        try:
            value.encode()
        except UnicodeEncodeError:
            raise BadParameter(name, "is not valid UTF-8 text") from None
        if not value.strip():
            raise BadParameter(name, "is empty")
        grouped.setdefault(name, []).append(value)
    return grouped


def _stored(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="microseconds")


def parse_time(name: str, value: str, now: datetime) -> str:
    """ISO-8601 (naive means UTC) or relative to `now` (`30s`, `15m`, `1h`, `7d`, `2w`)."""
    text = value.strip()
    relative = _RELATIVE.fullmatch(text)
    if relative:
        try:
            moment = now - timedelta(seconds=int(relative[1]) * _UNITS[relative[2]])
        except OverflowError:
            moment = _OLDEST
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise BadParameter(
                name, "expected an ISO-8601 time (2026-05-12T12:19:40Z) or an age like 1h or 7d"
            ) from None
        if moment.tzinfo is not None:
            try:
                moment = moment.astimezone(UTC).replace(tzinfo=None)
            except OverflowError:
                moment = _OLDEST if moment.year < 2 else _NEWEST
    return _stored(min(max(moment, _OLDEST), _NEWEST))


def _id(name: str, value: str) -> int:
    text = value.strip()
    if not _ID.fullmatch(text) or int(text) > _ID_MAX:
        raise BadParameter(name, "expected an event id (a non-negative integer)")
    return int(text)


def _split(values: list[str]) -> list[str]:
    return [piece.strip() for value in values for piece in value.split(",") if piece.strip()]


def _tables(values: list[str]) -> tuple[tuple[str | None, str], ...]:
    tables: list[tuple[str | None, str]] = []
    for item in _split(values):
        schema, dot, table = item.partition(".")
        pair = (schema, table) if dot else (None, schema)
        if not pair[1] or pair[0] == "" or any(len(p or "") > _IDENTIFIER_MAX for p in pair):
            raise BadParameter("table", f"{item!r} is not `schema.table` or `table`")
        tables.append(pair)
    return tuple(dict.fromkeys(tables))


def _types(values: list[str]) -> tuple[str, ...]:
    types = []
    for item in _split(values):
        if item.upper() not in TYPES:
            raise BadParameter("type", f"{item!r} is not one of CREATE, UPDATE, DELETE")
        types.append(item.upper())
    return tuple(dict.fromkeys(types))


def _text(name: str, value: str) -> str:
    if len(value) > _MAX_TEXT[name]:
        raise BadParameter(name, f"longer than {_MAX_TEXT[name]} characters")
    return value


def _row_ids(value: str) -> tuple[str, ...]:
    # A composite key is stored as a JSON array; accept it however it is spaced.
    spellings = [_text("row_id", value)]
    if value.startswith("["):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            spellings += [orjson.dumps(parsed).decode(), json.dumps(parsed, ensure_ascii=False)]
    return tuple(dict.fromkeys(spellings))


def _common(grouped: dict[str, list[str]], now: datetime) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if "since" in grouped:
        fields["since"] = parse_time("since", grouped["since"][0], now)
    if "table" in grouped:
        fields["tables"] = _tables(grouped["table"])
    if "type" in grouped:
        fields["types"] = _types(grouped["type"])
    if "row_id" in grouped:
        fields["row_ids"] = _row_ids(grouped["row_id"][0])
    if "user_id" in grouped:
        fields["user_id"] = _text("user_id", grouped["user_id"][0])
    return fields


def parse_events_query(pairs: Iterable[tuple[str, str]], now: datetime | None = None) -> Filters:
    """The parameters of `GET /events`; raises `BadParameter` naming the first bad one."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    grouped = _group(pairs, EVENTS_PARAMETERS)
    fields = _common(grouped, now)
    if "until" in grouped:
        fields["until"] = parse_time("until", grouped["until"][0], now)
    if "after_id" in grouped:
        fields["after_id"] = _id("after_id", grouped["after_id"][0])
    if "before_id" in grouped:
        fields["before_id"] = _id("before_id", grouped["before_id"][0])
    if "limit" in grouped:
        text = grouped["limit"][0].strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise BadParameter("limit", f"expected an integer from 1 to {MAX_LIMIT}")
        fields["limit"] = int(text)
    if "order" in grouped:
        order = grouped["order"][0].strip().lower()
        if order not in ("asc", "desc"):
            raise BadParameter("order", "expected asc (oldest first) or desc (newest first)")
        fields["descending"] = order == "desc"
    # The default window: the last 24 hours, unless the request pages by id.
    if not {"since", "after_id", "before_id"} & grouped.keys():
        fields["since"] = _stored(now - DEFAULT_WINDOW)
    filters = Filters(**fields)
    if filters.since and filters.until and filters.until <= filters.since:
        raise BadParameter("until", "must be later than since")
    return filters


def parse_stream_query(
    pairs: Iterable[tuple[str, str]], last_event_id_header: str | None, now: datetime | None = None
) -> tuple[Filters, int | None]:
    """The parameters of `GET /stream`: the filters and the id to resume after, if any.

    The `Last-Event-ID` header (sent by a reconnecting EventSource) wins over the
    `last_event_id` parameter (which a page sets on its first request). Without either,
    `since` replays from that time; with none of them the stream starts live (None).
    """
    now = now or datetime.now(UTC).replace(tzinfo=None)
    grouped = _group(pairs, STREAM_PARAMETERS)
    filters = Filters(**_common(grouped, now))
    last_id: int | None = None
    if last_event_id_header is not None and last_event_id_header.strip():
        last_id = _id("Last-Event-ID", last_event_id_header)
    elif "last_event_id" in grouped:
        last_id = _id("last_event_id", grouped["last_event_id"][0])
    elif filters.since is not None:
        last_id = 0  # from that time on (the since bound finds where in the table)
    return filters, last_id


# -- reading -------------------------------------------------------------------------


class History:
    """Reads the event table with blocking pymysql on a few threads of its own.

    `connect` holds pymysql.connect keyword arguments (host, port, user, password,
    database); connections are kept for reuse, at most `pool_size` at a time.
    """

    def __init__(self, connect: dict[str, Any], table: str = "event", pool_size: int = 4) -> None:
        if not table or "`" in table:
            raise ValueError(f"bad table name {table!r}")
        self._connect = {
            "charset": "utf8mb4",
            "connect_timeout": 10,
            "read_timeout": 60,
            "write_timeout": 60,
            **connect,
            "autocommit": True,  # every query sees the latest commits, never an old snapshot
            "conv": _CONVERSIONS,
        }
        self._table = f"`{table}`"
        self._idle: list[pymysql.connections.Connection[Cursor]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._floors: dict[str, int] = {}  # since -> the smallest id at or after it
        self._executor = ThreadPoolExecutor(pool_size, thread_name_prefix="cdc-history")

    async def query(self, filters: Filters) -> tuple[list[StoredEvent], int | None]:
        """The events `filters` selects, at most `filters.limit`, and the id to page on.

        Ascending: the next id is for `after_id`; descending: for `before_id`; None when
        there is nothing more.
        """
        rows = await self._run(self._select, filters, filters.after_id, filters.limit + 1)
        if len(rows) > filters.limit:
            rows = rows[: filters.limit]
            return rows, rows[-1].id
        return rows, None

    async def after(self, last_id: int, filters: Filters, limit: int) -> list[StoredEvent]:
        """The events after `last_id` that pass `filters`, oldest first, at most `limit`."""
        return await self._run(
            self._select,
            Filters(
                since=filters.since,
                tables=filters.tables,
                types=filters.types,
                row_ids=filters.row_ids,
                user_id=filters.user_id,
            ),
            last_id,
            limit,
        )

    async def last_id(self) -> int:
        """The highest event id in the table (0 when it is empty)."""

        def select(cursor: Cursor) -> int:
            cursor.execute(f"SELECT COALESCE(MAX(`id`), 0) FROM {self._table}")
            row = cursor.fetchone()
            return int(row[0]) if row else 0

        return await self._run(select)

    async def close(self) -> None:
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, True)
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(pymysql.err.Error, OSError):
                connection.close()

    # Everything below runs on the pool's threads.

    def _select(
        self, cursor: Cursor, filters: Filters, after_id: int | None, limit: int
    ) -> list[StoredEvent]:
        where, args = filters.conditions()
        bounds: list[str] = []
        bound_args: list[Any] = []
        if after_id is not None:
            bounds.append("`id` > %s")
            bound_args.append(after_id)
        if filters.before_id is not None:
            bounds.append("`id` < %s")
            bound_args.append(filters.before_id)
        # Turn the time window into an id window first (an index-only range scan of
        # `event_by_time`), so the main query walks the primary key over the window
        # only, whatever other filters it has. Exact even if commit times go backwards.
        if filters.since is not None:
            floor = self._floors.get(filters.since)
            if floor is None:
                cursor.execute(
                    f"SELECT MIN(`id`) FROM {self._table} WHERE `timestamp` >= %s",
                    (filters.since,),
                )
                row = cursor.fetchone()
                if not row or row[0] is None:
                    return []
                floor = int(row[0])
                # Stays a valid bound: later events get larger ids (a stream replaying
                # from `since` asks again at every batch).
                if len(self._floors) >= 256:
                    self._floors.clear()
                self._floors[filters.since] = floor
            bounds.append("`id` >= %s")
            bound_args.append(floor)
        if filters.until is not None and filters.since is None:
            cursor.execute(
                f"SELECT MAX(`id`) FROM {self._table} WHERE `timestamp` < %s", (filters.until,)
            )
            row = cursor.fetchone()
            if not row or row[0] is None:
                return []
            bounds.append("`id` <= %s")
            bound_args.append(row[0])
        conditions = bounds + where
        sql = f"SELECT {_COLUMNS} FROM {self._table}"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += " ORDER BY `id` DESC" if filters.descending else " ORDER BY `id`"
        sql += " LIMIT %s"
        cursor.execute(sql, [*bound_args, *args, limit])
        return [
            StoredEvent(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8])
            for r in cursor.fetchall()
        ]

    def _with_connection(self, work: Callable[..., T], *args: Any) -> T:
        for attempt in (1, 2):
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            try:
                if connection is None:
                    connection = pymysql.connect(**self._connect)
                with connection.cursor() as cursor:
                    result = work(cursor, *args)
            except (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError) as error:
                # A dropped connection (the server restarted): retried once on a new one.
                if connection is not None:
                    with contextlib.suppress(pymysql.err.Error, OSError):
                        connection.close()
                if attempt == 2:
                    raise HistoryUnavailable(
                        f"cannot read the event table: {error}",
                        fix="check that the database server is up and reachable",
                    ) from error
                continue
            except pymysql.err.Error as error:
                if connection is not None:
                    self._release(connection)
                raise HistoryUnavailable(
                    f"cannot read the event table: {error}",
                    fix="run `cdc init` to create the event table, and check the privileges",
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

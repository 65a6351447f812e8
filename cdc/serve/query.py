"""Query parameters of `/events` and `/stream`, validated into the store's `Filters`.

Every bad or unknown parameter is a `BadParameter` naming it, which the app answers
with 400.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from cdc.ages import age_seconds
from cdc.errors import CdcError
from cdc.models import EVENT_TYPE
from cdc.store.reader import Filters

MAX_LIMIT = 10_000
DEFAULT_WINDOW = timedelta(hours=24)

# Parameters each endpoint takes; anything else is refused with 400.
EVENTS_PARAMETERS = frozenset(
    {"since", "until", "after_id", "before_id", "order", "table", "type", "row_id", "user_id"}
    | {"limit", "ticket"}
)
STREAM_PARAMETERS = frozenset(
    {"since", "table", "type", "row_id", "user_id", "last_event_id", "ticket"}
)
# `ticket` is a credential, read by the access middleware; here it is only allowed.
_REPEATABLE = frozenset({"table", "type"})

_ID = re.compile(r"[0-9]{1,20}")  # ASCII digits only: int() takes other scripts' too
_LIMIT = re.compile(r"[0-9]{1,5}")  # never int() of a huge text (Python refuses 4,300 digits)
_ID_MAX = 2**64 - 1
_OLDEST = datetime(1000, 1, 1)  # DATETIME's documented range starts here
_NEWEST = datetime(9999, 12, 31, 23, 59, 59, 999999)
_MAX_TEXT = {"row_id": 1024, "user_id": 255}
_IDENTIFIER_MAX = 64
_MAX_VALUE = 4096  # any one parameter value


class BadParameter(CdcError):
    """A request parameter that cannot be used; the server answers 400 with `body()`."""

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{parameter}: {problem}")
        self.parameter = parameter
        self.message = problem

    def body(self) -> dict[str, str]:
        return {"error": "bad_parameter", "parameter": self.parameter, "message": self.message}


def _group(pairs: Iterable[tuple[str, str]], allowed: frozenset[str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            raise BadParameter(name, f"unknown parameter (known: {known})")
        if name in grouped and name not in _REPEATABLE:
            raise BadParameter(name, "given more than once")
        if len(value) > _MAX_VALUE:
            raise BadParameter(name, f"longer than {_MAX_VALUE} characters")
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
    seconds = age_seconds(text)
    if seconds is not None:
        try:
            moment = now - timedelta(seconds=seconds)
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


_MAX_ITEMS = 100  # tables or types in one request


def _split(values: list[str], name: str) -> list[str]:
    items = [piece.strip() for value in values for piece in value.split(",") if piece.strip()]
    if len(items) > _MAX_ITEMS:
        raise BadParameter(name, f"more than {_MAX_ITEMS} values")
    return items


def _tables(values: list[str]) -> tuple[tuple[str | None, str], ...]:
    tables: list[tuple[str | None, str]] = []
    for item in _split(values, "table"):
        schema, dot, table = item.partition(".")
        pair = (schema, table) if dot else (None, schema)
        if not pair[1] or pair[0] == "" or any(len(p or "") > _IDENTIFIER_MAX for p in pair):
            raise BadParameter("table", f"{item!r} is not `schema.table` or `table`")
        tables.append(pair)
    return tuple(dict.fromkeys(tables))


def _types(values: list[str]) -> tuple[str, ...]:
    types = []
    for item in _split(values, "type"):
        if not EVENT_TYPE.fullmatch(item.upper()):
            raise BadParameter(
                "type",
                f"{item[:40]!r} is not an event type (CREATE, UPDATE, DELETE, CASCADE, or a "
                "name of letters, digits and _ up to 32 characters)",
            )
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
        if not _LIMIT.fullmatch(text) or not 1 <= int(text) <= MAX_LIMIT:
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

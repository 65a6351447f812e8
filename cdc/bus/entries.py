"""One stream entry per event: fields `id` and `event` (the event JSON exactly as sent on
`/stream`), and the way back from that JSON to the stored event it was rendered from."""

from __future__ import annotations

import json
from typing import Any

import orjson

from cdc.models import StoredEvent
from cdc.wire import event_json, key_text

_DECODER = json.JSONDecoder()
_DATA = ',"data":'
_CONTEXT = ',"context":'


class BadEntry(ValueError):
    """A stream entry that is not an event of ours."""


def entry(e: StoredEvent) -> dict[str, bytes]:
    """The fields of the stream entry of `e`."""
    return {"id": b"%d" % e.id, "event": event_json(e)}


def _raw(text: str, start: int) -> tuple[str, int]:
    """The JSON value starting at `start`, as its exact text, and where it ends."""
    try:
        _value, end = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as error:
        raise BadEntry(f"not an event: {error}") from None
    return text[start:end], end


def _stored_time(iso: str) -> str:
    # 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z' -> 'YYYY-MM-DD HH:MM:SS.ffffff' (the stored text).
    body = iso.removesuffix("Z").replace("T", " ", 1)
    seconds, _, fraction = body.partition(".")
    return f"{seconds}.{fraction.ljust(6, '0')}"


def stored_event(fields: dict[bytes, bytes]) -> StoredEvent:
    """The event of a stream entry, rendering back to the same bytes (`event_json`).

    `data` and `context` keep their exact text, so live frames from the bus are the ones
    the table would give."""
    raw = fields.get(b"event")
    if raw is None:
        raise BadEntry("no event field")
    try:
        parsed: dict[str, Any] = orjson.loads(raw)
        text = raw.decode()
    except (orjson.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadEntry(f"not an event: {error}") from None
    at = text.find(_DATA)
    if not isinstance(parsed, dict) or at < 0:
        raise BadEntry("not an event")
    data, end = _raw(text, at + len(_DATA))
    context: str | None = None
    if text.startswith(_CONTEXT, end):
        context, end = _raw(text, end + len(_CONTEXT))
    try:
        e = StoredEvent(
            int(parsed["id"]),
            _stored_time(parsed["timestamp"]),
            key_text(parsed["user_id"]),
            parsed["type"],
            parsed["schema"],
            parsed["table"],
            key_text(parsed["row_id"]),
            data,
            parsed["txn"],
            None if context == "null" else context,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise BadEntry(f"not an event: {error!r}") from None
    if fields.get(b"id") not in (None, b"%d" % e.id):
        raise BadEntry("its id field is not its event's id")
    return e

"""The event as clients see it: one stored row rendered as the JSON of DESIGN.md.

`/events`, `/stream` and the page all render through `event_json`, so history and live
always agree byte for byte.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from cdc.models import StoredEvent

# A canonical integer as MySQL prints one: no sign on zero, no leading zeros.
_INTEGER = re.compile(r"-?[1-9][0-9]{0,19}|0")
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1  # BIGINT UNSIGNED; orjson serialises up to here


def key_value(text: str | None) -> Any:
    """A `row_id` / `user_id` column back to its JSON value.

    A JSON array text (a composite key) becomes the array, a canonical integer text the
    integer, anything else stays the string it is.
    """
    if text is None:
        return None
    if text.startswith("["):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
        return value if isinstance(value, list) else text
    if _INTEGER.fullmatch(text):
        number = int(text)
        if _INT_MIN <= number <= _INT_MAX:
            return number
    return text


def key_text(value: Any) -> str | None:
    """A `row_id` / `user_id` as stored (the inverse of `key_value`): a scalar as its
    text, a composite key as a JSON array."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


def iso_timestamp(stored: str) -> str:
    """'YYYY-MM-DD HH:MM:SS[.ffffff]' (UTC) -> 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z'.

    Microseconds are kept when they are not zero.
    """
    fraction = stored[19:]
    if not fraction.strip(".0"):
        fraction = ""
    return f"{stored[:10]}T{stored[11:19]}{fraction}Z"


def _data(text: str) -> Any:
    # The stored text is valid JSON (the column is JSON), so it is spliced in unparsed.
    # Whitespace between tokens may hold line breaks, which would cut an SSE `data:`
    # line in two: such text (never written by the daemon itself) is re-encoded.
    if "\n" in text or "\r" in text:
        return orjson.loads(text)
    return orjson.Fragment(text)


def event_json(e: StoredEvent) -> bytes:
    """The contract JSON of one event, on one line (safe in an SSE `data:` field)."""
    return orjson.dumps(
        {
            "id": e.id,
            "timestamp": iso_timestamp(e.timestamp),
            "type": e.type,
            "schema": e.schema_name,
            "table": e.table_name,
            "row_id": key_value(e.row_id),
            "user_id": key_value(e.user_id),
            "data": _data(e.data),
            "context": None if e.context is None else _data(e.context),
            "txn": e.txn,
        }
    )


def sse_frame(e: StoredEvent) -> bytes:
    """One server-sent-events frame: `id:`, `event:` (the type) and `data:` (the JSON)."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (e.id, e.type.encode(), event_json(e))

"""Application events (LOGIN, REPORT_PRINTED...) from the outbox table: a row an
application inserts in its own transaction becomes one event of that type, where its
statement stands among the transaction's changes. Pure.

The outbox (`cdc_outbox` in the event database, store/schema.py) refuses an invalid or
reserved type with a CHECK constraint; a row that got past it anyway (the constraint
dropped) becomes an `OUTBOX_INVALID` event holding what the row said, logged, never
skipped and never taken for a row change.
"""

from __future__ import annotations

import structlog

from cdc.models import ChangeRecord, Row, application_type

log = structlog.get_logger("cdc.capture")

INVALID = "OUTBOX_INVALID"


def record(
    row: Row,
    timestamp: float,
    txn: str,
    tag_user: str | None = None,
    context: dict[str, str] | None = None,
) -> ChangeRecord:
    """The event of one inserted outbox row (its id assigned later by the store).

    The row's own `user_id` is the event's user when it is not NULL, else the
    statement's tag; `data` is the row's data (`{}` for NULL); `schema`, `table` and
    `row_id` name the record the event is about, or are null.
    """
    kind = row.get("type")
    data = row.get("data")
    if data is None:
        data = {}
    if not application_type(kind):
        log.warning("outbox_type_invalid", outbox_id=row.get("id"))
        data = {"type": kind, "data": data}
        kind = INVALID
    user = row.get("user_id")
    return ChangeRecord(
        type=str(kind),
        schema=row.get("schema_name"),
        table=row.get("table_name"),
        row_id=row.get("row_id"),
        user_id=user if user is not None else tag_user,
        data=data,
        timestamp=timestamp,
        txn=txn,
        context=context,
    )

"""`POST /events`: application events from programs without a database connection. The
event goes into the outbox in a transaction of its own, and arrives on the streams
through capture, in commit order, like every other event."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from cdc.models import application_type
from cdc.serve.access import CREDENTIAL, denied
from cdc.serve.auth import forbidden
from cdc.store.outbox import OutboxRow
from cdc.store.reader import HistoryUnavailable

if TYPE_CHECKING:
    from cdc.serve.auth import Authenticator
    from cdc.store.outbox import Outbox

FIELDS = frozenset({"type", "user_id", "data", "schema", "table", "row_id"})
_NAME_MAX = 64
_TEXT_MAX = {"user_id": 255, "row_id": 1024}


def _bad(parameter: str, message: str) -> web.Response:
    body = {"error": "bad_parameter", "parameter": parameter, "message": message}
    return web.Response(body=orjson.dumps(body), status=400, content_type="application/json")


def _row(body: Any) -> OutboxRow | web.Response:
    """The outbox row a request body asks for, or the 400 naming what is wrong."""
    if not isinstance(body, dict):
        return _bad("body", "expected a JSON object")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        return _bad(unknown[0], f"unknown field (known: {', '.join(sorted(FIELDS))})")
    kind = body.get("type")
    if not application_type(kind):
        return _bad(
            "type",
            "expected an event type of A-Z, 0-9 and _ up to 32 characters, starting with a "
            "letter, and not CREATE, UPDATE, DELETE or CASCADE",
        )
    for name, limit in _TEXT_MAX.items():
        value = body.get(name)
        if value is not None and (
            isinstance(value, dict | bool) or len(orjson.dumps(value)) > limit
        ):
            return _bad(
                name, f"expected a string, a number or an array of at most {limit} characters"
            )
    schema, table = body.get("schema"), body.get("table")
    if (schema is None) != (table is None):
        return _bad("table", "give both schema and table, or neither")
    for name, value in (("schema", schema), ("table", table)):
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= _NAME_MAX):
            return _bad(name, f"expected a name of 1 to {_NAME_MAX} characters")
    return OutboxRow(
        str(kind), body.get("user_id"), body.get("data"), schema, table, body.get("row_id")
    )


class Publisher:
    """The handler of `POST /events` (it needs auth on and the `publish` scope)."""

    def __init__(self, auth: Authenticator, outbox: Outbox) -> None:
        self.auth = auth
        self.outbox = outbox

    async def post(self, request: web.Request) -> web.StreamResponse:
        credential = request.get(CREDENTIAL)
        if not self.auth.enabled or credential is None:
            # Without auth nobody is known to have the publish scope.
            return denied(request, forbidden("publish_without_auth", "publish"))
        grant = credential.grant
        if not grant.has_scope("publish"):
            return denied(request, forbidden("needs_publish", "publish"), credential)
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _bad("body", "expected a JSON object")
        row = _row(body)
        if isinstance(row, web.Response):
            return row
        allowed = grant.allows_type(row.type) and (
            row.schema is None or grant.allows_table(row.schema, str(row.table))
        )
        if not allowed:
            return denied(request, forbidden("publish_outside_grant"), credential)
        try:
            outbox_id = await self.outbox.insert(row)
        except HistoryUnavailable:
            return web.Response(
                body=orjson.dumps({"error": "unavailable"}),
                status=503,
                content_type="application/json",
                headers={"Retry-After": "5"},
            )
        return web.Response(
            body=orjson.dumps({"outbox_id": outbox_id}), status=202, content_type="application/json"
        )

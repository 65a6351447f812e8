"""`cdc tail URL`: follow a `/stream`, print each event, resume after a dropped connection.

One JSON event per line (for pipes and `jq`), or a readable line (on a terminal). After a
dropped connection or a restart of the daemon it reconnects with `Last-Event-ID`, so
nothing is missed and nothing printed twice.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
import structlog
from yarl import URL

from cdc.errors import CdcError, ConfigError

if TYPE_CHECKING:
    from typing import TextIO

log = structlog.get_logger(__name__)

FIRST_DELAY = 0.5  # seconds before reconnecting, doubled at each failure in a row
MAX_DELAY = 30.0
READ_TIMEOUT = 60.0  # the server sends a heartbeat at least every 15 s by default
VALUE_CHARS = 60
MAX_LINE = (
    2**30
)  # an event's `data:` line is as long as the event (the server's packet, 1 GiB at most)


def stream_url(url: str) -> URL:
    """The daemon's address, or its `/stream` URL itself."""
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(
            f"{url!r} is not an http(s) URL", fix="e.g. cdc tail http://127.0.0.1:8080"
        )
    if parsed.path.rstrip("/").endswith("/stream"):
        return parsed
    return parsed.with_path(parsed.path.rstrip("/") + "/stream").with_query(parsed.query)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def readable(event: dict[str, Any]) -> str:
    """One line for people: time, type, table, row, user, and what changed."""
    data = event.get("data") or {}
    if event.get("type") == "UPDATE":
        before, after = data.get("before") or {}, data.get("after") or {}
        changed = data.get("changed")
        if changed is None:
            changed = [c for c in after if after.get(c) != before.get(c)]
        what = ", ".join(f"{c}: {_short(before.get(c))} → {_short(after.get(c))}" for c in changed)
    else:
        image = (data.get("before") if event.get("type") == "DELETE" else data.get("after")) or {}
        what = ", ".join(f"{c}={_short(v)}" for c, v in image.items())
    timestamp = str(event.get("timestamp", "")).replace("T", " ").rstrip("Z")
    user = event.get("user_id")
    parts = [
        f"#{event.get('id')}",
        timestamp,
        f"{event.get('type', ''):<6}",
        f"{event.get('schema')}.{event.get('table')}",
        f"[{_short(event.get('row_id'))}]",
    ]
    if user is not None:
        parts.append(f"by {_short(user)}")
    return "  ".join(parts) + ("  " + what if what else "")


class _Frames:
    """Server-sent events out of a response body: (id, data) per frame; data may be ''.

    A `reset` frame (the history asked for is no longer held) is not yielded: it is kept
    in `reset` for the loop to tell the user."""

    def __init__(self, content: aiohttp.StreamReader) -> None:
        self.content = content
        self.retry: float | None = None
        self.reset: dict[str, Any] | None = None

    async def __aiter__(self) -> Any:
        event_id: str | None = None
        data: list[str] = []
        kind = ""
        while True:
            raw = await self.content.readline(max_line_length=MAX_LINE)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                if kind == "reset":
                    self.reset = _reset_of("\n".join(data))
                    yield None, ""
                elif event_id is not None or data:
                    yield event_id, "\n".join(data)
                event_id, data, kind = None, [], ""
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "id":
                event_id = value
            elif name == "event":
                kind = value
            elif name == "retry" and value.isdigit():
                self.retry = int(value) / 1000


def _reset_of(data: str) -> dict[str, Any]:
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return frame if isinstance(frame, dict) else {}


def _say_reset(reset: dict[str, Any], out: TextIO, pretty: bool) -> None:
    """One line for the user (on stderr with --json, so that a pipe reads events only)."""
    first, reason = reset.get("first_id"), reset.get("reason")
    why = {
        "pruned": "the events asked for are older than the history held (pruned)",
        "unknown": "this server never issued the id resumed from (another or rebuilt store)",
    }.get(str(reason), f"reason {reason}")
    line = f"-- reset: {why}; going on from event #{first}"
    target = out if pretty else sys.stderr
    target.write(line + "\n")
    target.flush()


def _refused(status: int, body: bytes) -> CdcError:
    try:
        detail = orjson.loads(body)
        message = detail.get("message") or detail.get("error") or body.decode()
        parameter = detail.get("parameter")
    except (orjson.JSONDecodeError, AttributeError):
        message, parameter = body.decode("utf-8", "replace")[:300], None
    if status == 400:
        return ConfigError(
            f"the server refused {parameter or 'the request'}: {message}",
            fix="check the filters (see GET /openapi.json)",
        )
    if status == 401:
        return ConfigError(
            f"the server refused the credential ({message})",
            fix="pass --token-file with a valid token (cdc token create), or a fresh JWT",
        )
    if status == 403:
        return ConfigError(
            "the token may not read what the filters ask for",
            fix="ask only for the tables and types the token is granted",
        )
    return CdcError(f"the server answered {status}: {message}", fix="check the URL")


async def tail(
    url: str,
    filters: dict[str, list[str]],
    last_event_id: int | None,
    out: TextIO,
    pretty: bool,
    token: str | None = None,
) -> None:
    """Print the events of `url`'s stream to `out` until cancelled.

    `filters` are `/stream` parameters (table, type, row_id, user_id, since); with
    `last_event_id` the events after it come first; `token` is sent as a bearer token.
    A bad filter, URL or token raises a `CdcError`; lost connections, restarts and 503s
    are retried with backoff.
    """
    target = stream_url(url)
    params = [(name, value) for name, values in filters.items() for value in values]
    last = last_event_id
    delay = FIRST_DELAY
    hint: float | None = None
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=READ_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            headers = {"Accept": "text/event-stream"}
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            if last is not None:
                headers["Last-Event-ID"] = str(last)
            wait: float | None = None
            try:
                async with session.get(target, params=params, headers=headers) as response:
                    if response.status == 503:
                        wait = float(response.headers.get("Retry-After", "0") or 0) or None
                        raise aiohttp.ClientResponseError(
                            response.request_info, (), status=503, message="busy"
                        )
                    if response.status >= 500:
                        raise aiohttp.ClientResponseError(
                            response.request_info, (), status=response.status
                        )
                    if response.status != 200:
                        raise _refused(response.status, await response.read())
                    log.info("tail_connected", url=str(target), last_event_id=last)
                    frames = _Frames(response.content)
                    async for event_id, data in frames:
                        if frames.reset is not None:
                            _say_reset(frames.reset, out, pretty)
                            first = frames.reset.get("first_id")
                            if isinstance(first, int):
                                last = first - 1
                            frames.reset = None
                        if data:
                            _print(data, out, pretty)
                        if event_id:
                            last = int(event_id)
                        delay = FIRST_DELAY
                    hint = frames.retry or hint
                    log.info("tail_stream_ended", last_event_id=last)
                    wait = hint
            except BrokenPipeError:
                return  # the reader of our output went away (`cdc tail | head`)
            except (aiohttp.ClientError, TimeoutError, ConnectionError) as error:
                # Retried: the daemon restarts, the network drops, the server is busy.
                log.warning(
                    "tail_reconnecting",
                    error=str(error) or type(error).__name__,
                    in_s=wait if wait is not None else delay,
                )
            await asyncio.sleep(wait if wait is not None else delay)
            if wait is None:
                delay = min(delay * 2, MAX_DELAY)


def _print(data: str, out: TextIO, pretty: bool) -> None:
    if pretty:
        try:
            line = readable(orjson.loads(data))
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            line = data
    else:
        line = data
    out.write(line + "\n")
    out.flush()

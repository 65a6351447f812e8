"""The HTTP side: `/events` (history), `/stream` (live SSE), `/health`, `/metrics`, the page.

`start()` runs the aiohttp application next to the capture in the daemon's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson
import structlog
import yaml
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cdc import metrics
from cdc.serve.query import BadParameter, parse_events_query, parse_stream_query
from cdc.store.reader import HistoryUnavailable
from cdc.wire import event_json

if TYPE_CHECKING:
    from cdc.models import CaptureStatus
    from cdc.protocols import Feed
    from cdc.serve.hub import Hub
    from cdc.settings import HttpSettings
    from cdc.store.reader import History

log = structlog.get_logger(__name__)

Status = Callable[[], "CaptureStatus"]

STATIC = resources.files("cdc.serve") / "static"


class HttpServer:
    """A running HTTP server; `stop()` ends every stream and closes the listener."""

    def __init__(self, runner: web.AppRunner, hub: Hub, tasks: list[asyncio.Task[None]]) -> None:
        self._runner = runner
        self._hub = hub
        self._tasks = tasks  # the heartbeat ticker, and the feed when there is one
        self._stopped = False

    @property
    def port(self) -> int:
        return int(self._runner.addresses[0][1])

    @property
    def url(self) -> str:
        host, port = self._runner.addresses[0][:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._hub.close()
        await self._runner.cleanup()


async def start(
    settings: HttpSettings, hub: Hub, history: History, status: Status, feed: Feed | None = None
) -> HttpServer:
    """Listen on `settings.listen` and serve until `stop()`; `feed` hands committed
    events to the hub (tests publish to the hub themselves)."""
    app = make_app(settings, hub, history, status)
    runner = web.AppRunner(
        app,
        access_log=None,
        # A stream whose client went away ends at once instead of at its next write.
        handler_cancellation=True,
        shutdown_timeout=settings.shutdown_timeout,
    )
    await runner.setup()
    host, port = settings.address
    site = web.TCPSite(runner, host, port, backlog=1024)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    tasks = [asyncio.create_task(_tick(hub, settings.heartbeat / 3), name="cdc-heartbeat")]
    if feed is not None:
        tasks.append(asyncio.create_task(feed.run(hub), name="cdc-feed"))
    server = HttpServer(runner, hub, tasks)
    log.info("http_listening", url=server.url)
    return server


async def _tick(hub: Hub, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        hub.tick()


def make_app(settings: HttpSettings, hub: Hub, history: History, status: Status) -> web.Application:
    """The aiohttp application (for `start`, or a test's own runner)."""
    app = web.Application()
    handlers = _Handlers(settings, hub, history, status)
    app.router.add_get("/", handlers.page)
    app.router.add_get("/events", handlers.events)
    app.router.add_get("/stream", handlers.stream, allow_head=False)
    app.router.add_get("/health", handlers.health)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/openapi.json", handlers.openapi)
    app.router.add_static("/static/", str(STATIC), append_version=False)
    app.on_shutdown.append(handlers.on_shutdown)
    return app


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def openapi_spec() -> dict[str, Any]:
    """The OpenAPI description of the HTTP API (static/openapi.yaml)."""
    spec: dict[str, Any] = yaml.safe_load((STATIC / "openapi.yaml").read_text(encoding="utf-8"))
    return spec


class _Handlers:
    def __init__(self, settings: HttpSettings, hub: Hub, history: History, status: Status) -> None:
        self.settings = settings
        self.hub = hub
        self.history = history
        self.status = status
        self._openapi: bytes | None = None

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=(STATIC / "index.html").read_bytes(),
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        try:
            filters = parse_events_query(request.query.items())
        except BadParameter as error:
            return _json(error.body(), 400)
        started = time.perf_counter()
        try:
            rows, next_id = await self.history.query(filters)
        except HistoryUnavailable as error:
            log.warning("history_unavailable", error=str(error))
            return _json({"error": "unavailable", "message": str(error)}, 503, {"Retry-After": "5"})
        metrics.history_query_seconds.observe(time.perf_counter() - started)
        key = b"next_before_id" if filters.descending else b"next_after_id"
        body = b'{"events":[%s],"%s":%s}' % (
            b",".join([event_json(e) for e in rows]),
            key,
            b"null" if next_id is None else str(next_id).encode(),
        )
        response = web.Response(body=body, content_type="application/json")
        response.enable_compression()
        return response

    async def stream(self, request: web.Request) -> web.StreamResponse:
        try:
            filters, after = parse_stream_query(
                request.query.items(), request.headers.get("Last-Event-ID")
            )
        except BadParameter as error:
            return _json(error.body(), 400)
        retry_after = {"Retry-After": str(self.settings.retry_after)}
        if self.hub.closed:
            return _json({"error": "shutting_down"}, 503, retry_after)
        if self.hub.clients >= self.settings.max_clients:
            metrics.stream_clients_rejected.inc()
            return _json(
                {"error": "too_many_clients", "max_clients": self.settings.max_clients},
                503,
                retry_after,
            )
        sub = self.hub.subscribe(
            filters, after, self.history, self.settings.stream_buffer, self.settings.heartbeat
        )
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        transport = request.transport

        def abort() -> None:
            if transport is not None:
                transport.abort()

        try:
            await sub.attach()
            await response.prepare(request)
            await response.write(b"retry: %d\n\n" % self.settings.retry_ms)
            await sub.run(response.write, abort)
            if not sub.dropped:
                await response.write_eof()
        except (ConnectionError, HistoryUnavailable) as error:
            # The client went away, or the table cannot be read to catch it up: it
            # reconnects with Last-Event-ID.
            log.debug("stream_ended", error=str(error))
            abort()
        finally:
            sub.close()
        return response

    async def health(self, request: web.Request) -> web.StreamResponse:
        try:
            state = self.status().as_dict()
        except Exception as error:  # a boundary: /health answers whatever breaks
            log.exception("status_failed")
            return _json({"healthy": False, "error": str(error)}, 503)
        lag = state.get("lag_seconds")
        healthy = state.get("state") == "capturing" and (
            lag is None or lag <= self.settings.health_max_lag
        )
        state.update(
            clients=self.hub.clients,
            max_lag_seconds=self.settings.health_max_lag,
            healthy=healthy,
        )
        return _json(state, 200 if healthy else 503)

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        with contextlib.suppress(Exception):  # the lag is refreshed if status() has it
            lag = self.status().lag_seconds
            if lag is not None:
                metrics.capture_lag_seconds.set(lag)
        metrics.stream_clients.set(self.hub.clients)
        return web.Response(
            body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def openapi(self, request: web.Request) -> web.StreamResponse:
        if self._openapi is None:
            self._openapi = orjson.dumps(openapi_spec())
        return web.Response(body=self._openapi, content_type="application/json")

    async def on_shutdown(self, app: web.Application) -> None:
        self.hub.close()

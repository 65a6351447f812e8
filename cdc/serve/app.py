"""The HTTP side: `/events` (history), `/stream` (live SSE), `/health`, `/metrics`, the page,
and access (`/login`, `/logout`, `/tickets`; see `access.py`).

`prepare_auth()` checks that the address may be served as configured and loads the keys;
`start()` runs the aiohttp application next to the capture in the daemon's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import ssl
import time
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson
import structlog
import yaml
from aiohttp import HttpVersion11, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cdc import metrics
from cdc.errors import ConfigError
from cdc.policy.grants import Forbidden
from cdc.serve import access
from cdc.serve.access import CREDENTIAL, Access, describe, refused, scoped
from cdc.serve.auth import Authenticator, Clock
from cdc.serve.publish import Publisher
from cdc.serve.query import BadParameter, parse_events_query, parse_stream_query
from cdc.store.outbox import Outbox
from cdc.store.reader import HistoryUnavailable
from cdc.wire import event_json

if TYPE_CHECKING:
    from cdc.models import CaptureStatus
    from cdc.protocols import Feed
    from cdc.sections import AuthSettings
    from cdc.serve.hub import Hub, Push, Subscription
    from cdc.settings import HttpSettings
    from cdc.store.reader import History

log = structlog.get_logger(__name__)

Status = Callable[[], "CaptureStatus"]

STATIC = resources.files("cdc.serve") / "static"


PUSH_LIMIT = 64 * 1024  # unsent bytes above which a stream is written the ordinary way


def _pusher(transport: asyncio.Transport | asyncio.BaseTransport) -> Push:
    """Writes one HTTP/1.1 chunk to `transport` at once, as the response's own writer
    frames it, when the connection is open and has little unsent (False otherwise: the
    hub then wakes the stream's task, whose write waits for the client)."""
    assert isinstance(transport, asyncio.WriteTransport)

    def push(data: bytes) -> bool:
        if transport.is_closing() or transport.get_write_buffer_size() > PUSH_LIMIT:
            return False
        transport.write(b"%x\r\n%b\r\n" % (len(data), data))
        return True

    return push


class HttpServer:
    """A running HTTP server; `stop()` ends every stream and closes the listener."""

    def __init__(
        self,
        runner: web.AppRunner,
        hub: Hub,
        tasks: list[asyncio.Task[None]],
        auth: Authenticator,
        scheme: str,
    ) -> None:
        self._runner = runner
        self._hub = hub
        self._tasks = tasks  # the heartbeat ticker, and the feed when there is one
        self._stopped = False
        self.auth = auth
        self._scheme = scheme

    def reload_auth(self, settings: AuthSettings) -> None:
        """New tokens and JWT key (SIGHUP); raises `ConfigError`, keeping the old, if bad."""
        self.auth.reload(settings)

    @property
    def port(self) -> int:
        return int(self._runner.addresses[0][1])

    @property
    def url(self) -> str:
        host, port = self._runner.addresses[0][:2]
        host = f"[{host}]" if ":" in host else host
        return f"{self._scheme}://{host}:{port}"

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


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses; any other host is public."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to, it is not known to be local


def prepare_auth(
    settings: HttpSettings, auth: AuthSettings, clock: Clock = time.time
) -> Authenticator:
    """The credentials of the server, once its address and TLS files are found fit.

    Without tokens and JWT key only a loopback address is served, unless
    `insecure_no_auth` (then with a warning at every start): `ConfigError` (exit 2).
    """
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together", fix="give both, or neither")
    host = settings.address[0]
    if not auth.enabled:
        if not is_loopback(host) and not settings.insecure_no_auth:
            raise ConfigError(
                f"--http {settings.listen} is not a loopback address and no token or JWT key "
                "is configured: every client would read every event",
                fix="make a token (cdc token create NAME --tables 'schema.table'), paste the "
                "[[auth.tokens]] block it prints into the --config file, and run again; or "
                "listen on 127.0.0.1; or pass --insecure-no-auth to serve everyone",
            )
        if settings.insecure_no_auth:
            log.warning(
                "insecure_no_auth", listen=settings.listen, detail="every client reads every event"
            )
    return Authenticator(auth, clock)


def _tls(settings: HttpSettings) -> ssl.SSLContext | None:
    if not settings.tls_cert or not settings.tls_key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            f"cannot load --tls-cert {settings.tls_cert} / --tls-key {settings.tls_key}: {error}",
            fix="give the PEM certificate (with its chain) and its private key",
        ) from None
    return context


async def start(
    settings: HttpSettings,
    hub: Hub,
    history: History,
    status: Status,
    feed: Feed | None = None,
    auth: Authenticator | None = None,
    role: str | None = None,
    reuse_port: bool = False,
) -> HttpServer:
    """Listen on `settings.listen` and serve until `stop()`; `feed` hands committed
    events to the hub (tests publish to the hub themselves). `auth` comes from
    `prepare_auth` (by default: no credentials, so a loopback address only).

    `role` is said by `/health`; `"serve"` (`cdc serve`) is healthy when the event table
    can be read, whatever capture does. `reuse_port`: workers share the port."""
    if auth is None:
        from cdc.sections import AuthSettings

        auth = prepare_auth(settings, AuthSettings())
    context = _tls(settings)
    app = make_app(settings, hub, history, status, auth, role)
    runner = web.AppRunner(
        app,
        access_log=None,
        # A stream whose client went away ends at once instead of at its next write.
        handler_cancellation=True,
        shutdown_timeout=settings.shutdown_timeout,
        max_line_size=settings.max_line_size,
        max_field_size=settings.max_field_size,
        max_headers=settings.max_headers,
    )
    await runner.setup()
    host, port = settings.address
    site = web.TCPSite(
        runner, host, port, backlog=1024, ssl_context=context, reuse_port=reuse_port or None
    )
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    tasks = [asyncio.create_task(_tick(hub, settings.heartbeat / 3), name="cdc-heartbeat")]
    if feed is not None:
        tasks.append(asyncio.create_task(feed.run(hub), name="cdc-feed"))
    server = HttpServer(runner, hub, tasks, auth, "https" if context else "http")
    log.info("http_listening", url=server.url, auth=auth.enabled)
    return server


async def _tick(hub: Hub, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        hub.tick()


def make_app(
    settings: HttpSettings,
    hub: Hub,
    history: History,
    status: Status,
    auth: Authenticator,
    role: str | None = None,
) -> web.Application:
    """The aiohttp application (for `start`, or a test's own runner)."""
    app = web.Application(
        middlewares=[access.middleware(auth)], client_max_size=settings.max_body_bytes
    )
    handlers = _Handlers(settings, hub, history, status, auth, role)
    doors = Access(auth, settings)
    app.router.add_get("/", handlers.page)
    app.router.add_get("/events", handlers.events)
    app.router.add_get("/stream", handlers.stream, allow_head=False)
    app.router.add_get("/health", handlers.health)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/openapi.json", handlers.openapi)
    app.router.add_post("/login", doors.login)
    app.router.add_post("/logout", doors.logout)
    app.router.add_post("/tickets", doors.tickets)
    outbox = Outbox(history.dsn)
    app.router.add_post("/events", Publisher(auth, outbox).post)

    async def close_outbox(_app: web.Application) -> None:
        await outbox.close()

    app.on_cleanup.append(close_outbox)
    app.router.add_route("OPTIONS", "/{path:.*}", doors.preflight)
    app.router.add_static("/static/", str(STATIC), append_version=False)
    app.on_response_prepare.append(access.headers(settings))
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
    def __init__(
        self,
        settings: HttpSettings,
        hub: Hub,
        history: History,
        status: Status,
        auth: Authenticator,
        role: str | None = None,
    ) -> None:
        self.settings = settings
        self.hub = hub
        self.history = history
        self.status = status
        self.auth = auth
        self.role = role
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
            filters = scoped(request, parse_events_query(request.query.items()))
        except BadParameter as error:
            return _json(error.body(), 400)
        except Forbidden as error:
            return refused(request, error)
        started = time.perf_counter()
        try:
            rows, next_id = await self.history.query(filters)
        except HistoryUnavailable as error:
            log.warning("history_unavailable", error=str(error))
            return _json({"error": "unavailable", "message": str(error)}, 503, {"Retry-After": "5"})
        seconds = time.perf_counter() - started
        metrics.history_query_seconds.observe(seconds)
        key = b"next_before_id" if filters.descending else b"next_after_id"
        body = b'{"events":[%s],"%s":%s}' % (
            b",".join([event_json(e) for e in rows]),
            key,
            b"null" if next_id is None else str(next_id).encode(),
        )
        credential = request[CREDENTIAL]
        log.info(
            "access_events",
            token=credential.name,
            via=credential.via,
            client=access.client(request),
            filters=describe(filters),
            events=len(rows),
            duration_ms=round(seconds * 1000, 1),
        )
        response = web.Response(body=body, content_type="application/json")
        response.enable_compression()
        return response

    def _refuse_stream(self) -> web.Response | None:
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
        return None

    async def stream(self, request: web.Request) -> web.StreamResponse:
        try:
            filters, after = parse_stream_query(
                request.query.items(), request.headers.get("Last-Event-ID")
            )
            filters = scoped(request, filters)
        except BadParameter as error:
            return _json(error.body(), 400)
        except Forbidden as error:
            return refused(request, error)
        busy = self._refuse_stream()
        if busy is not None:
            return busy
        sub = self.hub.subscribe(
            filters, after, self.history, self.settings.stream_buffer, self.settings.heartbeat
        )
        credential = request[CREDENTIAL]
        # Closed at once when its token is removed (reload, logout), or when it expires.
        self.auth.watch(sub, credential, sub.end)
        expiry = None
        if credential.expires_at is not None:
            wait = max(0.0, credential.expires_at - self.auth.clock())
            expiry = asyncio.get_running_loop().call_later(wait, sub.end, "expired")
        # Closed cleanly when old, so that clients spread again over the workers; the
        # jitter keeps the clients of one restart from all coming back at once.
        max_age = self.settings.stream_max_age * random.uniform(0.9, 1.0)
        aged = asyncio.get_running_loop().call_later(max_age, sub.end, "max_age")
        opened = time.monotonic()
        log.info(
            "stream_opened",
            token=credential.name,
            via=credential.via,
            client=access.client(request),
            filters=describe(filters),
            last_event_id=after,
        )
        try:
            return await self._feed(request, sub)
        finally:
            aged.cancel()
            if expiry is not None:
                expiry.cancel()
            self.auth.unwatch(sub)
            log.info(
                "stream_closed",
                token=credential.name,
                client=access.client(request),
                events=sub.events_sent,
                last_event_id=sub.sent,
                duration_s=round(time.monotonic() - opened, 1),
                reason=sub.dropped
                or sub.ended
                or ("shutdown" if self.hub.closed else "client_left"),
            )

    async def _feed(self, request: web.Request, sub: Subscription) -> web.StreamResponse:
        """Writes the stream until the hub closes, the client goes or it is dropped."""
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

        push = None
        if transport is not None and request.version == HttpVersion11:
            response.enable_chunked_encoding()  # what `push` frames its chunks as
            push = _pusher(transport)
        try:
            await sub.attach()
            await response.prepare(request)
            await response.write(b"retry: %d\n\n" % self.settings.retry_ms)
            await sub.run(response.write, abort, push)
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

    async def _serve_health(self) -> web.Response:
        """`cdc serve`: healthy when the event table can be read."""
        try:
            last = await self.history.last_id()
        except HistoryUnavailable as error:
            detail = {} if self.auth.enabled else {"error": str(error)}
            return _json({"state": "serving", "role": self.role, "healthy": False, **detail}, 503)
        state: dict[str, Any] = {
            "state": "serving",
            "role": self.role,
            "healthy": True,
            "auth": self.auth.enabled,
        }
        if not self.auth.enabled:
            state.update(last_event_id=last, clients=self.hub.clients)
        return _json(state)

    async def health(self, request: web.Request) -> web.StreamResponse:
        if self.role == "serve":
            return await self._serve_health()
        try:
            state = self.status().as_dict()
        except Exception as error:  # a boundary: /health answers whatever breaks
            log.exception("status_failed")
            detail = {} if self.auth.enabled else {"error": str(error)}
            return _json({"healthy": False, **detail}, 503)
        lag = state.get("lag_seconds")
        # A standby waiting for the lease is healthy: it serves, and takes over when needed.
        healthy = state.get("state") == "standby" or (
            state.get("state") == "capturing"
            and (lag is None or lag <= self.settings.health_max_lag)
        )
        if self.auth.enabled:
            # Open to anyone: how capture is doing, nothing of what it captures.
            state = {"state": state["state"], "role": state.get("role"), "lag_seconds": lag}
        else:
            state["clients"] = self.hub.clients
        state.update(
            max_lag_seconds=self.settings.health_max_lag, healthy=healthy, auth=self.auth.enabled
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

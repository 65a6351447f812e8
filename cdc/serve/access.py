"""The HTTP side of access: the middleware that asks every data endpoint for a
credential, `POST /login`, `/logout` and `/tickets`, CORS and security headers, and the
access log (`access_events`, `stream_opened`, `stream_closed`, `access_denied`).

Open without a credential: `/`, `/static/*`, `/openapi.json`, `/health`, `/login`,
`/logout`. Everything else (today `/events`, `/stream`, `/metrics`, `/tickets`; any
later endpoint too) needs one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from aiohttp import web

from cdc.policy.grants import Forbidden
from cdc.serve.auth import (
    COOKIE,
    Authenticator,
    AuthFailure,
    Credential,
    forbidden,
    malformed,
)

if TYPE_CHECKING:
    from cdc.settings import HttpSettings
    from cdc.store.reader import Filters

log = structlog.get_logger("cdc.access")

CREDENTIAL = web.RequestKey("credential", Credential)
OPEN_PATHS = frozenset({"/", "/health", "/openapi.json", "/login", "/logout", "/favicon.ico"})
TICKET_PATHS = frozenset({"/events", "/stream"})  # where ?ticket= is a credential
SCOPED = {"/metrics": "metrics"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def client(request: web.Request) -> str | None:
    return request.remote


def denied(
    request: web.Request, failure: AuthFailure, credential: Credential | None = None
) -> web.Response:
    """The RFC 6750 answer, logged as `access_denied` (with the reason, which the body
    never says)."""
    log.info(
        "access_denied",
        token=credential.name if credential else None,
        client=client(request),
        method=request.method,
        path=request.path,
        status=failure.status,
        reason=failure.reason,
    )
    body = {"error": failure.error or "unauthorized"}
    return web.Response(
        body=orjson.dumps(body),
        status=failure.status,
        content_type="application/json",
        headers={"WWW-Authenticate": failure.challenge()},
    )


def middleware(auth: Authenticator) -> Any:
    """Every path not open needs a credential; it is left on the request for the handler."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in OPEN_PATHS or path.startswith("/static/") or request.method == "OPTIONS":
            return await handler(request)
        ticket = request.query.get("ticket") if path in TICKET_PATHS else None
        try:
            credential = auth.authenticate(
                request.headers.get("Authorization"), ticket, request.cookies.get(COOKIE)
            )
            scope = SCOPED.get(path)
            if scope is not None and not credential.grant.has_scope(scope):
                return denied(request, forbidden(f"needs_{scope}", scope), credential)
        except AuthFailure as failure:
            return denied(request, failure)
        request[CREDENTIAL] = credential
        return await handler(request)

    return check


def scoped(request: web.Request, filters: Filters) -> Filters:
    """The filters within the request's grant; `Forbidden` names a table or type it
    asks for and may not read."""
    grant = request[CREDENTIAL].grant
    grant.check(filters.tables, filters.types)
    if grant.everything:
        return filters
    return dataclasses.replace(filters, allowed_tables=grant.tables, allowed_types=grant.types)


def refused(request: web.Request, error: Forbidden) -> web.Response:
    return denied(request, forbidden(f"outside_grant_{error.parameter}"), request[CREDENTIAL])


def describe(filters: Filters) -> dict[str, Any]:
    """The filters as the access log shows them (what was asked, not the grant)."""
    shown: dict[str, Any] = {}
    if filters.tables:
        shown["tables"] = [f"{s}.{t}" if s else t for s, t in filters.tables]
    for name in ("types", "row_ids", "user_id", "since", "until", "after_id", "before_id"):
        value = getattr(filters, name)
        if value:
            shown[name] = list(value) if isinstance(value, tuple) else value
    return shown


# -- CORS and security headers ------------------------------------------------------------


def headers(settings: HttpSettings) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An `on_response_prepare` hook: CORS for the allowed origins only (none by default),
    and headers that keep the page from being framed or sniffed."""
    origins = frozenset(settings.cors_origin)

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        h = response.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        )
        origin = request.headers.get("Origin")
        if origin is not None and origin in origins:
            h["Access-Control-Allow-Origin"] = origin
            h["Access-Control-Expose-Headers"] = "WWW-Authenticate, Retry-After"
            h.add("Vary", "Origin")

    return add


# -- login, logout, tickets ---------------------------------------------------------------


async def _token_of(request: web.Request) -> tuple[str, bool]:
    """The `token` of a login body, and whether it came from a form."""
    kind = request.content_type
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        token, from_form = form.get("token"), True
    elif kind == "application/json":
        try:
            body = await request.json(loads=orjson.loads)
        except ValueError:
            raise malformed("body_not_json") from None
        token, from_form = (body.get("token") if isinstance(body, dict) else None), False
    else:
        raise malformed("body_not_form_or_json")
    if not isinstance(token, str) or not token.strip() or len(token) > 4096:
        raise malformed("no_token_field")
    return token.strip(), from_form


_SEE_ROOT = {"Location": "/"}


class Access:
    """The handlers of `/login`, `/logout`, `/tickets` and CORS preflights."""

    def __init__(self, auth: Authenticator, settings: HttpSettings) -> None:
        self.auth = auth
        self.origins = frozenset(settings.cors_origin)
        secure = auth.settings.cookie_secure
        self.secure = bool(settings.tls_cert) if secure is None else secure

    async def preflight(self, request: web.Request) -> web.StreamResponse:
        """CORS preflight (`OPTIONS`): allowed for the configured origins, refused otherwise."""
        if request.headers.get("Origin") not in self.origins:
            return web.Response(status=403)
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": "GET, POST",
                "Access-Control-Allow-Headers": "Authorization, Content-Type, Last-Event-ID",
                "Access-Control-Max-Age": "600",
            },
        )

    async def login(self, request: web.Request) -> web.StreamResponse:
        if not self.auth.enabled:
            return web.json_response({"error": "no_auth"}, status=404)
        try:
            token, from_form = await _token_of(request)
            session, credential, seconds = self.auth.login(token)
        except AuthFailure as failure:
            return denied(request, failure)
        log.info("login", token=credential.name, kind=credential.kind, client=client(request))
        response = (
            web.Response(status=303, headers=_SEE_ROOT) if from_form else web.Response(status=204)
        )
        response.set_cookie(
            COOKIE,
            session,
            max_age=max(1, int(seconds)),
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="Strict",
        )
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        cookie = request.cookies.get(COOKIE)
        credential = self.auth.logout(cookie) if cookie else None
        if credential is not None:
            log.info("logout", token=credential.name, client=client(request))
        form = request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data")
        response = web.Response(status=303, headers=_SEE_ROOT) if form else web.Response(status=204)
        response.del_cookie(COOKIE, path="/", secure=self.secure, httponly=True, samesite="Strict")
        return response

    async def tickets(self, request: web.Request) -> web.StreamResponse:
        credential = request[CREDENTIAL]
        ticket, seconds = self.auth.mint_ticket(credential)
        log.info("ticket_issued", token=credential.name, client=client(request))
        return web.json_response({"ticket": ticket, "expires_in": max(0, int(seconds))})

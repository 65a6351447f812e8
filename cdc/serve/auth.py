"""Who is asking: a static token or a JWT (`Authorization: Bearer`), a one-time ticket
(`?ticket=`, for EventSource), or a session cookie (`POST /login`), resolved to a
`Credential`: a name for the logs and a grant. Failures are RFC 6750's.

Sessions and tickets live in memory, known by the SHA-256 of their random ids. A reload
(SIGHUP) swaps the tokens and the JWT key whole, ends the sessions and tickets whose
token is gone, and tells the streams of such a credential to close.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import structlog

from cdc.policy.grants import EVERYTHING, Grant
from cdc.policy.signed_tokens import Claims, InvalidToken, JwtVerifier
from cdc.policy.tokens import B64TOKEN, MAX_TOKEN_CHARS, TokenTable, grant_of
from cdc.secret_files import read_secret
from cdc.sections import AuthSettings, TokenSettings

log = structlog.get_logger("cdc.access")

Clock = Callable[[], float]
COOKIE = "cdc_session"
MAX_SESSIONS = 10_000  # past this the oldest logins end (memory stays bounded)
MAX_TICKETS = 10_000


class AuthFailure(Exception):
    """A request without a usable credential: the status, RFC 6750's `error` (None when
    no credential came at all), and `reason`, for the log only."""

    def __init__(
        self, status: int, error: str | None, reason: str, scope: str | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason
        self.scope = scope

    def challenge(self) -> str:
        """The `WWW-Authenticate` header (the body never says more)."""
        value = 'Bearer realm="cdc"'
        if self.error:
            value += f', error="{self.error}"'
        if self.scope:
            value += f', scope="{self.scope}"'
        return value


def missing() -> AuthFailure:
    return AuthFailure(401, None, "no_credential")


def invalid(reason: str) -> AuthFailure:
    return AuthFailure(401, "invalid_token", reason)


def malformed(reason: str) -> AuthFailure:
    return AuthFailure(400, "invalid_request", reason)


def forbidden(reason: str, scope: str | None = None) -> AuthFailure:
    return AuthFailure(403, "insufficient_scope", reason, scope)


@dataclass(frozen=True, slots=True)
class Credential:
    """A verified client: `name` is the token's name or the JWT's `sub`; `expires_at` is
    wall-clock seconds (a JWT's exp, a session's end) after which it reads nothing."""

    name: str
    kind: str  # "token", "jwt", or "none" when auth is off
    grant: Grant
    via: str = "bearer"  # bearer, ticket or session
    expires_at: float | None = None
    token: TokenSettings | None = field(default=None, repr=False)
    claims: Claims | None = field(default=None, repr=False)
    session: str | None = field(default=None, repr=False)  # digest of its session id


ANONYMOUS = Credential("anonymous", "none", EVERYTHING)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def bearer(header: str) -> str:
    """The token of an `Authorization: Bearer <token>` header, or `malformed`."""
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise malformed("not_bearer")
    if len(token) > MAX_TOKEN_CHARS or not B64TOKEN.fullmatch(token):
        raise malformed("bad_token_syntax")
    return token


@dataclass(frozen=True, slots=True)
class _Keys:
    """The credentials in force, swapped whole on reload."""

    settings: AuthSettings
    tokens: TokenTable
    jwt: JwtVerifier | None


def load_keys(settings: AuthSettings) -> _Keys:
    """The token table and the JWT verifier (its key read from its file)."""
    verifier = None
    if settings.jwt is not None:
        key = read_secret(settings.jwt.key_file, "the [auth.jwt] key")
        verifier = JwtVerifier(settings.jwt, key)
    return _Keys(settings, TokenTable(settings.tokens), verifier)


@dataclass(slots=True)
class _Held:
    credential: Credential
    expires_at: float


class Authenticator:
    """Resolves credentials; holds the sessions, the tickets and the open streams'
    credentials (to close them on reload, logout or expiry). `clock` is wall time."""

    def __init__(self, settings: AuthSettings, clock: Clock = time.time) -> None:
        self._keys = load_keys(settings)
        self.clock = clock
        self._sessions: dict[str, _Held] = {}
        self._tickets: dict[str, _Held] = {}
        self._watchers: dict[object, tuple[Credential, Callable[[str], None]]] = {}

    @property
    def settings(self) -> AuthSettings:
        return self._keys.settings

    @property
    def enabled(self) -> bool:
        return self._keys.settings.enabled

    # -- resolving ----------------------------------------------------------------------

    def verify(self, token: str, via: str = "bearer") -> Credential:
        """A static token or a JWT, or `invalid`."""
        keys = self._keys
        entry = keys.tokens.find(token)
        if entry is not None:
            return Credential(entry.name, "token", grant_of(entry), via, token=entry)
        if keys.jwt is None or token.count(".") != 2:
            raise invalid("unknown_token")
        try:
            claims = keys.jwt.verify(token, self.clock())
        except InvalidToken as error:
            raise invalid(f"jwt_{error.reason}") from None
        return Credential(
            claims.subject, "jwt", claims.grant, via, expires_at=claims.expires_at, claims=claims
        )

    def authenticate(
        self, authorization: str | None, ticket: str | None, cookie: str | None
    ) -> Credential:
        """The request's credential: its bearer token, else its ticket, else its session."""
        if not self.enabled:
            return ANONYMOUS
        if authorization is not None and ticket is not None:
            raise malformed("two_credentials")  # RFC 6750 2: one method per request
        if authorization is not None:
            return self.verify(bearer(authorization))
        if ticket is not None:
            return self.redeem(ticket)
        if cookie:
            return self.session(cookie)
        raise missing()

    # -- tickets and sessions -----------------------------------------------------------

    def mint_ticket(self, credential: Credential) -> tuple[str, float]:
        """A one-time ticket carrying `credential`'s grant, and its lifetime (seconds)."""
        now = self.clock()
        ends = now + self.settings.ticket_seconds
        if credential.expires_at is not None:
            ends = min(ends, credential.expires_at)
        self._purge(self._tickets, now, MAX_TICKETS)
        ticket = secrets.token_urlsafe(32)
        self._tickets[_digest(ticket)] = _Held(replace(credential, via="ticket"), ends)
        return ticket, ends - now

    def redeem(self, ticket: str) -> Credential:
        held = self._tickets.pop(_digest(ticket), None) if len(ticket) <= 100 else None
        if held is None or self.clock() >= held.expires_at:
            raise invalid("unknown_or_used_ticket" if held is None else "expired_ticket")
        return held.credential

    def login(self, token: str) -> tuple[str, Credential, float]:
        """A new session for a valid token: its id (the cookie), credential, seconds."""
        credential = self.verify(token, via="session")
        now = self.clock()
        ends = now + self.settings.session_seconds
        if credential.expires_at is not None:
            ends = min(ends, credential.expires_at)
        self._purge(self._sessions, now, MAX_SESSIONS)
        session = secrets.token_urlsafe(32)
        digest = _digest(session)
        credential = replace(credential, expires_at=ends, session=digest)
        self._sessions[digest] = _Held(credential, ends)
        return session, credential, ends - now

    def session(self, cookie: str) -> Credential:
        held = self._sessions.get(_digest(cookie)) if len(cookie) <= 100 else None
        if held is None:
            raise invalid("unknown_session")
        if self.clock() >= held.expires_at:
            self._sessions.pop(_digest(cookie), None)
            raise invalid("expired_session")
        return held.credential

    def logout(self, cookie: str) -> Credential | None:
        """Ends the session (and its streams); its credential, if it was one."""
        digest = _digest(cookie)
        held = self._sessions.pop(digest, None)
        if held is not None:
            self._revoke(lambda c: c.session == digest, "logout")
        return held.credential if held else None

    @staticmethod
    def _purge(held: dict[str, _Held], now: float, most: int) -> None:
        for key in [k for k, h in held.items() if h.expires_at <= now]:
            del held[key]
        while len(held) >= most:
            del held[next(iter(held))]  # the oldest (dicts keep insertion order)

    # -- streams and reload -------------------------------------------------------------

    def watch(self, handle: object, credential: Credential, close: Callable[[str], None]) -> None:
        """Call `close(reason)` when `credential` is revoked (reload, logout)."""
        self._watchers[handle] = (credential, close)

    def unwatch(self, handle: object) -> None:
        self._watchers.pop(handle, None)

    def still_valid(self, credential: Credential) -> bool:
        """True when the credential would be accepted as it is by the keys in force."""
        keys = self._keys
        if credential.kind == "none":
            return not keys.settings.enabled
        if credential.token is not None:
            return credential.token in keys.tokens
        if credential.claims is None or keys.jwt is None:
            return False
        try:
            claims = keys.jwt.verify(credential.claims.token, self.clock())
        except InvalidToken:
            return False
        return claims.grant == credential.grant

    def reload(self, settings: AuthSettings) -> None:
        """New tokens and JWT key; raises `ConfigError` (keeping the old) if they are bad.

        Sessions, tickets and streams of credentials that are no longer valid end now;
        the others go on untouched.
        """
        self._keys = load_keys(settings)
        ended = 0
        for store in (self._sessions, self._tickets):
            for key in [k for k, h in store.items() if not self.still_valid(h.credential)]:
                del store[key]
                ended += 1
        closed = self._revoke(lambda c: not self.still_valid(c), "revoked")
        log.info(
            "auth_reloaded",
            tokens=len(settings.tokens),
            jwt=settings.jwt is not None,
            streams_closed=closed,
            sessions_ended=ended,
        )

    def _revoke(self, doomed: Callable[[Credential], bool], reason: str) -> int:
        closing = [close for credential, close in self._watchers.values() if doomed(credential)]
        for close in closing:
            close(reason)
        return len(closing)

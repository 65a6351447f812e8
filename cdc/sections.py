"""The TOML sections that are not flags: `[auth]` (with `[[auth.tokens]]` and
`[auth.jwt]`), `[[redact]]` and `[mysql]` (TLS to the server).

Each is parsed into frozen dataclasses here and refused with a `ConfigError` that names
the key and the fix; `cdc.settings` registers the parsers. These hold what the file says
(patterns, digests, file paths), never a secret itself: keys are read from their files by
the part that uses them.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, TypeVar

from cdc.errors import ConfigError
from cdc.globs import parse_glob
from cdc.models import EVENT_TYPE

T = TypeVar("T")

SCOPES = frozenset({"metrics", "publish"})
"""What a credential may do besides reading events: `metrics` reads `/metrics`,
`publish` writes application events (`POST /events`)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,63}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


# -- helpers: every refusal names the key ---------------------------------------------


def _table(value: Any, where: str, known: dict[str, str]) -> dict[str, Any]:
    """A TOML table whose keys are all `known` (key -> what it is, for the message)."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table", fix=f"write it as [{where}] with its keys")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in [{where}]",
            fix="known keys: " + "; ".join(f"{k} ({v})" for k, v in known.items()),
        )
    return value


def _get(data: dict[str, Any], key: str, kind: type[T], where: str, default: T) -> T:
    if key not in data:
        return default
    value = data[key]
    # TOML's booleans are not numbers here, and integers are accepted for floats.
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ConfigError(
            f"{where}.{key} must be a {kind.__name__} (got {type(value).__name__})",
            fix=f"correct {key} in the configuration file",
        )
    return value  # type: ignore[no-any-return]


def _strings(data: dict[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    """A list of strings, or None when the key is absent."""
    if key not in data:
        return None
    value = data[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.{key} must be a list of strings", fix=f'e.g. {key} = ["..."]')
    return tuple(value)


def _positive(value: int | float, key: str, where: str) -> None:
    if value <= 0:
        raise ConfigError(f"{where}.{key} must be more than 0", fix=f"correct {key}")


def event_types(values: tuple[str, ...], where: str) -> tuple[str, ...]:
    for value in values:
        if not EVENT_TYPE.fullmatch(value):
            raise ConfigError(
                f"{where}: {value!r} is not an event type",
                fix="CREATE, UPDATE, DELETE, CASCADE, or an upper-case name of letters, digits "
                "and _ (case matters)",
            )
    return tuple(dict.fromkeys(values))


def scopes(values: tuple[str, ...], where: str) -> tuple[str, ...]:
    for value in values:
        if value not in SCOPES:
            raise ConfigError(
                f"{where}: unknown scope {value!r}",
                fix=f"known scopes: {', '.join(sorted(SCOPES))}",
            )
    return tuple(dict.fromkeys(values))


def table_patterns(values: tuple[str, ...], where: str) -> tuple[str, ...]:
    for value in values:
        parse_glob(value, where)
    return tuple(dict.fromkeys(values))


# -- [auth] ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """One `[[auth.tokens]]`: a static token known by the SHA-256 of its text."""

    name: str
    sha256: str  # lower-case hex
    tables: tuple[str, ...] = ()  # globs on schema.table; none: reads nothing
    types: tuple[str, ...] | None = None  # None: every type
    scopes: tuple[str, ...] = ()


class JwtAlgorithm(enum.StrEnum):
    HS256 = "HS256"
    RS256 = "RS256"
    ES256 = "ES256"


@dataclass(frozen=True, slots=True)
class JwtSettings:
    """`[auth.jwt]`: signed tokens minted by another system (the application server)."""

    algorithm: JwtAlgorithm
    key_file: str  # the HS256 secret, or the RS256/ES256 public key (PEM)
    audience: str | None = None  # required in every token when set
    issuer: str | None = None
    leeway_seconds: float = 0.0  # clock skew tolerated on exp (and nbf, iat)


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """`[auth]`: who may connect. With no token and no JWT key, auth is off."""

    cookie_secure: bool | None = None  # None: Secure when serving HTTPS
    session_seconds: float = 8 * 3600.0  # how long a login lasts (capped by a JWT's exp)
    ticket_seconds: float = 30.0  # how long a ticket from POST /tickets may wait for its use
    tokens: tuple[TokenSettings, ...] = ()
    jwt: JwtSettings | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.tokens) or self.jwt is not None


_TOKEN_KEYS = {
    "name": "who holds it, as the logs name it",
    "sha256": "SHA-256 of the token, 64 hex digits (cdc token create prints it)",
    "tables": "globs on schema.table it may read",
    "types": "event types it may read (default: all)",
    "scopes": "metrics, publish",
}
_JWT_KEYS = {
    "hs256_secret_file": "file holding the HS256 secret",
    "public_key_file": "PEM file holding the RS256 or ES256 public key",
    "algorithm": "HS256, RS256 or ES256",
    "audience": "required aud claim",
    "issuer": "required iss claim",
    "leeway_seconds": "clock skew tolerated on exp",
}
_AUTH_KEYS = {
    "cookie_secure": "Secure flag of the session cookie (default: when serving HTTPS)",
    "session_seconds": "how long a login lasts",
    "ticket_seconds": "how long a ticket stays valid",
    "tokens": "[[auth.tokens]] entries",
    "jwt": "[auth.jwt] table",
}


def _token(value: Any, where: str) -> TokenSettings:
    data = _table(value, where, _TOKEN_KEYS)
    name = _get(data, "name", str, where, "")
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"{where}.name {name!r} is missing or not a name",
            fix="a name of letters, digits and _ . @ : + - (at most 64), e.g. ward-screen",
        )
    digest = _get(data, "sha256", str, where, "")
    if not _SHA256.fullmatch(digest):
        raise ConfigError(
            f"{where}.sha256 of token {name!r} is missing or not 64 hex digits",
            fix="paste the sha256 line that `cdc token create` printed",
        )
    return TokenSettings(
        name=name,
        sha256=digest.lower(),
        tables=table_patterns(_strings(data, "tables", where) or (), f"{where}.tables"),
        types=None
        if (types := _strings(data, "types", where)) is None
        else event_types(types, f"{where}.types"),
        scopes=scopes(_strings(data, "scopes", where) or (), f"{where}.scopes"),
    )


def _jwt(value: Any) -> JwtSettings:
    where = "auth.jwt"
    data = _table(value, where, _JWT_KEYS)
    secret = _get(data, "hs256_secret_file", str, where, "")
    public = _get(data, "public_key_file", str, where, "")
    if bool(secret) == bool(public):
        raise ConfigError(
            "[auth.jwt] needs exactly one of hs256_secret_file and public_key_file",
            fix='hs256_secret_file = "/etc/cdc/jwt.secret", or public_key_file = "..." '
            'with algorithm = "RS256"',
        )
    text = _get(data, "algorithm", str, where, "HS256" if secret else "")
    try:
        algorithm = JwtAlgorithm(text)
    except ValueError:
        raise ConfigError(
            f"auth.jwt.algorithm {text!r} is not one of HS256, RS256, ES256",
            fix='algorithm = "RS256" (or "ES256") with public_key_file',
        ) from None
    if (algorithm is JwtAlgorithm.HS256) != bool(secret):
        raise ConfigError(
            f"auth.jwt.algorithm {algorithm} does not go with "
            + ("hs256_secret_file" if secret else "public_key_file"),
            fix="HS256 takes hs256_secret_file; RS256 and ES256 take public_key_file",
        )
    leeway = _get(data, "leeway_seconds", float, where, 0.0)
    if not 0 <= leeway <= 300:
        raise ConfigError("auth.jwt.leeway_seconds must be from 0 to 300", fix="e.g. 5")
    return JwtSettings(
        algorithm=algorithm,
        key_file=secret or public,
        audience=_get(data, "audience", str, where, "") or None,
        issuer=_get(data, "issuer", str, where, "") or None,
        leeway_seconds=leeway,
    )


def parse_auth(value: Any) -> AuthSettings:
    """The `[auth]` table (with its `tokens` array and `jwt` table)."""
    data = _table(value, "auth", _AUTH_KEYS)
    raw_tokens = data.get("tokens", [])
    if not isinstance(raw_tokens, list):
        raise ConfigError("auth.tokens must be an array of tables", fix="write [[auth.tokens]]")
    tokens = tuple(_token(t, f"auth.tokens[{i}]") for i, t in enumerate(raw_tokens))
    for attribute in ("name", "sha256"):
        seen: set[str] = set()
        for token in tokens:
            key = getattr(token, attribute)
            if key in seen:
                raise ConfigError(
                    f"two [[auth.tokens]] have the same {attribute}"
                    + (f" {key!r}" if attribute == "name" else ""),
                    fix="give each client its own token (cdc token create NAME)",
                )
            seen.add(key)
    defaults = AuthSettings()
    session = _get(data, "session_seconds", float, "auth", defaults.session_seconds)
    ticket = _get(data, "ticket_seconds", float, "auth", defaults.ticket_seconds)
    _positive(session, "session_seconds", "auth")
    _positive(ticket, "ticket_seconds", "auth")
    cookie_secure = data.get("cookie_secure")
    if cookie_secure is not None and not isinstance(cookie_secure, bool):
        raise ConfigError("auth.cookie_secure must be true or false", fix="correct it")
    return AuthSettings(
        cookie_secure=cookie_secure,
        session_seconds=session,
        ticket_seconds=ticket,
        tokens=tokens,
        jwt=_jwt(data["jwt"]) if "jwt" in data else None,
    )


# -- [[redact]] --------------------------------------------------------------------------


class RedactAction(enum.StrEnum):
    DROP = "drop"  # the column is absent
    MASK = "mask"  # the JSON string "***"
    HASH = "hash"  # HMAC-SHA256 of the value's JSON text, 64 hex digits


@dataclass(frozen=True, slots=True)
class RedactRule:
    """One `[[redact]]`: columns (globs on schema.table.column) and what is done to them."""

    columns: tuple[str, ...]
    action: RedactAction
    hash_key_file: str | None = None


_REDACT_KEYS = {
    "columns": "globs on schema.table.column",
    "action": "drop, mask or hash",
    "hash_key_file": "file holding the HMAC key (hash only)",
}


def _rule(value: Any, where: str) -> RedactRule:
    data = _table(value, where, _REDACT_KEYS)
    columns = _strings(data, "columns", where)
    if not columns:
        raise ConfigError(
            f"{where}.columns is missing or empty", fix='columns = ["hosp.patient.phone"]'
        )
    for column in columns:
        if parse_glob(column, f"{where}.columns").text.count(".") < 2 and "*" not in column:
            raise ConfigError(
                f"{where}.columns: {column!r} is not schema.table.column",
                fix='name the column with its schema and table: "hosp.patient.phone"',
            )
    text = _get(data, "action", str, where, "")
    try:
        action = RedactAction(text)
    except ValueError:
        raise ConfigError(
            f"{where}.action {text!r} is not drop, mask or hash", fix='action = "mask"'
        ) from None
    key_file = _get(data, "hash_key_file", str, where, "") or None
    if (action is RedactAction.HASH) != (key_file is not None):
        raise ConfigError(
            f"{where}: "
            + (
                "hash needs hash_key_file"
                if key_file is None
                else f'hash_key_file goes with action = "hash", not {action}'
            ),
            fix='action = "hash" with hash_key_file = "/etc/cdc/hmac.key" (32 random bytes)',
        )
    return RedactRule(tuple(dict.fromkeys(columns)), action, key_file)


def parse_redact(value: Any) -> tuple[RedactRule, ...]:
    """The `[[redact]]` array of tables."""
    if not isinstance(value, list):
        raise ConfigError("redact must be an array of tables", fix="write [[redact]]")
    return tuple(_rule(rule, f"redact[{i}]") for i, rule in enumerate(value))


# -- [mysql]: TLS to the server -----------------------------------------------------------


class TlsMode(enum.StrEnum):
    """MySQL's `ssl-mode` names: encryption, then the CA, then the host name too."""

    REQUIRED = "required"  # encrypted; the server's certificate is not checked
    VERIFY_CA = "verify_ca"  # signed by the CA
    VERIFY_IDENTITY = "verify_identity"  # and issued to the host the DSN names


@dataclass(frozen=True, slots=True)
class MysqlTls:
    """TLS for every connection to the server (`ssl_*` keys or DSN query parameters)."""

    mode: TlsMode = TlsMode.VERIFY_IDENTITY
    ca: str | None = None  # PEM file of the CA; None: the system's CAs
    cert: str | None = None  # client certificate (PEM), for REQUIRE X509 users
    key: str | None = None  # its private key (PEM)


TLS_KEYS = {
    "ssl_mode": "required, verify_ca or verify_identity (default)",
    "ssl_ca": "PEM file of the CA that signed the server's certificate",
    "ssl_cert": "client certificate (PEM)",
    "ssl_key": "client private key (PEM)",
}


def parse_tls(value: Any, where: str = "mysql") -> MysqlTls | None:
    """TLS settings from `[mysql]` or the DSN's query (None when no key asks for TLS)."""
    data = _table(value, where, TLS_KEYS)
    if not data:
        return None

    def text(key: str) -> str | None:
        return _get(data, key, str, where, "") or None

    mode_text = (text("ssl_mode") or TlsMode.VERIFY_IDENTITY).lower()
    try:
        mode = TlsMode(mode_text)
    except ValueError:
        raise ConfigError(
            f"{where}.ssl_mode {mode_text!r} is not required, verify_ca or verify_identity",
            fix="ssl_mode = verify_identity (the default when any ssl_ key is given)",
        ) from None
    cert, key = text("ssl_cert"), text("ssl_key")
    if bool(cert) != bool(key):
        raise ConfigError(f"{where}: ssl_cert and ssl_key go together", fix="give both, or neither")
    return MysqlTls(mode=mode, ca=text("ssl_ca"), cert=cert, key=key)

"""Signed tokens (JWT) minted by another system: verified with the configured algorithm
and key only (never the token header's choice), `exp` and `sub` required, `aud`/`iss`
checked when configured; the grant comes from the `cdc` claim."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jwt

from cdc.errors import ConfigError
from cdc.policy.grants import Grant
from cdc.sections import JwtAlgorithm, JwtSettings, event_types, scopes, table_patterns

MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash


class InvalidToken(Exception):
    """The token cannot be used; `reason` is for the daemon's log, never for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says: who (`sub`), until when, and its grant."""

    subject: str
    expires_at: float
    grant: Grant
    token: str = field(repr=False)  # kept to verify again after a key reload


class JwtVerifier:
    """Verifies tokens with one algorithm and one key (the secret, or a PEM public key)."""

    def __init__(self, settings: JwtSettings, key: bytes) -> None:
        self.settings = settings
        algorithm = str(settings.algorithm)
        if settings.algorithm is JwtAlgorithm.HS256:
            if len(key) < MIN_SECRET_BYTES:
                raise ConfigError(
                    f"the HS256 secret in {settings.key_file} is shorter than "
                    f"{MIN_SECRET_BYTES} bytes",
                    fix="write 32 random bytes or more into it (e.g. `openssl rand -base64 48`)",
                )
            self._key: Any = key
        else:
            try:
                self._key = jwt.get_algorithm_by_name(algorithm).prepare_key(key)
            except (ValueError, TypeError, jwt.InvalidKeyError):
                raise ConfigError(
                    f"{settings.key_file} holds no {algorithm} public key",
                    fix="give the PEM public key (-----BEGIN PUBLIC KEY-----) of the signer",
                ) from None
        self._algorithms = [algorithm]
        required = ["exp", "sub"]
        if settings.audience is not None:
            required.append("aud")
        if settings.issuer is not None:
            required.append("iss")
        # exp is checked below against the caller's clock (tests move it); nbf and iat by PyJWT.
        self._options: Any = {"require": required, "verify_exp": False}

    def verify(self, token: str, now: float | None = None) -> Claims:
        s = self.settings
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway_seconds,
                options=self._options,
            )
        except jwt.InvalidTokenError as error:
            raise InvalidToken(type(error).__name__) from None
        exp = payload.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise InvalidToken("exp is not a number")
        if (time.time() if now is None else now) >= exp + s.leeway_seconds:
            raise InvalidToken("expired")
        subject = payload.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise InvalidToken("sub is not a string")
        return Claims(subject, float(exp), grant_from_claim(payload.get("cdc")), token)


def grant_from_claim(claim: Any) -> Grant:
    """The `cdc` claim: `{"tables": [...], "types": [...], "scopes": [...]}`; without
    `tables` the token reads nothing."""
    if claim is None:
        return Grant()
    if not isinstance(claim, dict) or set(claim) - {"tables", "types", "scopes"}:
        raise InvalidToken("the cdc claim is not {tables, types, scopes}")
    lists: dict[str, tuple[str, ...] | None] = {}
    for key in ("tables", "types", "scopes"):
        value = claim.get(key)
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(v, str) for v in value)
        ):
            raise InvalidToken(f"cdc.{key} is not a list of strings")
        lists[key] = None if value is None else tuple(value)
    try:
        types = lists["types"]
        return Grant(
            tables=table_patterns(lists["tables"] or (), "cdc.tables"),
            types=None if types is None else event_types(types, "cdc.types"),
            scopes=frozenset(scopes(lists["scopes"] or (), "cdc.scopes")),
        )
    except ConfigError as error:
        raise InvalidToken(error.problem) from None

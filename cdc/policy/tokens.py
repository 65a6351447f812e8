"""Static tokens: made here (`cdc token create`), known to the daemon only by the SHA-256
of their text, found in constant time."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets

from cdc.policy.grants import Grant
from cdc.sections import TokenSettings

TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 4096  # longer than any JWT a browser sends in a cookie-less request
# RFC 6750's b64token: what `Authorization: Bearer` may carry.
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def new_token() -> str:
    """32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(token: str) -> str:
    """The SHA-256 (hex) of the token's text as the client sends it.

    A fast hash is enough: the token is 256 random bits, not a password to guess.
    """
    return hashlib.sha256(token.encode()).hexdigest()


def grant_of(token: TokenSettings) -> Grant:
    return Grant(tables=token.tables, types=token.types, scopes=frozenset(token.scopes))


class TokenTable:
    """The configured tokens, looked up by the digest of a presented token."""

    def __init__(self, tokens: tuple[TokenSettings, ...]) -> None:
        self.tokens = tokens

    def find(self, token: str) -> TokenSettings | None:
        """The entry whose digest is the token's; every entry is compared, in constant
        time, so the answer's timing says nothing about the stored digests."""
        presented = digest(token).encode()
        found = None
        for entry in self.tokens:
            if hmac.compare_digest(presented, entry.sha256.encode()):
                found = entry
        return found

    def __contains__(self, entry: TokenSettings) -> bool:
        return entry in self.tokens


def toml_block(
    name: str,
    token_digest: str,
    tables: tuple[str, ...],
    types: tuple[str, ...] | None,
    scopes: tuple[str, ...],
) -> str:
    """The `[[auth.tokens]]` entry to paste into the configuration file."""

    def strings(values: tuple[str, ...]) -> str:
        return "[" + ", ".join(json.dumps(v) for v in values) + "]"

    lines = [
        "[[auth.tokens]]",
        f"name   = {json.dumps(name)}",
        f'sha256 = "{token_digest}"',
        f"tables = {strings(tables)}",
    ]
    if types is not None:
        lines.append(f"types  = {strings(types)}")
    if scopes:
        lines.append(f"scopes = {strings(scopes)}")
    return "\n".join(lines) + "\n"

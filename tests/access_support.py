"""Credentials for the access tests: tokens with their grants, a JWT secret on disk,
events in a few hospital tables, a clock the tests move."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from cdc.policy.tokens import digest, new_token
from cdc.sections import AuthSettings, parse_auth
from tests.http_support import EventDb, make_event

TABLES = ("patient_visit", "invoice", "cash", "patient")
JWT_SECRET = b"j" * 48


@dataclass
class Clock:
    """Wall time, moved forward by the tests (tickets, sessions and JWTs expire by it)."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Credentials:
    """A token per client, the [auth] section that knows them, and the JWT secret's file."""

    folder: Path
    tokens: dict[str, str] = field(default_factory=dict)
    grants: dict[str, dict[str, Any]] = field(default_factory=dict)
    jwt: bool = True

    def add(self, name: str, **grant: Any) -> str:
        self.tokens[name] = new_token()
        self.grants[name] = grant
        return self.tokens[name]

    def settings(self, **extra: Any) -> AuthSettings:
        section: dict[str, Any] = {
            "tokens": [
                {"name": name, "sha256": digest(token), **self.grants[name]}
                for name, token in self.tokens.items()
            ],
            **extra,
        }
        if self.jwt:
            secret = self.folder / "jwt.secret"
            secret.write_bytes(JWT_SECRET + b"\n")
            secret.chmod(0o600)
            section["jwt"] = {"hs256_secret_file": str(secret)}
        return parse_auth(section)


def hospital(credentials_folder: Path) -> Credentials:
    """The issue's clients: the ward's screen, the finance office, a monitoring probe."""
    creds = Credentials(credentials_folder)
    creds.add("ward-screen", tables=["hosp.patient_visit"])
    creds.add("finance", tables=["hosp.invoice", "hosp.cash"], types=["CREATE", "UPDATE"])
    creds.add("probe", tables=[], scopes=["metrics"])
    return creds


def signed(sub: str = "nurse-7", seconds: float = 300, **cdc: Any) -> str:
    claims: dict[str, Any] = {"sub": sub, "exp": int(time.time() + seconds)}
    if cdc:
        claims["cdc"] = cdc
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def fill(db: EventDb, each: int = 3) -> None:
    """`each` events per table, interleaved (ids 1..), of all three types."""
    moment = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=5)
    stamp = moment.isoformat(sep=" ", timespec="microseconds")
    events = []
    i = 0
    for _ in range(each):
        for table in TABLES:
            i += 1
            events.append(
                make_event(
                    i,
                    table=table,
                    schema="hosp",
                    type=["CREATE", "UPDATE", "DELETE"][i % 3],
                    timestamp=stamp,
                )
            )
    db.insert(events)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def get_json(
    session: aiohttp.ClientSession, url: str, token: str | None = None, **params: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    headers = bearer(token) if token else {}
    async with session.get(url, params=params, headers=headers) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body, response

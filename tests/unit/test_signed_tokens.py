"""JWT verification: the configured algorithm and key only, exp required, aud/iss when
configured, the grant from the `cdc` claim."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cdc.errors import ConfigError
from cdc.policy.signed_tokens import InvalidToken, JwtVerifier
from cdc.sections import JwtAlgorithm, JwtSettings

SECRET = b"s" * 48
NOW = 1_800_000_000.0


def hs256(**settings: Any) -> JwtVerifier:
    return JwtVerifier(JwtSettings(JwtAlgorithm.HS256, "/etc/cdc/jwt.secret", **settings), SECRET)


def claims(**extra: Any) -> dict[str, Any]:
    return {
        "sub": "nurse-7",
        "exp": NOW + 60,
        "cdc": {"tables": ["hosp.patient_visit"], "types": ["CREATE"]},
        **extra,
    }


def test_a_valid_token_gives_its_grant() -> None:
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    verified = hs256().verify(token, NOW)
    assert verified.subject == "nurse-7" and verified.expires_at == NOW + 60
    assert verified.grant.allows_table("hosp", "patient_visit")
    assert not verified.grant.allows_table("hosp", "invoice")
    assert verified.grant.types == ("CREATE",)
    assert token not in repr(verified)


def reason(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as refused:
        verifier.verify(token, NOW)
    return refused.value.reason


def test_expired_and_unsigned_and_foreign_tokens_are_refused() -> None:
    verifier = hs256()
    assert reason(verifier, jwt.encode(claims(exp=NOW - 1), SECRET, algorithm="HS256")) == "expired"
    assert reason(verifier, jwt.encode(claims(), b"o" * 48, algorithm="HS256")) == (
        "InvalidSignatureError"
    )
    assert reason(verifier, jwt.encode({"sub": "x"}, SECRET, algorithm="HS256")).startswith(
        "MissingRequiredClaim"
    )
    # alg: none, made by hand (PyJWT will not sign one with a key).
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=").decode()
    assert reason(verifier, f"{header}.{body}.") == "InvalidAlgorithmError"
    assert reason(verifier, "not.a.jwt") == "DecodeError"


def test_audience_and_issuer_when_configured() -> None:
    verifier = hs256(audience="cdc", issuer="https://app.hosp")
    good = claims(aud="cdc", iss="https://app.hosp")
    assert verifier.verify(jwt.encode(good, SECRET, algorithm="HS256"), NOW).subject == "nurse-7"
    no_aud = {k: v for k, v in good.items() if k != "aud"}
    assert reason(verifier, jwt.encode(no_aud, SECRET, algorithm="HS256")).startswith("Missing")
    assert reason(verifier, jwt.encode({**good, "aud": "other"}, SECRET, algorithm="HS256")) == (
        "InvalidAudienceError"
    )
    assert reason(verifier, jwt.encode({**good, "iss": "evil"}, SECRET, algorithm="HS256")) == (
        "InvalidIssuerError"
    )


def test_rs256_and_es256_with_a_public_key_and_no_algorithm_confusion() -> None:
    for algorithm, private in (
        (JwtAlgorithm.RS256, rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        (JwtAlgorithm.ES256, ec.generate_private_key(ec.SECP256R1())),
    ):
        public = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        verifier = JwtVerifier(JwtSettings(algorithm, "/etc/cdc/app.pem"), public)
        token = jwt.encode(claims(), private, algorithm=str(algorithm))
        assert verifier.verify(token, NOW).subject == "nurse-7"
        # The public key used as an HMAC secret: the header's alg is never trusted.
        assert reason(verifier, _hs256_with(public)) == "InvalidAlgorithmError"


def _hs256_with(key: bytes) -> str:
    """A token signed with HMAC-SHA256 by hand (PyJWT refuses a PEM key as a secret)."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing = part(b'{"alg":"HS256","typ":"JWT"}') + "." + part(json.dumps(claims()).encode())
    signature = hmac.new(key, signing.encode(), hashlib.sha256).digest()
    return signing + "." + part(signature)


@pytest.mark.parametrize(
    "claim",
    [
        {"tables": "hosp.*"},  # not a list
        {"tables": ["hosp.*"], "types": ["create"]},  # not an event type
        {"tables": ["hosp.*"], "scopes": ["admin"]},  # no such scope
        {"tables": ["hosp.*"], "extra": 1},
        ["hosp.*"],
    ],
)
def test_a_bad_cdc_claim_is_refused(claim: Any) -> None:
    token = jwt.encode(claims(cdc=claim), SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken):
        hs256().verify(token, NOW)


def test_without_a_cdc_claim_it_reads_nothing() -> None:
    token = jwt.encode({"sub": "x", "exp": NOW + 5}, SECRET, algorithm="HS256")
    grant = hs256().verify(token, NOW).grant
    assert grant.tables == () and not grant.allows_table("hosp", "patient_visit")


def test_a_short_secret_or_a_bad_public_key_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="shorter than 32 bytes"):
        JwtVerifier(JwtSettings(JwtAlgorithm.HS256, "/k"), b"short")
    with pytest.raises(ConfigError, match="holds no RS256 public key"):
        JwtVerifier(JwtSettings(JwtAlgorithm.RS256, "/k"), b"not a key")


def test_the_real_clock_is_the_default() -> None:
    token = jwt.encode(claims(exp=time.time() + 60), SECRET, algorithm="HS256")
    assert hs256().verify(token).subject == "nurse-7"

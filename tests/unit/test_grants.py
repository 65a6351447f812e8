"""Globs, grants and static tokens: what a credential may read, decided without a server."""

from __future__ import annotations

import tomllib

import pytest

from cdc.globs import Glob
from cdc.policy.grants import EVERYTHING, Forbidden, Grant
from cdc.policy.tokens import TokenTable, digest, grant_of, new_token, toml_block
from cdc.sections import parse_auth


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("hosp.patient_visit", "hosp.patient_visit", True),
        ("hosp.patient_visit", "hosp.patientXvisit", False),  # `_` is literal
        ("hosp.patient%", "hosp.patient_visit", False),  # so is `%`
        ("hosp.*", "hosp.invoice", True),
        ("hosp.*", "hospital.invoice", False),
        ("hosp.inv?ice", "hosp.invoice", True),
        ("hosp.inv?ice", "hosp.invoooice", False),
        ("Hosp.*", "hosp.invoice", False),  # case-sensitive
        ("*.*.password_hash", "a.b.password_hash", True),
        ("hosp.[ab]", "hosp.a", False),  # no character classes: [ is literal
        ("hosp.[ab]", "hosp.[ab]", True),
    ],
)
def test_globs(pattern: str, name: str, matches: bool) -> None:
    assert Glob(pattern).matches(name) is matches


@pytest.mark.parametrize(
    ("pattern", "like"),
    [
        ("hosp.patient_visit", "hosp.patient!_visit"),
        ("a%b!c", "a!%b!!c"),
        ("hosp.*", "hosp.%"),
        ("h?sp.x", "h_sp.x"),
    ],
)
def test_globs_as_like_patterns(pattern: str, like: str) -> None:
    assert Glob(pattern).like() == like


def test_a_grant_refuses_what_it_does_not_allow() -> None:
    grant = Grant(tables=("hosp.patient_visit",), types=("CREATE", "UPDATE"))
    grant.check(((("hosp"), "patient_visit"),), ("CREATE",))
    grant.check(((None, "patient"),), ())  # a pattern (any schema): intersected, not refused
    with pytest.raises(Forbidden) as refused:
        grant.check((("hosp", "invoice"),), ())
    assert refused.value.parameter == "table"
    with pytest.raises(Forbidden):
        grant.check((("hosp", "no_such_table"),), ())  # whether or not it exists
    with pytest.raises(Forbidden) as refused:
        grant.check((), ("DELETE",))
    assert refused.value.parameter == "type"
    assert not grant.has_scope("metrics")


def test_deny_by_default() -> None:
    nothing = Grant()
    assert not nothing.allows_table("hosp", "patient_visit")
    assert nothing.allows_type("CREATE")  # types default to all, but no table is allowed
    assert EVERYTHING.allows_table("any", "thing") and EVERYTHING.has_scope("metrics")


def test_tokens_are_found_by_their_digest_only() -> None:
    ward, finance = new_token(), new_token()
    assert len(ward) == 43 and ward != finance
    config = parse_auth(
        {
            "tokens": [
                {"name": "ward", "sha256": digest(ward), "tables": ["hosp.patient_visit"]},
                {"name": "finance", "sha256": digest(finance).upper(), "tables": ["hosp.cash"]},
            ]
        }
    )
    table = TokenTable(config.tokens)
    found = table.find(ward)
    assert found is not None and found.name == "ward"
    assert grant_of(found).allows_table("hosp", "patient_visit")
    finance_entry = table.find(finance)
    assert finance_entry is not None and finance_entry.name == "finance"
    assert table.find(ward + "x") is None
    assert table.find(digest(ward)) is None  # the digest itself is not a token


def test_the_printed_block_parses_back() -> None:
    token = new_token()
    block = toml_block("finance", digest(token), ("hosp.invoice", "hosp.cash"), None, ("metrics",))
    parsed = parse_auth({"tokens": tomllib.loads(block)["auth"]["tokens"]})
    (entry,) = parsed.tokens
    assert entry.name == "finance" and entry.tables == ("hosp.invoice", "hosp.cash")
    assert entry.types is None and entry.scopes == ("metrics",)
    assert TokenTable(parsed.tokens).find(token) == entry

"""sqlcommenter tags in statements: parsed values only, literals never mistaken for tags."""

from __future__ import annotations

import pytest

from cdc.capture.tags import attribution, parse


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("UPDATE patient SET a = 1 /*user_id='7',route='%2Fpatients'*/",
         {"user_id": "7", "route": "/patients"}),
        (b"INSERT INTO t VALUES (1) /*user_id='42'*/", {"user_id": "42"}),
        ("/* plain */ SELECT 1 /*user_id='a\\'b',x='1,2'*/", {"user_id": "a'b", "x": "1,2"}),
        ("SELECT 1 /*user_id='1'*/ /*user_id='2'*/", {"user_id": "2"}),  # the last one wins
        ("SELECT 1 /* user_id=7 */", {}),  # not the format
        ("SELECT 1 /*!40101 user_id='7'*/ /*+ hint='x' */", {}),
        # A comment inside a literal is data, not a tag: no spoofing by what users type.
        ("INSERT INTO t VALUES ('/*user_id=''1''*/', \"/*user_id='2'*/\", `/*a='b'*/`)", {}),
        ("INSERT INTO t VALUES ('it''s') -- it's\n/*user_id='9'*/", {"user_id": "9"}),
        ("UPDATE t SET x = 1 # a 'comment\n/*user_id='8'*/", {"user_id": "8"}),
        ("SELECT 1", {}),
        ("SELECT 1 /*user_id='%E2%9C%93',k%20ey='v%27'*/", {"user_id": "✓", "k ey": "v'"}),
    ],
)  # fmt: skip
def test_parse(statement: str | bytes, expected: dict[str, str]) -> None:
    assert parse(statement) == expected


def test_attribution_keeps_only_the_context_asked_for() -> None:
    tags = {"user_id": "7", "route": "/p", "secret": "x"}
    assert attribution(tags, "user_id", ("route", "user_id")) == ("7", {"route": "/p"})
    assert attribution(tags, "uid", ()) == (None, None)
    assert attribution({}, "user_id", ("route",)) == (None, None)

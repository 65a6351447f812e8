"""Glob patterns on names (`schema.table`, `schema.table.column`): `*` any run of
characters, `?` one character, everything else literal (`_` and `%` too), case-sensitive.

One `Glob` matches in memory and as a SQL `LIKE`, so live events and history select the
same tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cdc.errors import ConfigError

LIKE_ESCAPE = "!"
"""The escape character of every LIKE pattern made here (`... LIKE %s ESCAPE '!'`)."""

_MAX_LENGTH = 300  # schema (64) + table (64) + column (64) names, dots, and slack


@dataclass(frozen=True, slots=True)
class Glob:
    """A compiled glob; `text` is the pattern as written."""

    text: str
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in self.text)
        object.__setattr__(self, "_regex", re.compile("".join(parts), re.DOTALL))

    def matches(self, name: str) -> bool:
        return self._regex.fullmatch(name) is not None

    @property
    def literal(self) -> bool:
        """True when the pattern has no wildcard: it names one thing."""
        return "*" not in self.text and "?" not in self.text

    def like(self) -> str:
        """The same pattern for SQL `LIKE ... ESCAPE '!'` (`%`, `_` and `!` escaped)."""
        out = []
        for c in self.text:
            if c == "*":
                out.append("%")
            elif c == "?":
                out.append("_")
            elif c in ("%", "_", LIKE_ESCAPE):
                out.append(LIKE_ESCAPE + c)
            else:
                out.append(c)
        return "".join(out)


def parse_glob(text: object, where: str) -> Glob:
    """A pattern from a configuration value; `where` names the key for the error."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(
            f"{where}: {text!r} is not a pattern", fix='write a glob such as "hosp.patient_*"'
        )
    if len(text) > _MAX_LENGTH or any(ord(c) < 32 for c in text):
        raise ConfigError(
            f"{where}: {text[:40]!r}… is not a pattern (too long, or control characters)",
            fix="use names and the wildcards * and ?",
        )
    return Glob(text)


def any_matches(globs: tuple[Glob, ...], name: str) -> bool:
    return any(g.matches(name) for g in globs)

"""Tags in a statement's SQL comment, in the sqlcommenter format that middleware writes
(`UPDATE ... /*user_id='7',route='%2Fpatients'*/`): key='url-quoted value' pairs,
comma-separated. Pure.

Only the parsed values leave this module: the statement text holds row values (redacted
ones included) and is never kept, logged or sent.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

# A comment, or a quoted string or name, or a line comment (all but the first are
# skipped: data in a literal is not a tag).
_LEXEME = re.compile(
    r"""/\*(?P<body>.*?)\*/|'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|`(?:[^`]|``)*`"""
    r"|--[ \t][^\n]*|\#[^\n]*",
    re.S,
)
_PAIR = re.compile(r"\s*([A-Za-z0-9_.%~-]+)\s*=\s*'((?:[^'\\]|\\.)*)'\s*")


def parse(statement: str | bytes) -> dict[str, str]:
    """The tags of every sqlcommenter comment in `statement` (the last one wins a key)."""
    if isinstance(statement, bytes):
        statement = statement.decode("utf-8", "replace")
    if "/*" not in statement:
        return {}
    tags: dict[str, str] = {}
    for match in _LEXEME.finditer(statement):
        body = match.group("body")
        if body is None or body[:1] in ("!", "+"):  # a literal, /*! ... */ or a hint
            continue
        tags.update(_pairs(body))
    return tags


def _pairs(body: str) -> dict[str, str]:
    """key='value',... when the whole comment is that form; {} for any other comment."""
    if not body.strip():
        return {}
    pairs: dict[str, str] = {}
    for part in _split(body):
        match = _PAIR.fullmatch(part)
        if match is None:
            return {}
        value = re.sub(r"\\(.)", r"\1", match.group(2))  # \' inside a value
        pairs[unquote(match.group(1))] = unquote(value)
    return pairs


def _split(body: str) -> list[str]:
    """The comment's pairs, split at the commas outside quoted values."""
    parts, start, quoted, escaped = [], 0, False, False
    for i, char in enumerate(body):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "'":
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    return parts


def attribution(
    tags: dict[str, str], user_tag: str, context_tags: tuple[str, ...]
) -> tuple[str | None, dict[str, str] | None]:
    """The user and the context a statement's tags give: (user_id or None, context or
    None), the context holding only the keys asked for (the user's is not repeated)."""
    if not tags:
        return None, None
    context = {k: tags[k] for k in context_tags if k in tags and k != user_tag}
    return tags.get(user_tag), context or None

"""Ages such as `30s`, `15m`, `1h`, `90d`, `2w`: `/events`' relative `since`, `cdc prune
--older-than` and `cdc run --retention` read them alike."""

from __future__ import annotations

import re
from datetime import timedelta

from cdc.errors import ConfigError

AGE = re.compile(r"([0-9]{1,9})\s*(s|m|h|d|w)")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
EXAMPLES = "30s, 15m, 12h, 90d or 2w"


def age_seconds(text: str) -> int | None:
    """The seconds of an age (`90d` -> 7776000), or None when `text` is not one."""
    match = AGE.fullmatch(text.strip())
    if match is None:
        return None
    return int(match[1]) * UNITS[match[2]]


def parse_age(text: str, what: str) -> timedelta:
    """An age given by the operator (`what` names the flag); zero or not an age is a
    `ConfigError` saying how to write one."""
    seconds = age_seconds(text)
    if seconds is None:
        raise ConfigError(
            f"{what} {text!r} is not an age",
            fix=f"write a number and a unit (s, m, h, d or w), e.g. {EXAMPLES}",
        )
    if seconds == 0:
        raise ConfigError(f"{what} {text!r} would delete every event", fix="give an age above 0")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ConfigError(f"{what} {text!r} is too long", fix="give at most 9999999d") from None

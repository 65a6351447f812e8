"""Conversions the compiled decoder's generated code calls, and the code snippets it
splices in (DECIMAL, TIME, old DATETIME): formatting a date or a decimal costs far more
than a lookup, so pure conversions are memoised by their raw bytes. Pure."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date
from typing import Any

from cdc import values

# Bytes of a packed decimal group of 0..9 digits.
DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# Entries a memo keeps before it starts again: days and times of day are shared by every
# table; DECIMAL and TIME memos are one per column type (at most 128 of them).
_SHARED_LIMIT = 1 << 16
_TYPE_LIMIT = 1 << 13


class Memo(dict[Any, Any]):
    """The results of a pure conversion by its argument, computed on a miss (bounded).

    Formatting a date or a decimal costs far more than a lookup, and the values of a
    column repeat (days, prices, times of day), so the generated code reads `memo[raw]`.
    """

    __slots__ = ("limit", "make")

    def __init__(self, make: Callable[[Any], Any], limit: int = _SHARED_LIMIT) -> None:
        super().__init__()
        self.make = make
        self.limit = limit

    def __missing__(self, key: Any) -> Any:
        if len(self) >= self.limit:
            self.clear()
        value = self[key] = self.make(key)
        return value


def _date_text(packed: int) -> str:
    """DATE's 3 bytes (little-endian): day in bits 0-4, month 5-8, year 9-23."""
    return values.format_date(packed >> 9, packed >> 5 & 15, packed & 31)


def _datetime2_day(packed: int) -> str:
    """The day of a DATETIME2: bits (year * 13 + month) << 5 | day, the sign bit above."""
    year, month = divmod(packed >> 5 & 0x1FFFF, 13)
    return values.format_date(year, month, packed & 31)


def _datetime2_time(packed: int) -> str:
    """'THH:MM:SS' of a DATETIME2: hour << 12 | minute << 6 | second."""
    return f"T{packed >> 12:02d}:{packed >> 6 & 63:02d}:{packed & 63:02d}"


def _epoch_day(days: int) -> str:
    return date.fromordinal(_EPOCH_ORDINAL + days).isoformat()


def _day_second(second: int) -> str:
    return f"T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"


DATES = Memo(_date_text)
DATETIME2_DAYS = Memo(_datetime2_day)
DATETIME2_TIMES = Memo(_datetime2_time)
EPOCH_DAYS = Memo(_epoch_day)
DAY_SECONDS = Memo(_day_second)


@functools.lru_cache(maxsize=64)
def fractions(fsp: int, stored_digits: int) -> tuple[str, ...]:
    """'.ddd' for every stored fraction of `stored_digits` digits, shown with `fsp` digits."""
    return tuple(f".{n:0{stored_digits}d}"[: 1 + fsp] for n in range(10**stored_digits))


@functools.lru_cache(maxsize=128)
def memo_of(lines: tuple[str, ...]) -> Memo:
    """A memo of the conversion `lines` (code from raw bytes `r` to a value `v`)."""
    namespace: dict[str, Any] = {"format_time": values.format_time}
    body = "".join(f"    {line}\n" for line in lines)
    exec(f"def convert(r):\n{body}    return v\n", namespace)
    return Memo(namespace["convert"], _TYPE_LIMIT)


def set_members(values: tuple[str, ...]) -> Callable[[int], list[str]]:
    members = tuple((1 << i, v) for i, v in enumerate(values))

    def render(mask: int) -> list[str]:
        return [v for bit, v in members if mask & bit]

    return render


def decimal_text(raw: bytes, precision: int, scale: int) -> str:
    """A packed binary DECIMAL as text with its scale."""
    memo = memo_of(tuple(decimal_lines(precision, scale)))
    return str(memo[raw[: decimal_size(precision, scale)]])


def decimal_size(precision: int, scale: int) -> int:
    integral, fraction = divmod(precision - scale, 9), divmod(scale, 9)
    return integral[0] * 4 + DIG2BYTES[integral[1]] + fraction[0] * 4 + DIG2BYTES[fraction[1]]


def decimal_lines(precision: int, scale: int) -> list[str]:
    """Code turning the packed DECIMAL bytes `r` into its text `v`.

    The packed form is big-endian groups of nine digits (a shorter group leads the
    integral part and ends the fraction), the sign in the top bit, negatives stored as
    the complement of every byte.
    """
    int_groups, int_lead = divmod(precision - scale, 9)
    frac_groups, frac_tail = divmod(scale, 9)
    size = decimal_size(precision, scale)
    top = 1 << (8 * size - 1)
    lines = [
        "x = int.from_bytes(r, 'big')",
        f"if x & {top:#x}:",
        f"    x ^= {top:#x}; sg = ''",
        "else:",
        f"    x ^= {(1 << 8 * size) - 1 - top:#x}; sg = '-'",
    ]
    tail_bits = DIG2BYTES[frac_tail] * 8
    frac_bits = frac_groups * 32 + tail_bits
    if frac_bits:
        lines.append(f"fr = x & {(1 << frac_bits) - 1:#x}; x >>= {frac_bits}")
    if int_groups:
        terms = [f"(x >> {32 * int_groups}) * {10 ** (9 * int_groups)}"] if int_lead else []
        for k in range(int_groups):
            shift = 32 * (int_groups - 1 - k)
            terms.append(f"(x >> {shift} & 0xffffffff) * {10 ** (9 * (int_groups - 1 - k))}")
        lines.append(f"x = {' + '.join(terms)}")
    if scale:
        if frac_groups:
            terms = []
            for k in range(frac_groups):
                shift = 32 * (frac_groups - 1 - k) + tail_bits
                scale_up = 10 ** (9 * (frac_groups - 1 - k) + frac_tail)
                terms.append(f"(fr >> {shift} & 0xffffffff) * {scale_up}")
            if tail_bits:
                terms.append(f"(fr & {(1 << tail_bits) - 1:#x})")
            lines.append(f"fr = {' + '.join(terms)}")
        lines.append("if sg and not x and not fr: sg = ''")  # MySQL never shows -0.00
        lines.append(f"v = f'{{sg}}{{x}}.{{fr:0{scale}d}}'")
    else:
        lines.append("if sg and not x: sg = ''")
        lines.append("v = f'{sg}{x}'")
    return lines


def base64(value: bytes) -> str:
    return values.format_binary(value, "base64")


def datetime_lines(r: list[str], t: str) -> list[str]:
    """The pre-5.6 DATETIME: the digits YYYYMMDDhhmmss as one integer."""
    return [
        f"d, x = divmod({r[0]}, 1000000)",
        f"{t} = f'{{d // 10000:04d}}-{{d // 100 % 100:02d}}-{{d % 100:02d}}"
        "T{x // 10000:02d}:{x // 100 % 100:02d}:{x % 100:02d}'",
    ]


def time_lines(r: list[str], t: str) -> list[str]:
    """The pre-5.6 TIME: the digits hhmmss as one signed 3-byte integer."""
    return [
        f"x = {r[0]} | {r[1]} << 16",
        "sg = '-' if x < 0 else ''; x = abs(x)",
        f"{t} = f'{{sg}}{{x // 10000:02d}}:{{x // 100 % 100:02d}}:{{x % 100:02d}}'",
    ]


def time2_lines(fsp: int, frac_bytes: int) -> list[str]:
    """Code from a TIME2's raw bytes `r` to its text `v`.

    3 bytes big-endian, offset by 0x800000: hour << 12 | minute << 6 | second, then the
    fraction. A negative value is stored as the offset two's complement of the whole
    (integer and fraction together), so the fraction is taken back before the split
    (MySQL's my_time_packed_from_binary).
    """
    lines = ["x = int.from_bytes(r, 'big')"]
    if frac_bytes == 3:
        lines.append("x -= 0x800000000000")
    elif frac_bytes:
        bits = 8 * frac_bytes
        lines += [
            f"fr = x & {(1 << bits) - 1:#x}; x = (x >> {bits}) - 0x800000",
            "if x < 0 and fr:",
            f"    x += 1; fr -= {1 << bits:#x}",
            f"x = (x << 24) + fr * {10 ** (6 - 2 * frac_bytes)}",
        ]
    else:
        lines.append("x = (x - 0x800000) << 24")
    lines += [
        "sg = x < 0",
        "if sg: x = -x",
        "h = x >> 24",
        f"v = format_time(sg, h >> 12 & 0x3ff, h >> 6 & 63, h & 63, x & 0xffffff, {fsp})",
    ]
    return lines

"""Row-image encodings as MySQL writes them (its own algorithms, independent of cdc's
decoders), shared by the decoder and renderer tests."""

from __future__ import annotations

import math


def fraction_bytes(micro: int, fsp: int) -> bytes:
    if fsp in (1, 2):
        return (micro // 10000).to_bytes(1, "big")
    if fsp in (3, 4):
        return (micro // 100).to_bytes(2, "big")
    if fsp in (5, 6):
        return micro.to_bytes(3, "big")
    return b""


def truncate(micro: int, fsp: int) -> int:
    return micro // 10 ** (6 - fsp) * 10 ** (6 - fsp)


def c_remainder(x: int, m: int) -> int:
    """C's % (the sign of the dividend), which MySQL's packed-time macros use."""
    return int(math.copysign(abs(x) % m, x)) if x else 0


def c_divide(x: int, m: int) -> int:
    return -(-x // m) if x < 0 else x // m


def encode_time2(packed: int, fsp: int) -> bytes:
    """MySQL's my_time_packed_to_binary."""
    int_part = packed >> 24  # arithmetic shift, as MY_PACKED_TIME_GET_INT_PART
    frac = c_remainder(packed, 1 << 24)
    head = (int_part + 0x800000).to_bytes(3, "big")
    if fsp in (1, 2):
        return head + (c_divide(frac, 10000) & 0xFF).to_bytes(1, "big")
    if fsp in (3, 4):
        return head + (c_divide(frac, 100) & 0xFFFF).to_bytes(2, "big")
    if fsp in (5, 6):
        return (packed + 0x800000000000).to_bytes(6, "big")
    return head

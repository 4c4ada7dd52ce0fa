"""Identifiers: a type prefix, 10 characters of millisecond time, 10 random characters.

Time first keeps new rows at the right end of B-tree indexes (PostgreSQL and SQLite alike)
and makes ids sort by creation; the prefix tells a person what an id names (``org_``,
``prj_``, ``key_``, ``grt_``, ``res_``, ``bud_``)."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _base32(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    return f"{prefix}_{_base32(time.time_ns() // 1_000_000, 10)}{_base32(secrets.randbits(50), 10)}"


def random_token(length: int) -> str:
    """Random Crockford base32 text (5 bits per character)."""
    return _base32(secrets.randbits(5 * length), length)

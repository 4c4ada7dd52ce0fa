"""Identifiers: a type prefix, 12 hex digits of millisecond time, 14 random hex digits.

Time first keeps new rows at the right end of B-tree indexes (PostgreSQL and SQLite alike)
and makes ids sort by creation; the prefix tells a person what an id names (``org_``,
``prj_``, ``key_``, ``grt_``, ``res_``, ``bud_``). Hex keeps the text order equal to the
numeric order, and is cheap to produce on the hot path."""

from __future__ import annotations

import os
import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def new_id(prefix: str) -> str:
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{os.urandom(7).hex()}"


def random_token(length: int) -> str:
    """Random Crockford base32 text (5 bits per character)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))

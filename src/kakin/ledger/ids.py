"""Identifiers: a type prefix, 12 hex digits of millisecond time, 14 random hex digits.

Time first keeps new rows at the right end of B-tree indexes (PostgreSQL and SQLite alike)
and makes ids sort by creation; the prefix tells a person what an id names (``org_``,
``prj_``, ``key_``, ``grt_``, ``res_``, ``bud_``). Hex keeps the text order equal to the
numeric order, and is cheap to produce on the hot path: the random digits come from
``os.urandom`` a few hundred ids' worth at a time (one system call per id cost more than the
rest of the id)."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_RANDOM_HEX = 14  # digits per id (7 bytes)
_IDS_PER_DRAW = 256

_random: Iterator[str] = iter(())


def _draw() -> Iterator[str]:
    pool = os.urandom(_RANDOM_HEX // 2 * _IDS_PER_DRAW).hex()
    return iter([pool[i : i + _RANDOM_HEX] for i in range(0, len(pool), _RANDOM_HEX)])


def _forget() -> None:
    """A forked child draws its own: the parent's pool would give both the same ids."""
    global _random
    _random = iter(())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget)


def new_id(prefix: str) -> str:
    global _random
    # next() on a list iterator is atomic under the GIL: two threads never take the same digits.
    try:
        digits = next(_random)
    except StopIteration:
        _random = _draw()
        digits = next(_random)
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{digits}"


def random_token(length: int) -> str:
    """Random Crockford base32 text (5 bits per character)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))

"""Rate limits for the gateway hot path: requests and tokens per minute, per key, per
project and per organisation tier, in process memory or in Redis behind one interface.

    limiter = make_limiter(settings.redis.url, prefix=settings.redis.prefix)
    limits = limits_for_key(key_record, ledger.tier_of(org_id).tier)   # or build_limits(...)
    decision = await limiter.acheck_and_consume(limits, requests=1, tokens=estimate)
    if not decision.allowed:
        raise decision.error()          # 429 "key kk_ab12… exceeded 60 requests/min; retry after 3 s"
    ...                                 # forward, settle
    await limiter.aadjust_tokens(limits, actual_tokens - estimate)

The algorithm (GCRA) and its guarantees are explained in docs/limits.md.
"""

from __future__ import annotations

from kakin.limits.base import RateLimiter
from kakin.limits.memory import MemoryRateLimiter
from kakin.limits.redis_backend import RedisRateLimiter
from kakin.limits.scripts import ScriptConnection
from kakin.limits.subjects import limits_for_key
from kakin.limits.types import (
    ALLOWED,
    UNLIMITED,
    Decision,
    Limit,
    LimitSet,
    RateLimitExceeded,
    build_limits,
    key_label,
)


def make_limiter(
    redis_url: str = "", *, prefix: str = "kakin:", scripts: ScriptConnection | None = None
) -> RateLimiter:
    """Redis when a URL is configured (several gateway processes), else process memory;
    ``scripts``: a script connection to that Redis to share (see RedisRateLimiter)."""
    if redis_url:
        return RedisRateLimiter(redis_url, prefix=prefix, scripts=scripts)
    return MemoryRateLimiter()


__all__ = [
    "ALLOWED",
    "UNLIMITED",
    "Decision",
    "Limit",
    "LimitSet",
    "MemoryRateLimiter",
    "RateLimitExceeded",
    "RateLimiter",
    "RedisRateLimiter",
    "build_limits",
    "key_label",
    "limits_for_key",
    "make_limiter",
]

"""The one interface both rate-limit backends implement.

The gateway holds a ``RateLimiter`` and never knows whether counters live in its own memory
(one process) or in Redis (many processes on many machines). Each method has a synchronous
form and an ``a``-prefixed coroutine form; the in-memory backend's coroutines simply run the
synchronous code, which does no I/O.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from kakin.limits.types import Decision, LimitSet


@runtime_checkable
class RateLimiter(Protocol):
    def check_and_consume(self, limits: LimitSet, *, requests: int = 1, tokens: int = 0) -> Decision:
        """Admit the request if every limit in ``limits`` has room, consuming from all of
        them; otherwise consume nothing and say which limit refused and for how long."""
        ...

    def adjust_tokens(self, limits: LimitSet, delta: int) -> None:
        """After settle: move the token limits by ``actual - estimate`` (negative gives back).
        Request counts are never given back: failed upstream requests still count."""
        ...

    async def acheck_and_consume(
        self, limits: LimitSet, *, requests: int = 1, tokens: int = 0
    ) -> Decision: ...

    async def aadjust_tokens(self, limits: LimitSet, delta: int) -> None: ...

    def close(self) -> None: ...

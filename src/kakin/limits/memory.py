"""In-process rate limiter: GCRA over a dict, for a gateway that runs as one process.

Each limit keeps one float, its *theoretical arrival time* (TAT): the moment its bucket would
be empty again if nothing else arrived. A unit costs ``interval`` seconds of TAT; a request
fits when the new TAT is no more than one window (60 s) ahead of now. A TAT in the past is a
full bucket, so such entries are dropped by an occasional sweep and memory stays bounded by
the number of recently active subjects.

One lock covers a whole check so the limits of a request are tested and consumed together;
the critical section is a handful of dict operations, a few microseconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kakin.limits.types import (
    ALLOWED,
    SLACK_SECONDS,
    WINDOW_SECONDS,
    Decision,
    LimitSet,
    too_big,
    validate_amounts,
)

_SWEEP_EVERY = 4096  # checks between sweeps of idle entries


class MemoryRateLimiter:
    """``RateLimiter`` for one process. ``clock`` returns seconds (monotonic by default)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tats: dict[str, float] = {}
        self._lock = threading.Lock()
        self._ops = 0

    def check_and_consume(self, limits: LimitSet, *, requests: int = 1, tokens: int = 0) -> Decision:
        validate_amounts(requests, tokens)
        if not limits.limits:
            return ALLOWED
        refused = too_big(limits, requests, tokens)
        if refused is not None:
            return refused
        horizon = WINDOW_SECONDS + SLACK_SECONDS
        with self._lock:
            now = self._clock()
            tats = self._tats
            worst = 0.0
            binding = None
            new_tats = []
            for limit in limits.limits:
                amount = requests if limit.kind == "requests" else tokens
                tat = tats.get(limit.storage_key, now)
                if tat < now:
                    tat = now
                new_tat = tat + amount * limit.interval
                wait = new_tat - now - horizon
                if wait > worst:
                    worst, binding = wait, limit
                new_tats.append(new_tat)
            if binding is not None:
                amount = requests if binding.kind == "requests" else tokens
                return Decision(False, worst + SLACK_SECONDS, binding, amount)
            for limit, new_tat in zip(limits.limits, new_tats, strict=True):
                tats[limit.storage_key] = new_tat
            self._ops += 1
            if self._ops >= _SWEEP_EVERY:
                self._sweep(now)
        return ALLOWED

    def adjust_tokens(self, limits: LimitSet, delta: int) -> None:
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"token delta must be an integer, got {delta!r}")
        if delta == 0:
            return
        with self._lock:
            now = self._clock()
            for limit in limits.limits:
                if limit.kind != "tokens":
                    continue
                tat = max(self._tats.get(limit.storage_key, now), now) + delta * limit.interval
                if tat > now:
                    self._tats[limit.storage_key] = tat
                else:
                    self._tats.pop(limit.storage_key, None)

    async def acheck_and_consume(self, limits: LimitSet, *, requests: int = 1, tokens: int = 0) -> Decision:
        return self.check_and_consume(limits, requests=requests, tokens=tokens)

    async def aadjust_tokens(self, limits: LimitSet, delta: int) -> None:
        self.adjust_tokens(limits, delta)

    def close(self) -> None:
        with self._lock:
            self._tats.clear()

    def tracked(self) -> int:
        """How many limits currently hold state (idle ones are swept)."""
        return len(self._tats)

    def _sweep(self, now: float) -> None:
        self._ops = 0
        idle = [key for key, tat in self._tats.items() if tat <= now]
        for key in idle:
            del self._tats[key]

"""Rolling spend per scope, kept in memory and updated in O(1) on every settle.

Two sparse series per scope (a key, a project, an org): spend per minute over the last
``recent_minutes`` and spend per hour over the last ``history_hours``. Only minutes and
hours that had spend are stored, so an idle scope costs nothing and a busy one at most
``recent_minutes + history_hours`` small entries. Running sums are kept alongside so no
question asked of a window ever loops over it.

Amounts are integer picodollars: sums stay exact.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(slots=True)
class _Series:
    """Spend per time bucket (minutes or hours since the epoch), oldest first."""

    span: int  # how many buckets to keep
    buckets: deque[list[int]] = field(default_factory=deque)  # [bucket, pico]
    total: int = 0

    def add(self, bucket: int, pico: int) -> None:
        if self.buckets and self.buckets[-1][0] == bucket:
            self.buckets[-1][1] += pico
        elif self.buckets and self.buckets[-1][0] > bucket:
            self._add_late(bucket, pico)
        else:
            self.buckets.append([bucket, pico])
        self.total += pico
        self.expire(bucket)

    def expire(self, now_bucket: int) -> None:
        oldest = now_bucket - self.span
        while self.buckets and self.buckets[0][0] <= oldest:
            self.total -= self.buckets.popleft()[1]

    def sum_before(self, bucket: int) -> int:
        """Spend in kept buckets strictly before ``bucket`` (complete ones)."""
        total = self.total
        for entry in reversed(self.buckets):
            if entry[0] < bucket:
                break
            total -= entry[1]
        return total

    def _add_late(self, bucket: int, pico: int) -> None:
        # A settle that arrives out of order (a long stream finishing late) is rare.
        for entry in self.buckets:
            if entry[0] == bucket:
                entry[1] += pico
                return
        self.buckets.append([bucket, pico])
        self.buckets = deque(sorted(self.buckets))


@dataclass(slots=True)
class ScopeSpend:
    """The recent minute-by-minute spend and the hourly history of one scope."""

    recent: _Series
    history: _Series
    first_hour: int

    def hours_of_history(self, now_hour: int) -> int:
        """Complete hours since this scope was first seen (capped by the kept span)."""
        return min(self.history.span - 1, now_hour - self.first_hour)


class SpendWindows:
    """Spend windows for many scopes. Scope names are free-form, e.g. ``key:key_123``."""

    def __init__(self, recent_minutes: int = 15, history_hours: int = 168) -> None:
        if recent_minutes <= 0 or history_hours <= 0:
            raise ValueError("spend windows need positive spans")
        self.recent_minutes = recent_minutes
        self.history_hours = history_hours
        self._scopes: dict[str, ScopeSpend] = {}

    def add(self, scope: str, at: datetime, pico: int) -> ScopeSpend:
        seconds = int(at.timestamp())
        minute, hour = seconds // 60, seconds // 3600
        spend = self._scopes.get(scope)
        if spend is None:
            # one more hourly bucket than the history: the current, incomplete hour
            spend = ScopeSpend(_Series(self.recent_minutes), _Series(self.history_hours + 1), hour)
            self._scopes[scope] = spend
        elif hour < spend.first_hour:
            spend.first_hour = hour
        spend.recent.add(minute, pico)
        spend.history.add(hour, pico)
        return spend

    def get(self, scope: str) -> ScopeSpend | None:
        return self._scopes.get(scope)

    def recent_pico(self, scope: str, at: datetime) -> int:
        spend = self._scopes.get(scope)
        if spend is None:
            return 0
        spend.recent.expire(int(at.timestamp()) // 60)
        return spend.recent.total

    def last_hours_pico(self, scope: str, at: datetime, hours: int) -> int:
        """Spend in the ``hours`` hours up to ``at`` (its hour included, later ones not)."""
        spend = self._scopes.get(scope)
        if spend is None:
            return 0
        now_hour = int(at.timestamp()) // 3600
        spend.history.expire(now_hour)
        return sum(pico for bucket, pico in spend.history.buckets if now_hour - hours < bucket <= now_hour)

    def forget_idle(self, at: datetime) -> int:
        """Drop scopes with no spend in the kept history; returns how many were dropped."""
        now_hour = int(at.timestamp()) // 3600
        idle = []
        for scope, spend in self._scopes.items():
            spend.history.expire(now_hour)
            if not spend.history.buckets:
                idle.append(scope)
        for scope in idle:
            del self._scopes[scope]
        return len(idle)

    def __len__(self) -> int:
        return len(self._scopes)

"""Runaway spend: a scope suddenly spending far faster than it usually does.

The two stories this catches: a debug loop left running over a weekend (tens of dollars an
hour from a key that normally spends a few dollars a day) and a leaked key flooded overnight.

Rule, evaluated on every settle of the scope (all integer arithmetic):

* *recent rate*  = spend in the last ``window_minutes`` ÷ ``window_minutes``;
* *baseline*     = spend in the complete hours of the last ``baseline_hours`` ÷ those hours
  (only hours since the scope was first seen count, so a young key is judged on its own
  short history; a scope with no complete hour yet has baseline 0);
* fire when recent spend ≥ ``floor_usd`` **and** recent rate ≥ ``factor`` × baseline.

The floor keeps small absolute amounts quiet (a fresh key's first requests, a hobby project
waking up); the factor keeps busy-but-normal days quiet: a 7-day baseline already contains
the usual office-hours peaks, which sit 3–5× above the weekly average rate, and ``factor``
(20 by default) is well above that. A finding fires at most once per scope per UTC day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from kakin.alerts.windows import SpendWindows
from kakin.errors import InvalidInput
from kakin.money import from_pico, to_pico

_MICRO = Decimal("0.000001")  # baselines are statistics: a millionth of a dollar is plenty


@dataclass(frozen=True, slots=True)
class RunawayParams:
    window_minutes: int = 15
    baseline_hours: int = 168
    factor: Decimal = Decimal(20)
    floor_usd: Decimal = Decimal(5)

    def __post_init__(self) -> None:
        if not 1 <= self.window_minutes <= 24 * 60:
            raise InvalidInput(f"runaway window_minutes must be 1..1440, got {self.window_minutes}")
        if not 1 <= self.baseline_hours <= 24 * 31:
            raise InvalidInput(f"runaway baseline_hours must be 1..744, got {self.baseline_hours}")
        if self.factor <= 1:
            raise InvalidInput(f"runaway factor must be above 1 (times the baseline rate), got {self.factor}")
        if self.floor_usd < 0:
            raise InvalidInput(f"runaway floor_usd must not be negative, got {self.floor_usd}")


@dataclass(frozen=True, slots=True)
class RunawayFinding:
    scope: str
    recent: Decimal  # USD in the window
    window_minutes: int
    baseline_per_hour: Decimal  # USD per hour; 0 when the scope has no history yet
    history_hours: int
    ratio: Decimal | None  # recent rate ÷ baseline rate; None when the baseline is 0

    @property
    def recent_per_hour(self) -> Decimal:
        return self.recent * 60 / self.window_minutes


class RunawayDetector:
    """Feeds settles into per-scope spend windows and reports runaway scopes."""

    def __init__(self, params: RunawayParams | None = None) -> None:
        self.params = params or RunawayParams()
        self.windows = SpendWindows(self.params.window_minutes, self.params.baseline_hours)
        self._factor = Fraction(self.params.factor)
        self._floor = to_pico(self.params.floor_usd)

    def observe(self, scope: str, at: datetime, cost: Decimal | int) -> RunawayFinding | None:
        """Record spend (USD, or picodollars as ``int``) and check the scope."""
        pico = cost if isinstance(cost, int) else to_pico(cost)
        spend = self.windows.add(scope, at, pico)
        recent = spend.recent.total
        if recent < self._floor or recent == 0:
            return None
        now_hour = int(at.timestamp()) // 3600
        hours = spend.hours_of_history(now_hour)
        base = spend.history.sum_before(now_hour) if hours > 0 else 0
        window = self.params.window_minutes
        # recent / window  ≥  factor × base / (hours × 60)
        if base > 0 and recent * hours * 60 < self._factor * base * window:
            return None
        baseline_per_hour = (from_pico(base) / hours).quantize(_MICRO) if hours and base else Decimal(0)
        ratio = None
        if base:
            ratio = (Decimal(recent) * hours * 60 / (Decimal(base) * window)).quantize(Decimal("0.1"))
        return RunawayFinding(scope, from_pico(recent), window, baseline_per_hour, hours, ratio)

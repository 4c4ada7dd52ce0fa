"""Billing cycles: calendar months in the organisation's timezone, named ``YYYY-MM``.

A cycle is ``[start, end)`` in UTC, from the local midnight of the 1st to that of the next
1st (:func:`kakin.ledger.periods.period_bounds`, the rule monthly budgets use), so a Tokyo
organisation's March runs from 2026-02-28 15:00 UTC to 2026-03-31 15:00 UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from kakin.errors import InvalidInput
from kakin.ledger.periods import period_bounds

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True, order=True)
class Cycle:
    month: str  # YYYY-MM
    start: datetime  # UTC
    end: datetime  # UTC

    def closes_at(self, grace: timedelta) -> datetime:
        """When the draft stops absorbing late charges and the cycle is issued by itself."""
        return self.end + grace

    def following(self, timezone: str) -> Cycle:
        return cycle_at(timezone, self.end)

    def previous(self, timezone: str) -> Cycle:
        return cycle_at(timezone, self.start - timedelta(microseconds=1))


def cycle_at(timezone: str, at: datetime) -> Cycle:
    """The cycle holding the instant ``at``."""
    start, end = period_bounds("month", timezone, at)
    assert end is not None
    local = start.astimezone(ZoneInfo(timezone))
    return Cycle(f"{local.year:04d}-{local.month:02d}", start, end)


def cycle_of(timezone: str, month: str) -> Cycle:
    """The cycle named ``month`` (``YYYY-MM``)."""
    found = _MONTH.match(month.strip()) if isinstance(month, str) else None
    if found is None or not 1 <= int(found[2]) <= 12 or int(found[1]) < 1970:
        raise InvalidInput(f"a billing month is written YYYY-MM, e.g. 2026-03; got {month!r}")
    midday = datetime(int(found[1]), int(found[2]), 15, 12, tzinfo=ZoneInfo(timezone))
    return cycle_at(timezone, midday)


def cycles_between(timezone: str, first: Cycle, last: Cycle) -> list[Cycle]:
    """Every cycle from ``first`` to ``last``, both included."""
    found = []
    cycle = first
    while cycle.start <= last.start:
        found.append(cycle)
        cycle = cycle.following(timezone)
    return found

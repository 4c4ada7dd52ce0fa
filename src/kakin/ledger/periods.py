"""Budget periods: calendar days and months in the organisation's timezone, or all time.

A period is ``[start, end)`` in UTC. Boundaries are computed from the local calendar, so a
month budget for an Asia/Tokyo organisation resets at 00:00 JST on the 1st (15:00 UTC the day
before), and a day across a DST change is 23 or 25 hours long.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # start of the "total" period


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def period_bounds(period: str, timezone: str, at: datetime) -> tuple[datetime, datetime | None]:
    """The period of kind ``period`` (day | month | total) that contains ``at``."""
    if period == "total":
        return EPOCH, None
    zone = ZoneInfo(timezone)
    local = at.astimezone(zone).date()
    if period == "day":
        return _local_midnight(local, zone), _local_midnight(local + timedelta(days=1), zone)
    first = local.replace(day=1)
    following = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return _local_midnight(first, zone), _local_midnight(following, zone)


def period_start(period: str, timezone: str, at: datetime) -> datetime:
    return period_bounds(period, timezone, at)[0]

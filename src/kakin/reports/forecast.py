"""The month-end forecast on an organisation's recorded days (or one project's).

The projection is :func:`kakin.estimate.forecast_month`; this reads what it needs, the spend
per local day, from the rollups through :meth:`Reports.spend`.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from kakin.estimate import MonthForecast, forecast_month
from kakin.reports.queries import Reports


def month_forecast(
    reports: Reports,
    org: str,
    *,
    project: str | None = None,
    as_of: date | None = None,
    window: int = 28,
) -> MonthForecast:
    """Month-end forecast as of ``as_of`` (default: today in the organisation's zone), learnt
    from the ``window`` days before it; days without spend count as zero, days before the
    organisation existed are left out."""
    record = reports.ledger.get_org(org)
    zone = ZoneInfo(record.timezone)
    end = as_of or reports.ledger.now().astimezone(zone).date()
    first = min(end.replace(day=1), end - timedelta(days=window - 1))
    first = min(max(first, record.created_at.astimezone(zone).date()), end)
    report = reports.spend(record.id, by="day", start=first, end=end + timedelta(days=1), project=project)
    daily = report.daily()
    daily.setdefault(first, Decimal(0))  # the window starts here, spent or not
    return forecast_month(daily, as_of=end, window_days=window)

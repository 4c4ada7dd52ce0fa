"""Month-end forecast from what has been spent so far.

Input: daily spend (date → USD), typically from the ledger. Output: the month's projected
total with a low–high range. The method, in order:

1. **Window.** The last ``window_days`` days up to ``as_of`` (default 28, four of each
   weekday; earlier months count too). Days inside the window with no entry spent nothing.
   ``as_of`` itself is treated as a complete day.
2. **Pattern.** Traffic differs by weekday, so the remaining days are projected with the
   mean of their kind: *per weekday* when every weekday has at least two observations,
   else *weekday / weekend* when each has at least two, else one *flat* mean.
   The burn rate reported is the plain mean daily spend of the window.
3. **Projection.** ``spent so far this month + Σ over the remaining days of their mean``.
4. **Range.** ``s`` is the standard deviation of the days around their pattern mean (the
   day-to-day variability the pattern does not explain, with the degrees of freedom the
   means used taken out). The total of ``m`` remaining days then varies by about
   ``s × √(m + m²/n)`` (``n`` observed days; the second term is the uncertainty of the means
   themselves). low / high are the projection ∓ 1.2816 of that: a 10th–90th percentile
   range if days vary independently and roughly normally. Low is never below what has
   already been spent.

Pure: no I/O; a dashboard feeds it ledger data, the CLI a CSV.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, localcontext
from typing import Final, Literal

from kakin.errors import InvalidInput
from kakin.estimate.inputs import DAILY_SPEND, ZERO, number, settle
from kakin.money import EXACT

Z_80: Final = Decimal("1.2816")
"""Standard normal quantile of 0.90: low and high bound an 80 % range."""
MIN_WINDOW: Final = 7
MAX_WINDOW: Final = 366
WEEKDAY_NAMES: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

Pattern = Literal["per-weekday", "weekday/weekend", "flat"]


@dataclass(frozen=True, slots=True)
class MonthForecast:
    month: date
    """First day of the forecast month."""
    as_of: date
    days_in_month: int
    days_elapsed: int
    days_remaining: int
    spent_to_date: Decimal
    burn_rate: Decimal
    """Mean daily spend over the window."""
    burn_rate_7d: Decimal
    """Mean daily spend over the last 7 days of the window."""
    observed_days: int
    pattern: Pattern
    day_means: Mapping[int, Decimal]
    """Mean spend by weekday (0 = Monday) as the pattern projects it."""
    daily_stdev: Decimal
    remaining_projection: Decimal
    projected: Decimal
    low: Decimal
    high: Decimal


def forecast_month(
    daily: Mapping[date, object],
    *,
    as_of: date | None = None,
    window_days: int = 28,
) -> MonthForecast:
    """Project month-end spend for the month of ``as_of`` (default: the last day with data)."""
    if not daily:
        raise InvalidInput("no daily spend to forecast from; give at least one day")
    if not MIN_WINDOW <= window_days <= MAX_WINDOW:
        raise InvalidInput(f"window must be {MIN_WINDOW} to {MAX_WINDOW} days, got {window_days}")
    spend: dict[date, Decimal] = {}
    for day, amount in daily.items():
        if not isinstance(day, date):
            raise InvalidInput(f"daily spend keys must be dates, got {day!r}")
        spend[day] = number(amount, f"spend on {day.isoformat()}", DAILY_SPEND)
    end = as_of or max(spend)
    first_known = min(spend)
    if end < first_known:
        raise InvalidInput(
            f"as-of date {end.isoformat()} is before the first day of data ({first_known.isoformat()})"
        )
    start = max(first_known, end - timedelta(days=window_days - 1))
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    values = [spend.get(day, ZERO) for day in days]

    month_start = end.replace(day=1)
    length = calendar.monthrange(end.year, end.month)[1]
    remaining = [end + timedelta(days=i) for i in range(1, length - end.day + 1)]

    with localcontext(EXACT):
        spent = sum((amount for day, amount in spend.items() if month_start <= day <= end), ZERO)
        burn = sum(values, ZERO) / len(values)
        last7 = values[-7:]
        burn7 = sum(last7, ZERO) / len(last7)
        pattern, groups = _pattern(days)
        means = {
            key: _mean([v for d, v in zip(days, values, strict=True) if _key(pattern, d) == key])
            for key in groups
        }
        by_weekday = {w: means[_key(pattern, _any_day(w))] for w in range(7)}
        residuals = [v - means[_key(pattern, d)] for d, v in zip(days, values, strict=True)]
        freedom = len(values) - len(groups)
        stdev = (sum((r * r for r in residuals), ZERO) / freedom).sqrt() if freedom > 0 else ZERO
        rest = sum((by_weekday[d.weekday()] for d in remaining), ZERO)
        projected = spent + rest
        m, n = Decimal(len(remaining)), Decimal(len(values))
        spread = Z_80 * stdev * (m + m * m / n).sqrt()
    return MonthForecast(
        month=month_start,
        as_of=end,
        days_in_month=length,
        days_elapsed=end.day,
        days_remaining=len(remaining),
        spent_to_date=spent,
        burn_rate=settle(burn),
        burn_rate_7d=settle(burn7),
        observed_days=len(values),
        pattern=pattern,
        day_means={w: settle(v) for w, v in by_weekday.items()},
        daily_stdev=settle(stdev),
        remaining_projection=settle(rest),
        projected=settle(projected),
        low=settle(max(spent, projected - spread)),
        high=settle(projected + spread),
    )


def _pattern(days: list[date]) -> tuple[Pattern, list[str]]:
    per_weekday = [sum(1 for d in days if d.weekday() == w) for w in range(7)]
    if min(per_weekday) >= 2:
        return "per-weekday", [str(w) for w in range(7)]
    weekend = sum(per_weekday[5:])
    if weekend >= 2 and len(days) - weekend >= 2:
        return "weekday/weekend", ["weekday", "weekend"]
    return "flat", ["all"]


def _key(pattern: Pattern, day: date) -> str:
    if pattern == "per-weekday":
        return str(day.weekday())
    if pattern == "weekday/weekend":
        return "weekend" if day.weekday() >= 5 else "weekday"
    return "all"


def _any_day(weekday: int) -> date:
    return date(2024, 1, 1) + timedelta(days=weekday)  # 2024-01-01 was a Monday


def _mean(values: list[Decimal]) -> Decimal:
    return sum(values, ZERO) / len(values)


def parse_daily_csv(text: str, *, where: str = "CSV") -> dict[date, Decimal]:
    """``date,spend`` rows (ISO dates, USD as decimals; an optional header line). A date that
    appears twice is summed (several exports of the same day)."""
    import csv

    found: dict[date, Decimal] = {}
    rows = [row for row in csv.reader(text.splitlines()) if any(cell.strip() for cell in row)]
    for number_, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise InvalidInput(f"{where} line {number_}: expected 'date,spend', got {','.join(row)!r}")
        raw_day, raw_amount = row[0].strip(), row[1].strip().lstrip("$")
        try:
            day = date.fromisoformat(raw_day)
        except ValueError:
            if number_ == 1:  # a header line
                continue
            raise InvalidInput(f"{where} line {number_}: {raw_day!r} is not a date (YYYY-MM-DD)") from None
        amount = number(raw_amount, f"{where} line {number_} spend", DAILY_SPEND)
        with localcontext(EXACT):
            found[day] = found.get(day, ZERO) + amount
    if not found:
        raise InvalidInput(f"{where} has no 'date,spend' rows")
    return found

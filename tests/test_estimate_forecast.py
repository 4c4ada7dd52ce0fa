"""Month-end forecast on synthetic series whose answer is known."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from kakin.errors import InvalidInput
from kakin.estimate import forecast_month, parse_daily_csv


def series(start: date, end: date, spend_on: object) -> dict[date, Decimal]:
    days = (end - start).days + 1
    return {start + timedelta(i): spend_on(start + timedelta(i)) for i in range(days)}  # type: ignore[operator]


def weekday_weekend(day: date) -> Decimal:
    return Decimal(10) if day.weekday() < 5 else Decimal(2)


def test_weekday_pattern_projects_the_rest_of_the_month_exactly() -> None:
    # $10 on weekdays, $2 on weekends, from Monday 5 May to Sunday 15 June 2025.
    daily = series(date(2025, 5, 5), date(2025, 6, 15), weekday_weekend)
    result = forecast_month(daily)
    assert result.as_of == date(2025, 6, 15) and result.month == date(2025, 6, 1)
    assert result.pattern == "per-weekday"
    # June 1–15: Sun 1 ($2) + two working weeks ($100) + two weekends ($8) = $110
    assert result.spent_to_date == Decimal(110)
    # June 16–30: 11 weekdays ($110) + 4 weekend days ($8) = $118
    assert result.days_remaining == 15
    assert result.remaining_projection == Decimal(118)
    assert result.projected == Decimal(228)
    # no day-to-day variability around the pattern: the range closes on the projection
    assert result.daily_stdev == 0
    assert result.low == result.high == Decimal(228)
    # the plain burn rate over the 28-day window: 20 weekdays × 10 + 8 weekend days × 2
    assert result.burn_rate == Decimal("7.714285714286")  # 208 / 28, to the picodollar
    assert result.day_means[0] == Decimal(10) and result.day_means[6] == Decimal(2)


def test_per_weekday_means_differ_by_day() -> None:
    # Monday is the heavy batch day ($40), other weekdays $10, weekends $0.
    def spend(day: date) -> Decimal:
        return (
            Decimal(40) if day.weekday() == 0 else weekday_weekend(day) if day.weekday() < 5 else Decimal(0)
        )

    daily = series(date(2025, 5, 5), date(2025, 6, 15), spend)
    result = forecast_month(daily)
    # June 16–30 holds three Mondays (16, 23, 30), 8 other weekdays and 4 weekend days
    assert result.remaining_projection == 3 * 40 + 8 * 10
    # a flat rate would have projected 15 days × the mean instead
    assert result.remaining_projection != result.burn_rate * 15


def test_variability_gives_a_range_around_the_projection() -> None:
    # weekdays alternate $9 / $11 (mean 10), weekends $2: s comes only from that noise.
    def spend(day: date) -> Decimal:
        if day.weekday() >= 5:
            return Decimal(2)
        return Decimal(9) if day.toordinal() % 2 else Decimal(11)

    daily = series(date(2025, 5, 19), date(2025, 6, 15), spend)  # exactly 28 days
    result = forecast_month(daily)
    assert result.low < result.projected < result.high
    assert result.projected - result.low == result.high - result.projected
    # the spread follows the documented formula: 1.2816 × s × √(m + m²/n)
    m, n = Decimal(result.days_remaining), Decimal(result.observed_days)
    spread = Decimal("1.2816") * result.daily_stdev * (m + m * m / n).sqrt()
    assert abs((result.high - result.projected) - spread) < Decimal("1e-9")
    assert result.daily_stdev > 0


def test_low_is_never_below_what_is_already_spent() -> None:
    daily = {date(2025, 6, 1) + timedelta(i): Decimal(v) for i, v in enumerate([100, 0, 0, 0, 100, 0, 0, 0])}
    result = forecast_month(daily)
    assert result.low >= result.spent_to_date == Decimal(200)


def test_weekday_weekend_pattern_when_too_few_days_for_each_weekday() -> None:
    daily = series(date(2025, 6, 2), date(2025, 6, 11), weekday_weekend)  # 10 days
    result = forecast_month(daily)
    assert result.pattern == "weekday/weekend"
    assert result.day_means[2] == Decimal(10) and result.day_means[5] == Decimal(2)


def test_flat_pattern_with_a_few_weekdays_only() -> None:
    daily = {date(2025, 6, 2): Decimal(3), date(2025, 6, 3): Decimal(5), date(2025, 6, 4): Decimal(4)}
    result = forecast_month(daily)
    assert result.pattern == "flat"
    assert result.remaining_projection == Decimal(4) * 26
    assert result.projected == Decimal(12 + 104)


def test_missing_days_inside_the_window_count_as_no_spend() -> None:
    daily = {date(2025, 6, 2): Decimal(7), date(2025, 6, 4): Decimal(7)}
    result = forecast_month(daily)
    assert result.observed_days == 3
    assert result.burn_rate == Decimal("4.666666666667")  # 14 / 3


def test_as_of_ignores_later_data_and_the_last_day_projects_nothing() -> None:
    daily = series(date(2025, 5, 1), date(2025, 6, 30), weekday_weekend)
    early = forecast_month(daily, as_of=date(2025, 5, 31))
    assert early.days_remaining == 0
    assert early.projected == early.spent_to_date == sum(v for d, v in daily.items() if d.month == 5)


def test_forecast_inputs_are_checked() -> None:
    with pytest.raises(InvalidInput, match="no daily spend"):
        forecast_month({})
    with pytest.raises(InvalidInput, match="must be at least 0"):
        forecast_month({date(2025, 6, 1): Decimal(-1)})
    with pytest.raises(InvalidInput, match="window must be 7 to 366 days"):
        forecast_month({date(2025, 6, 1): Decimal(1)}, window_days=2)
    with pytest.raises(InvalidInput, match="before the first day of data"):
        forecast_month({date(2025, 6, 10): Decimal(1)}, as_of=date(2025, 6, 1))


def test_csv_with_header_duplicates_and_dollar_signs() -> None:
    text = "date,spend\n2025-06-01,$1.50\n2025-06-01,0.25\n\n2025-06-02,2\n"
    assert parse_daily_csv(text) == {date(2025, 6, 1): Decimal("1.75"), date(2025, 6, 2): Decimal(2)}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("2025-06-01,1\nyesterday,2\n", "line 2: 'yesterday' is not a date"),
        ("2025-06-01\n", "line 1: expected 'date,spend'"),
        ("2025-06-01,lots\n", "line 1 spend must be a number"),
        ("2025-06-01,-4\n", "line 1 spend must be at least 0"),
        ("date,spend\n", "has no 'date,spend' rows"),
    ],
)
def test_csv_errors_name_the_line(text: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_daily_csv(text, where="spend.csv")
    assert fragment in str(caught.value)

"""Runaway detection on synthetic spend series: a weekend debug loop and a leaked-key flood
fire; an ordinary busy week (office-hours peaks, a busier-than-usual Monday) does not."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from kakin.alerts.runaway import RunawayDetector, RunawayParams
from kakin.errors import InvalidInput

MONDAY = datetime(2025, 6, 2, tzinfo=UTC)


def office_day(detector, day: datetime, daily_usd: Decimal, rng: random.Random, scope="key:k1"):
    """One weekday: requests every ~30 s from 09:00 to 18:00, busiest around 11:00 and 15:00
    (peaks about 4x the day's average), costs jittered per request. Returns findings."""
    findings = []
    shape = {9: 1, 10: 3, 11: 6, 12: 2, 13: 3, 14: 5, 15: 6, 16: 3, 17: 1}  # relative load per hour
    per_unit = daily_usd / sum(shape.values())
    for hour, load in shape.items():
        requests = 120 * load // 3 + 1
        hour_usd = per_unit * load
        for i in range(requests):
            at = day + timedelta(hours=hour, seconds=3600 * i // requests)
            cost = (hour_usd / requests * Decimal(rng.uniform(0.5, 1.5))).quantize(Decimal("0.000001"))
            finding = detector.observe(scope, at, cost)
            if finding:
                findings.append((at, finding))
    return findings


def normal_week(detector, start: datetime, daily_usd: Decimal, rng: random.Random):
    findings = []
    for day in range(5):
        findings += office_day(detector, start + timedelta(days=day), daily_usd, rng)
    return findings


def test_a_busy_but_normal_fortnight_never_fires():
    rng = random.Random(7)
    detector = RunawayDetector()
    # $200 a day: the busiest quarter-hours spend ~$16, well past the $5 floor, so only the
    # factor keeps them quiet (their rate peaks near 10x the weekly average)
    findings = normal_week(detector, MONDAY, Decimal(200), rng)
    # the second week is 50 % busier on Monday, after a quiet weekend
    findings += office_day(detector, MONDAY + timedelta(days=7), Decimal(300), rng)
    findings += normal_week(detector, MONDAY + timedelta(days=8), Decimal(200), rng)
    assert findings == []


def test_weekend_debug_loop_fires_within_the_window():
    """The seed's story: a debug loop left running Friday night bills ¥500,000 (~$3,300) by
    Monday, i.e. ~$70/hour from a key that spends ~$20 a weekday."""
    rng = random.Random(1)
    detector = RunawayDetector()
    assert normal_week(detector, MONDAY, Decimal(20), rng) == []
    loop_start = MONDAY + timedelta(days=4, hours=19)
    fired = None
    for i in range(6 * 60 * 48):  # a call every 10 s for the whole weekend
        at = loop_start + timedelta(seconds=10 * i)
        finding = detector.observe("key:k1", at, Decimal("0.194"))
        if finding:
            fired = (at, finding)
            break
    assert fired is not None
    at, finding = fired
    assert at - loop_start <= timedelta(minutes=15)
    assert finding.recent >= Decimal(5)
    assert finding.ratio is not None and finding.ratio >= 20
    assert finding.baseline_per_hour < Decimal(1)


def test_leaked_key_flood_on_a_quiet_night_fires():
    rng = random.Random(3)
    detector = RunawayDetector()
    normal_week(detector, MONDAY, Decimal(30), rng)
    night = MONDAY + timedelta(days=5, hours=1)
    first = None
    for i in range(20_000):  # many parallel callers: a request every 0.2 s at ~$0.02
        finding = detector.observe("key:k1", night + timedelta(seconds=i / 5), Decimal("0.02"))
        if finding:
            first = night + timedelta(seconds=i / 5)
            break
    assert first is not None and first - night < timedelta(minutes=5)


def test_a_new_key_is_judged_by_the_floor_alone():
    detector = RunawayDetector(RunawayParams(floor_usd=Decimal(5)))
    at = MONDAY + timedelta(hours=10)
    assert detector.observe("key:new", at, Decimal("4.99")) is None
    finding = detector.observe("key:new", at + timedelta(minutes=1), Decimal("0.02"))
    assert finding is not None
    assert finding.ratio is None and finding.baseline_per_hour == 0
    assert finding.recent == Decimal("5.01")


def test_scopes_are_independent_and_the_window_slides():
    detector = RunawayDetector(RunawayParams(window_minutes=10, floor_usd=Decimal(1)))
    at = MONDAY
    assert detector.observe("key:a", at, Decimal("0.9")) is None
    assert detector.observe("key:b", at, Decimal("0.9")) is None
    # 11 minutes later the first spend has left key a's window
    assert detector.observe("key:a", at + timedelta(minutes=11), Decimal("0.2")) is None
    assert detector.observe("key:b", at + timedelta(minutes=5), Decimal("0.2")) is not None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("factor", Decimal(1), "factor must be above 1"),
        ("window_minutes", 0, "window_minutes must be 1..1440"),
        ("baseline_hours", 10_000, "baseline_hours must be 1..744"),
        ("floor_usd", Decimal(-1), "floor_usd must not be negative"),
    ],
)
def test_bad_parameters_say_which_and_why(field, value, message):
    with pytest.raises(InvalidInput, match=message):
        RunawayParams(**{field: value})

"""GCRA behaviour over time, on the in-memory backend with a controlled clock."""

from __future__ import annotations

import pytest

from kakin.errors import InvalidInput
from kakin.limits import MemoryRateLimiter, build_limits


def test_full_minute_burst_then_one_per_interval(clock):
    limiter = MemoryRateLimiter(clock)
    limits = build_limits(key_id="k1", key_prefix="kk_ab12", key_rpm=60)
    assert all(limiter.check_and_consume(limits).allowed for _ in range(60))
    refused = limiter.check_and_consume(limits)
    assert not refused.allowed
    assert refused.retry_after_seconds == pytest.approx(1.0, abs=0.01)
    assert refused.message == "key kk_ab12… exceeded 60 requests/min; retry after 1 s"
    clock.advance(0.5)
    assert not limiter.check_and_consume(limits).allowed
    clock.advance(0.5)
    assert limiter.check_and_consume(limits).allowed
    assert not limiter.check_and_consume(limits).allowed


def test_retry_after_is_when_the_same_request_passes(clock):
    limiter = MemoryRateLimiter(clock)
    limits = build_limits(key_id="k1", key_tpm=6000)
    assert limiter.check_and_consume(limits, tokens=6000).allowed
    refused = limiter.check_and_consume(limits, tokens=3000)
    assert refused.retry_after_seconds == pytest.approx(30.0, abs=0.01)
    assert refused.retry_after_header == "30"
    clock.advance(29.9)
    assert not limiter.check_and_consume(limits, tokens=3000).allowed
    clock.advance(0.1)
    assert limiter.check_and_consume(limits, tokens=3000).allowed


def test_idle_minute_refills_completely_but_never_more(clock):
    limiter = MemoryRateLimiter(clock)
    limits = build_limits(key_id="k1", key_rpm=10)
    for _ in range(10):
        limiter.check_and_consume(limits)
    clock.advance(3600)
    allowed = sum(limiter.check_and_consume(limits).allowed for _ in range(30))
    assert allowed == 10


def test_any_sixty_seconds_admit_at_most_limit_plus_refill(clock):
    """Steady hammering: over any 60 s the count is bounded by the burst plus the refill."""
    limiter = MemoryRateLimiter(clock)
    limits = build_limits(key_id="k1", key_rpm=30)
    admitted_at = []
    for _ in range(3000):  # one attempt every 0.1 s for 300 s
        if limiter.check_and_consume(limits).allowed:
            admitted_at.append(clock.now)
        clock.advance(0.1)
    for i, start in enumerate(admitted_at):
        in_window = sum(1 for t in admitted_at[i:] if t < start + 60)
        assert in_window <= 60  # burst of 30 + 30 refilled during the minute
    # long run average is the limit
    assert len(admitted_at) == pytest.approx(30 + 30 * 300 / 60, abs=2)


def test_token_refund_and_overrun_after_settle(clock):
    limiter = MemoryRateLimiter(clock)
    limits = build_limits(key_id="k1", key_rpm=1000, key_tpm=1000)
    assert limiter.check_and_consume(limits, tokens=800).allowed  # estimate
    assert not limiter.check_and_consume(limits, tokens=300).allowed
    limiter.adjust_tokens(limits, 100 - 800)  # actual use was 100 tokens
    assert limiter.check_and_consume(limits, tokens=900).allowed
    limiter.adjust_tokens(limits, 500)  # that one used 1400 instead of 900
    refused = limiter.check_and_consume(limits, tokens=1)
    assert not refused.allowed
    assert refused.limit.kind == "tokens"
    assert refused.retry_after_seconds == pytest.approx(30.06, abs=0.05)


def test_refund_never_banks_more_than_a_full_bucket(clock):
    limiter = MemoryRateLimiter(clock)
    limits = build_limits(key_id="k1", key_tpm=1000)
    limiter.adjust_tokens(limits, -50_000)
    assert limiter.check_and_consume(limits, tokens=1000).allowed
    assert not limiter.check_and_consume(limits, tokens=10).allowed


def test_idle_subjects_are_forgotten(clock):
    limiter = MemoryRateLimiter(clock)
    for i in range(5000):
        limiter.check_and_consume(build_limits(key_id=f"k{i}", key_rpm=100))
        clock.advance(0.01)
    clock.advance(120)
    for _ in range(5000):
        limiter.check_and_consume(build_limits(key_id="busy", key_rpm=10**6))
    assert limiter.tracked() < 100


def test_bad_amounts_are_refused_before_anything_is_consumed(clock):
    limiter = MemoryRateLimiter(clock)
    limits = build_limits(key_id="k1", key_rpm=1)
    with pytest.raises(InvalidInput, match="tokens must be a non-negative integer"):
        limiter.check_and_consume(limits, tokens=-5)
    with pytest.raises(InvalidInput, match="requests must be a non-negative integer"):
        limiter.check_and_consume(limits, requests=1.5)
    assert limiter.check_and_consume(limits).allowed


def test_bad_limits_are_refused_with_the_subject_named():
    with pytest.raises(InvalidInput, match=r"key 'k1': requests/min limit must be a positive integer"):
        build_limits(key_id="k1", key_rpm=-3)
    with pytest.raises(InvalidInput, match="without the project id"):
        build_limits(key_id="k1", project_rpm=5)
    assert not build_limits(key_id="k1", key_rpm=None, key_tpm=0)

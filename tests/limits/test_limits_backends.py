"""Behaviour shared by both backends (memory and real Redis)."""

from __future__ import annotations

import time

import pytest

from kakin.limits import RateLimitExceeded, build_limits


def test_burst_up_to_the_limit_then_429_naming_the_key(limiter):
    limits = build_limits(key_id="k1", key_prefix="kk_ab12", key_rpm=5)
    assert [limiter.check_and_consume(limits).allowed for _ in range(7)] == [True] * 5 + [False] * 2
    refused = limiter.check_and_consume(limits)
    assert refused.limit.scope == "key"
    assert refused.retry_after_seconds == pytest.approx(12.0, abs=0.05)
    assert refused.message == "key kk_ab12… exceeded 5 requests/min; retry after 12 s"
    error = refused.error()
    assert isinstance(error, RateLimitExceeded)
    assert error.status == 429


def test_refill_after_the_interval(limiter):
    limits = build_limits(key_id="k1", key_tpm=6000)  # one token per 10 ms
    assert limiter.check_and_consume(limits, tokens=6000).allowed
    assert not limiter.check_and_consume(limits, tokens=2).allowed
    time.sleep(0.03)
    assert limiter.check_and_consume(limits, tokens=2).allowed


def test_all_or_nothing_across_limits(limiter):
    limits = build_limits(key_id="k1", key_rpm=100, key_tpm=1000)
    assert limiter.check_and_consume(limits, tokens=900).allowed
    refused = limiter.check_and_consume(limits, tokens=500)
    assert refused.limit.kind == "tokens"
    # the refused request consumed no request allowance: 99 more requests fit
    assert sum(limiter.check_and_consume(limits, tokens=1).allowed for _ in range(120)) == 99


def test_project_and_tier_limits_are_shared_by_their_keys(limiter):
    def for_key(key_id: str):
        return build_limits(
            key_id=key_id,
            key_rpm=10,
            project_id="p1",
            project_rpm=15,
            org_id="o1",
            tier_name="free",
            tier_rpm=18,
        )

    assert sum(limiter.check_and_consume(for_key("a")).allowed for _ in range(12)) == 10
    refused = [limiter.check_and_consume(for_key("b")) for _ in range(10)]
    assert sum(d.allowed for d in refused) == 5
    assert refused[-1].limit.label == "project p1"
    other_project = build_limits(
        key_id="c", project_id="p2", project_rpm=15, org_id="o1", tier_name="free", tier_rpm=18
    )
    results = [limiter.check_and_consume(other_project) for _ in range(5)]
    assert sum(d.allowed for d in results) == 3
    assert results[-1].message.startswith("org o1 (free tier) exceeded 18 requests/min")


def test_the_binding_limit_is_the_longest_wait(limiter):
    limits = build_limits(key_id="k1", key_rpm=2, project_id="p1", project_rpm=600)
    limiter.check_and_consume(limits)
    limiter.check_and_consume(limits)
    refused = limiter.check_and_consume(limits)
    assert refused.limit.scope == "key"
    assert refused.retry_after_seconds == pytest.approx(30, abs=0.1)


def test_request_bigger_than_the_limit_is_refused_for_good(limiter):
    limits = build_limits(key_id="k1", key_prefix="kk_ab12", key_tpm=10_000)
    refused = limiter.check_and_consume(limits, tokens=12_000)
    assert not refused.allowed
    assert refused.retry_after_seconds is None
    assert refused.retry_after_header is None
    assert "request needs 12,000 tokens but key kk_ab12… allows 10,000 tokens/min" in refused.message
    assert limiter.check_and_consume(limits, tokens=10_000).allowed


def test_adjust_tokens_moves_only_token_limits(limiter):
    limits = build_limits(key_id="k1", key_rpm=3, key_tpm=1000)
    assert limiter.check_and_consume(limits, tokens=1000).allowed
    limiter.adjust_tokens(limits, -1000)  # upstream failed: tokens back, the request still counts
    assert limiter.check_and_consume(limits, tokens=1000).allowed
    limiter.adjust_tokens(limits, -1000)
    assert limiter.check_and_consume(limits, tokens=1000).allowed
    limiter.adjust_tokens(limits, -1000)
    refused = limiter.check_and_consume(limits, tokens=1000)
    assert refused.limit.kind == "requests"


async def test_async_forms_share_state_with_sync(limiter):
    limits = build_limits(key_id="k1", key_rpm=4, key_tpm=100)
    assert (await limiter.acheck_and_consume(limits, tokens=100)).allowed
    assert not limiter.check_and_consume(limits, tokens=1).allowed
    await limiter.aadjust_tokens(limits, -50)
    assert limiter.check_and_consume(limits, tokens=50).allowed
    if hasattr(limiter, "aclose"):
        await limiter.aclose()


def test_no_limits_means_always_allowed(limiter):
    limits = build_limits(key_id="k1")
    assert all(limiter.check_and_consume(limits, tokens=10**9).allowed for _ in range(100))


def test_a_changed_limit_starts_fresh_not_from_the_old_limits_state(limiter):
    """A tier promotion from 3 to 500 requests/min takes effect at once: the state the
    3 rpm limit left (a full minute of backlog) does not hold the 500 rpm limit back."""

    def tier(rpm: int):
        return build_limits(key_id="k1", org_id="o1", tier_name="T", tier_rpm=rpm)

    assert [limiter.check_and_consume(tier(3)).allowed for _ in range(4)] == [True] * 3 + [False]
    promoted = [limiter.check_and_consume(tier(500)) for _ in range(5)]
    assert [d.allowed for d in promoted] == [True] * 5, [d.message for d in promoted]
    # The same limit value keeps its state: still exhausted at 3 requests/min.
    assert not limiter.check_and_consume(tier(3)).allowed


def test_a_limit_set_may_not_name_one_limit_twice():
    from kakin.errors import InvalidInput
    from kakin.limits import Limit, LimitSet

    with pytest.raises(InvalidInput, match="same limit twice"):
        LimitSet((Limit("key", "k1", "requests", 5), Limit("key", "k1", "requests", 6)))

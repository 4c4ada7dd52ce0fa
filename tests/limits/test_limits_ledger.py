"""Limits read from real ledger records: a key's rpm/tpm and its organisation's usage tier."""

from __future__ import annotations

from kakin.ledger import Ledger
from kakin.limits import MemoryRateLimiter, limits_for_key


def test_key_and_tier_limits_from_the_ledger(tmp_path):
    with Ledger.open(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        org = ledger.create_org("acme", tier_rules="openai")
        project = ledger.create_project(org.id, "web")
        key, _secret = ledger.create_key(project.id, "ci", rpm=5, tpm=100_000)
        other, _ = ledger.create_key(project.id, "batch")
        tier = ledger.tier_of(org.id).tier
    assert tier is not None and tier.requests_per_minute == 3  # the preset's free tier

    limiter = MemoryRateLimiter()
    limits = limits_for_key(key, tier)
    decisions = [limiter.check_and_consume(limits, tokens=100) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].message.startswith(f"org {org.id} (Free tier) exceeded 3 requests/min")
    # the tier is shared: the org's other key has no allowance left either
    refused = limiter.check_and_consume(limits_for_key(other, tier))
    assert not refused.allowed and refused.limit.scope == "org"
    assert limits_for_key(other).limits == ()  # no key limits, no tier: unlimited

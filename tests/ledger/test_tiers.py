"""Usage tiers: promotion by the OpenAI and Gemini preset rules, recorded as ledger entries,
monthly ceilings enforced as hard caps, and rule sets of one's own."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from kakin.errors import Conflict, InvalidInput, NotFound
from kakin.ledger import Ledger, Scope, TierLimitExceeded, UsageDetail

USAGE = UsageDetail(provider="google", input_tokens=10, output_tokens=10)


def tier(ledger: Ledger, org_id: str) -> str:
    status = ledger.tier_of(org_id)
    assert status.tier is not None
    return status.tier.name


def test_openai_preset_promotes_by_amount_paid_and_days_since_first_payment(ledger: Ledger, clock) -> None:
    org = ledger.create_org("openai-style", tier_rules="openai")
    assert tier(ledger, org.id) == "Free"
    first_payment = clock.now
    ledger.grant(org.id, "prepaid", "5", idempotency_key="p1")
    assert tier(ledger, org.id) == "Tier 1"
    ledger.grant(org.id, "prepaid", "45", idempotency_key="p2")
    status = ledger.tier_of(org.id)
    assert status.tier.name == "Tier 1"  # type: ignore[union-attr]
    assert status.missing == (
        f"7 days since the first payment (reached at {(first_payment + timedelta(days=7)).isoformat()})",
    )
    clock.set(first_payment + timedelta(days=7))
    assert tier(ledger, org.id) == "Tier 2"
    ledger.grant(org.id, "prepaid", "200", idempotency_key="p3")  # $250 paid, but 14 days not yet
    assert tier(ledger, org.id) == "Tier 3"
    clock.set(first_payment + timedelta(days=14))
    assert tier(ledger, org.id) == "Tier 4"
    moves = [(e.detail["from"], e.detail["to"]) for e in ledger.entries(org.id) if e.kind == "tier"]  # type: ignore[index]
    assert moves == [
        (None, "Free"),
        ("Free", "Tier 1"),
        ("Tier 1", "Tier 2"),
        ("Tier 2", "Tier 3"),
        ("Tier 3", "Tier 4"),
    ]


def test_tiers_are_never_demoted(ledger: Ledger) -> None:
    org = ledger.create_org("keeps tier", tier_rules="openai")
    grant = ledger.grant(org.id, "prepaid", "5", idempotency_key="p")
    ledger.refund(grant.id)
    assert tier(ledger, org.id) == "Tier 1"


def test_the_tier_monthly_ceiling_is_a_hard_cap(ledger: Ledger, clock) -> None:
    org = ledger.create_org("ceiling", tier_rules="openai", payment_label="card")
    project = ledger.create_project(org.id, "app")
    scope = Scope(org.id, project.id, None, "gpt-4o")
    with pytest.raises(TierLimitExceeded) as refused:
        ledger.reserve(scope, "101", 1, idempotency_key="big")
    assert "'Free'" in str(refused.value) and "$100" in str(refused.value)
    assert refused.value.status == 402
    start = clock.now
    ledger.grant(org.id, "prepaid", "50", idempotency_key="p")
    clock.set(start + timedelta(days=7))  # Tier 2: $500 a month
    held = ledger.reserve(scope, "101", 1, idempotency_key="big-2")
    ledger.settle(held.id, "101", USAGE)
    ceiling = [b for b in ledger.list_budgets(org.id) if b.source == "tier"]
    assert [(b.limit, b.hard_cap) for b in ceiling] == [(Decimal(500), True)]
    assert ledger.budget_status(ceiling[0].id).spent == Decimal(101)


def test_gemini_preset_billing_account_then_spend_and_days(ledger: Ledger, clock) -> None:
    org = ledger.create_org("gemini-style", tier_rules="gemini")
    project = ledger.create_project(org.id, "app")
    scope = Scope(org.id, project.id, None, "gemini-2.0-flash")
    assert tier(ledger, org.id) == "Free"
    start = clock.now
    ledger.set_payment_method(org.id, "visa")
    assert tier(ledger, org.id) == "Tier 1"
    held = ledger.reserve(scope, "300", 1, idempotency_key="spend")
    ledger.settle(held.id, "300", USAGE)
    ledger.record_payment(org.id, "300", idempotency_key="invoice-jan")
    assert ledger.tier_of(org.id).missing[0].startswith("30 days since the first payment")
    clock.set(start + timedelta(days=30))
    assert tier(ledger, org.id) == "Tier 2"


def test_rule_sets_of_ones_own(ledger: Ledger) -> None:
    rules = """
name = "team"
[[tiers]]
name = "Starter"
requests_per_minute = 10
monthly_limit_usd = "20"
[[tiers]]
name = "Pro"
requests_per_minute = 100
requires = { paid_usd = "10" }
"""
    ledger.register_tier_rules("team", rules)
    ledger.register_tier_rules("team", rules)  # the same rules again: fine
    with pytest.raises(Conflict, match="other content"):
        ledger.register_tier_rules("team", rules.replace('"10"', '"20"'))
    org = ledger.create_org("team org")
    ledger.set_tier_rules(org.id, "team")
    assert tier(ledger, org.id) == "Starter"
    ledger.grant(org.id, "prepaid", "10", idempotency_key="p")
    status = ledger.tier_of(org.id)
    assert (status.tier.name, status.tier.requests_per_minute, status.next_tier) == ("Pro", 100, None)  # type: ignore[union-attr]
    assert [b.source for b in ledger.list_budgets(org.id)] == []  # Pro has no monthly ceiling


def test_bad_rule_sets_are_refused(ledger: Ledger) -> None:
    with pytest.raises(InvalidInput, match="not valid TOML"):
        ledger.register_tier_rules("broken", "[[tiers]\nname=")
    with pytest.raises(InvalidInput, match="starting tier"):
        ledger.register_tier_rules("x", '[[tiers]]\nname = "A"\nrequires = { paid_usd = "5" }\n')
    with pytest.raises(InvalidInput, match="requires may only use"):
        ledger.register_tier_rules(
            "y", '[[tiers]]\nname = "A"\n[[tiers]]\nname = "B"\nrequires = { karma = 5 }\n'
        )
    with pytest.raises(Conflict, match="built-in preset"):
        ledger.register_tier_rules("openai", '[[tiers]]\nname = "A"\n')
    with pytest.raises(NotFound, match="known: openai, gemini"):
        ledger.create_org("unknown rules", tier_rules="azure")
    assert ledger.list_orgs() == []

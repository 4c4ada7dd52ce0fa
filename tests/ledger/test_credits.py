"""Credit grants the way providers run them (seeds 002 and 003): free trial credit that
expires after three months, one free grant per verified phone number, welcome credit for
new billing accounts only, blocking without a payment method, postpaid with one,
prepayment that unlocks a tier and can be refunded, and a fixed consumption order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from kakin.errors import Conflict, InvalidInput, NotFound
from kakin.ledger import CreditExhausted, FreeCreditRefused, Ledger, Scope, UsageDetail

USAGE = UsageDetail(provider="openai", input_tokens=1000, output_tokens=500)


def spend(ledger: Ledger, scope: Scope, amount: str, key: str) -> None:
    held = ledger.reserve(scope, amount, 1500, idempotency_key=key)
    ledger.settle(held.id, amount, USAGE)


def org_with_project(ledger: Ledger, name: str, **kwargs) -> Scope:  # type: ignore[no-untyped-def]
    org = ledger.create_org(name, **kwargs)
    project = ledger.create_project(org.id, "app")
    return Scope(org.id, project.id, None, "gpt-4o-mini")


def test_free_trial_credit_expires_after_three_months_with_a_dated_expiry_entry(
    ledger: Ledger, clock
) -> None:
    clock.set(datetime(2023, 1, 31, 9, 0, tzinfo=UTC))
    scope = org_with_project(ledger, "pom", phone="+81 90-1234-5678")
    trial = ledger.grant(scope.org_id, "free_trial", "5", idempotency_key="signup")
    assert trial.expires_at == datetime(2023, 5, 1, 9, 0, tzinfo=UTC)  # registered Jan 31, valid to May 1
    spend(ledger, scope, "1.25", "r1")
    clock.set(trial.expires_at - timedelta(seconds=1))
    assert ledger.balance(scope.org_id).credit == Decimal("3.75")
    clock.set(datetime(2023, 6, 15, tzinfo=UTC))  # nobody touched the org at the expiry instant
    balance = ledger.balance(scope.org_id)
    assert balance.credit == 0 and balance.grants == ()
    expiry = [e for e in ledger.entries(scope.org_id) if e.kind == "expiry"]
    assert [(e.amount, e.occurred_at) for e in expiry] == [(Decimal("-3.75"), trial.expires_at)]
    assert ledger.list_grants(scope.org_id)[0].expired_at == trial.expires_at
    assert ledger.reconcile(scope.org_id).ok


def test_second_org_with_the_same_phone_gets_no_free_credit(ledger: Ledger) -> None:
    first = ledger.create_org("main account", phone="+81 90-1234-5678")
    ledger.grant(first.id, "free_trial", "5", idempotency_key="trial")
    alias = ledger.create_org("gmail alias", phone="090-1234-5678".replace("090", "+8190"))
    with pytest.raises(FreeCreditRefused) as refused:
        ledger.grant(alias.id, "free_trial", "5", idempotency_key="trial")
    message = str(refused.value)
    assert "+819012345678" in message and "'main account'" in message and "one free grant" in message
    assert refused.value.status == 409
    assert ledger.list_grants(alias.id) == [] and ledger.entries(alias.id) == []
    unverified = ledger.create_org("no phone")
    with pytest.raises(InvalidInput, match="verified identity"):
        ledger.grant(unverified.id, "free_trial", "5", idempotency_key="trial")


def test_welcome_credit_only_for_a_new_billing_account(ledger: Ledger) -> None:
    newcomer = ledger.create_org("newcomer", phone="+1 415 555 2671", payment_label="visa")
    welcome = ledger.grant(
        newcomer.id, "welcome", "300", idempotency_key="welcome", expires_in=timedelta(days=90)
    )
    assert welcome.category == "free" and welcome.remaining == Decimal(300)
    # Same person, a second organisation: the identity already had a billing account.
    second = ledger.create_org("second", phone="+14155552671")
    with pytest.raises(FreeCreditRefused, match="already received welcome credit"):
        ledger.grant(second.id, "welcome", "300", idempotency_key="welcome")
    # An identity with a billing account elsewhere but no welcome grant yet is still refused.
    veteran = ledger.create_org("veteran", phone="+44 20 7946 0958", payment_label="amex")
    ledger.set_payment_method(veteran.id, "amex")
    later = ledger.create_org("later", phone="+442079460958")
    with pytest.raises(FreeCreditRefused, match="only for new billing accounts"):
        ledger.grant(later.id, "welcome", "300", idempotency_key="w")
    assert ledger.balance(later.id).credit == 0


def test_one_free_grant_per_identity_whatever_its_kind(ledger: Ledger) -> None:
    """A second organisation with the same phone is refused a free trial, and then welcome
    credit too: it has no billing account, and the identity already had its free grant."""
    first = ledger.create_org("first", phone="+81 90-5555-0101")
    ledger.grant(first.id, "free_trial", "5", idempotency_key="trial")
    second = ledger.create_org("second", phone="+819055550101")
    with pytest.raises(FreeCreditRefused, match="already received free trial credit"):
        ledger.grant(second.id, "free_trial", "5", idempotency_key="trial")
    with pytest.raises(FreeCreditRefused) as refused:
        ledger.grant(second.id, "welcome", "5", idempotency_key="welcome")
    assert refused.value.status == 409
    assert "already received free trial credit with organisation 'first'" in str(refused.value)
    # A payment method does not make a second free grant for the same identity.
    ledger.set_payment_method(second.id, "visa")
    with pytest.raises(FreeCreditRefused, match="one free grant per verified identity"):
        ledger.grant(second.id, "welcome", "5", idempotency_key="welcome")
    # Nor does it for the first organisation, which already had its free trial.
    ledger.set_payment_method(first.id, "amex")
    with pytest.raises(FreeCreditRefused, match="with this organisation"):
        ledger.grant(first.id, "welcome", "5", idempotency_key="welcome")
    assert ledger.list_grants(second.id) == [] and ledger.balance(second.id).credit == 0
    assert [g.kind for g in ledger.list_grants(first.id)] == ["free_trial"]


def test_welcome_credit_needs_a_billing_account(ledger: Ledger) -> None:
    fresh = ledger.create_org("fresh", phone="+81 90-5555-0202")
    with pytest.raises(FreeCreditRefused, match="no payment method on file, no prepayment"):
        ledger.grant(fresh.id, "welcome", "5", idempotency_key="welcome")
    assert ledger.list_grants(fresh.id) == []
    # A prepayment opens the billing account; then the welcome credit is granted, once.
    ledger.grant(fresh.id, "prepaid", "10", idempotency_key="prepay")
    welcome = ledger.grant(fresh.id, "welcome", "5", idempotency_key="welcome")
    assert welcome.category == "free" and ledger.balance(fresh.id).credit == Decimal(15)
    with pytest.raises(FreeCreditRefused, match="already received welcome credit with this organisation"):
        ledger.grant(fresh.id, "free_trial", "5", idempotency_key="trial")


def test_usage_stops_when_credit_runs_out_without_a_payment_method(ledger: Ledger, clock) -> None:
    scope = org_with_project(ledger, "hobby", phone="+81 80-1111-2222")
    ledger.grant(scope.org_id, "free_trial", "1", idempotency_key="t")
    spend(ledger, scope, "0.9", "a")
    with pytest.raises(CreditExhausted) as blocked:
        ledger.reserve(scope, "0.2", 100, idempotency_key="b")
    error = blocked.value
    assert error.status == 402
    assert "$0.1 is available" in str(error) and "payment method" in str(error) and "prepaid" in str(error)
    spend(ledger, scope, "0.1", "c")  # the last cent still fits
    clock.advance(days=1)
    with pytest.raises(CreditExhausted, match="was used up at"):
        ledger.reserve(scope, "0.01", 10, idempotency_key="d")
    balance = ledger.balance(scope.org_id)
    assert (balance.credit, balance.held, balance.due) == (0, 0, 0)


def test_with_a_payment_method_usage_continues_postpaid_after_free_credit(ledger: Ledger) -> None:
    scope = org_with_project(ledger, "startup", phone="+81 70-3333-4444")
    ledger.grant(scope.org_id, "free_trial", "1", idempotency_key="t")
    ledger.set_payment_method(scope.org_id, "visa 4242")
    held = ledger.reserve(scope, "1.5", 100, idempotency_key="big")
    settled = ledger.settle(held.id, "1.4", USAGE)
    assert (settled.from_credit, settled.postpaid, settled.charged) == (
        Decimal(1),
        Decimal("0.4"),
        Decimal("1.4"),
    )
    balance = ledger.balance(scope.org_id)
    assert (balance.credit, balance.due, balance.spent) == (0, Decimal("0.4"), Decimal("1.4"))
    ledger.record_payment(scope.org_id, "0.4", idempotency_key="invoice-1")
    assert ledger.balance(scope.org_id).due == 0
    with pytest.raises(InvalidInput, match="more than the \\$0 due"):
        ledger.record_payment(scope.org_id, "1", idempotency_key="invoice-2")
    assert ledger.reconcile(scope.org_id).ok


def test_free_credit_is_used_before_paid_even_with_a_payment_method(ledger: Ledger, clock) -> None:
    scope = org_with_project(ledger, "mixed", phone="+81 90-5555-6666", payment_label="card")
    prepaid = ledger.grant(scope.org_id, "prepaid", "10", idempotency_key="p")
    late_promo = ledger.grant(
        scope.org_id, "promotional", "2", idempotency_key="promo-late", expires_in=timedelta(days=60)
    )
    soon_promo = ledger.grant(
        scope.org_id, "promotional", "1", idempotency_key="promo-soon", expires_in=timedelta(days=10)
    )
    trial = ledger.grant(scope.org_id, "free_trial", "5", idempotency_key="t", priority=20)
    order = [g.id for g in ledger.balance(scope.org_id).grants]
    # free/promotional first, then priority (trial has 20), then soonest expiry; paid last
    assert order == [soon_promo.id, late_promo.id, trial.id, prepaid.id]
    spend(ledger, scope, "4.5", "x")  # spans three grants
    remaining = {g.id: g.remaining for g in ledger.list_grants(scope.org_id)}
    assert remaining == {
        soon_promo.id: 0,
        late_promo.id: 0,
        trial.id: Decimal("3.5"),
        prepaid.id: Decimal(10),
    }
    charges = [e for e in ledger.entries(scope.org_id) if e.kind == "charge"]
    assert [(e.grant_id, e.amount) for e in charges] == [
        (soon_promo.id, Decimal(-1)),
        (late_promo.id, Decimal(-2)),
        (trial.id, Decimal("-1.5")),
    ]
    assert ledger.reconcile(scope.org_id).ok


def test_prepayment_moves_gemini_free_to_tier_1_and_unused_prepaid_is_refundable(ledger: Ledger) -> None:
    scope = org_with_project(ledger, "gemini user", tier_rules="gemini")
    assert ledger.tier_of(scope.org_id).tier.name == "Free"  # type: ignore[union-attr]
    prepaid = ledger.grant(scope.org_id, "prepaid", "10", idempotency_key="prepay-1")
    status = ledger.tier_of(scope.org_id)
    assert status.tier.name == "Tier 1"  # type: ignore[union-attr]
    assert status.tier.requests_per_minute > 15  # type: ignore[union-attr]
    tier_entries = [e.detail for e in ledger.entries(scope.org_id) if e.kind == "tier"]
    assert tier_entries[-1] == {"from": "Free", "to": "Tier 1", "rules": "gemini"}
    spend(ledger, scope, "3.25", "use")
    refund = ledger.refund(prepaid.id)
    assert (refund.amount, refund.remaining) == (Decimal("6.75"), 0)
    balance = ledger.balance(scope.org_id)
    assert (balance.credit, balance.paid) == (0, Decimal("3.25"))
    assert ledger.refund(prepaid.id).repeated  # the same refund again changes nothing
    assert ledger.balance(scope.org_id).paid == Decimal("3.25")
    with pytest.raises(CreditExhausted):  # no payment method on file: prepaid gone, usage stops
        ledger.reserve(scope, "0.01", 1, idempotency_key="after")
    assert ledger.reconcile(scope.org_id).ok


def test_prepaid_running_out_moves_to_standard_billing_with_a_payment_method(ledger: Ledger) -> None:
    scope = org_with_project(ledger, "gemini paid", tier_rules="gemini", payment_label="card")
    ledger.grant(scope.org_id, "prepaid", "2", idempotency_key="prepay")
    held = ledger.reserve(scope, "3", 10, idempotency_key="r")
    settled = ledger.settle(held.id, "3", USAGE)
    assert (settled.from_credit, settled.postpaid) == (Decimal(2), Decimal(1))
    assert ledger.balance(scope.org_id).due == Decimal(1)


def test_only_prepaid_credit_is_refundable_and_never_more_than_is_left(ledger: Ledger) -> None:
    scope = org_with_project(ledger, "refunds", phone="+81 90-7777-8888")
    trial = ledger.grant(scope.org_id, "free_trial", "5", idempotency_key="t")
    prepaid = ledger.grant(scope.org_id, "prepaid", "5", idempotency_key="p")
    with pytest.raises(InvalidInput, match="only prepaid credit is refundable"):
        ledger.refund(trial.id)
    with pytest.raises(InvalidInput, match="more than the \\$5 left"):
        ledger.refund(prepaid.id, "6")
    ledger.reserve(scope, "7", 10, idempotency_key="hold")  # 5 free + 2 of the prepaid are held
    with pytest.raises(Conflict, match="held by requests in flight"):
        ledger.refund(prepaid.id, "4")
    assert ledger.refund(prepaid.id, "3").remaining == Decimal(2)
    with pytest.raises(NotFound):
        ledger.refund("grt_missing")


def test_granting_is_idempotent(ledger: Ledger) -> None:
    org = ledger.create_org("idem")
    first = ledger.grant(org.id, "promotional", "20", idempotency_key="campaign-7")
    again = ledger.grant(org.id, "promotional", "20", idempotency_key="campaign-7")
    assert again.id == first.id and again.repeated
    assert ledger.balance(org.id).credit == Decimal(20)
    with pytest.raises(Conflict, match="other parameters"):
        ledger.grant(org.id, "promotional", "25", idempotency_key="campaign-7")
    assert len(ledger.entries(org.id)) == 1


def test_a_future_grant_counts_from_its_effective_time(ledger: Ledger, clock) -> None:
    org = ledger.create_org("future")
    start = clock.now + timedelta(days=3)
    ledger.grant(org.id, "promotional", "4", idempotency_key="next-week", effective_at=start)
    assert ledger.balance(org.id).credit == 0
    clock.set(start + timedelta(hours=5))
    assert ledger.balance(org.id).credit == Decimal(4)
    assert [(e.kind, e.occurred_at) for e in ledger.entries(org.id)] == [("grant", start)]


def test_bad_grant_input_is_refused_and_writes_nothing(ledger: Ledger) -> None:
    org = ledger.create_org("bad input")
    attempts = [
        dict(kind="gift", amount="5"),
        dict(kind="promotional", amount="-5"),
        dict(kind="promotional", amount="0"),
        dict(kind="promotional", amount="1e9"),
        dict(kind="promotional", amount=1.5),
        dict(kind="promotional", amount="abc"),
        dict(kind="promotional", amount="5", expires_at="next tuesday"),
        dict(kind="promotional", amount="5", expires_at="2020-01-01T00:00:00Z"),
        dict(kind="promotional", amount="5", priority=-1),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidInput):
            ledger.grant(org.id, idempotency_key="k", **attempt)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        ledger.grant("org_missing", "promotional", "5", idempotency_key="k")
    assert ledger.entries(org.id) == [] and ledger.list_grants(org.id) == []


def test_org_input_is_validated(ledger: Ledger) -> None:
    with pytest.raises(InvalidInput, match="IANA"):
        ledger.create_org("tz", timezone="Tokyo/Japan")
    with pytest.raises(InvalidInput, match="country code"):
        ledger.create_org("phone", phone="090-1234-5678")
    with pytest.raises(InvalidInput, match="not a valid number"):
        ledger.create_org("phone2", phone="+81 12")
    with pytest.raises(InvalidInput, match="3-letter"):
        ledger.create_org("cur", currency="YEN!")
    org = ledger.create_org("ok", currency="jpy", timezone="Asia/Tokyo", phone="+81 3-1234-5678")
    assert (org.currency, org.phone) == ("JPY", "+81312345678")
    with pytest.raises(Conflict, match="already exists"):
        ledger.create_org("ok")
    assert [o.name for o in ledger.list_orgs()] == ["ok"]


def test_two_organisations_may_use_the_same_payment_key(ledger: Ledger) -> None:
    for name in ("north", "south"):
        scope = org_with_project(ledger, name, payment_label="card")
        spend(ledger, scope, "0.5", "r")
        entry = ledger.record_payment(scope.org_id, "0.5", idempotency_key="invoice-2024-01")
        assert (entry.org_id, entry.kind, entry.amount) == (scope.org_id, "payment", Decimal("0.5"))
        assert ledger.balance(scope.org_id).due == 0


def test_refusal_names_the_credit_left_when_there_were_no_charges_yet(ledger: Ledger) -> None:
    scope = org_with_project(ledger, "fresh")
    ledger.grant(scope.org_id, "promotional", "1", idempotency_key="p")
    with pytest.raises(CreditExhausted) as blocked:
        ledger.reserve(scope, "2", 100, idempotency_key="too-big")
    assert "never had any credit" not in str(blocked.value)
    assert "only $1 of credit is left" in str(blocked.value)

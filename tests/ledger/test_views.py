"""One-phase posts and in-memory account views, for a process that owns the ledger: the
view refuses exactly what reserve would, and what it lets through is posted once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from kakin.errors import Conflict, KakinError
from kakin.ledger import BudgetExceeded, CreditExhausted, Ledger, PermissionDenied, PostOp, Scope, UsageDetail
from kakin.ledger.errors import UnboundedOutputBusy

USAGE = UsageDetail(provider="sim", input_tokens=700, output_tokens=300)


def test_post_records_a_served_request_once(ledger: Ledger, setup) -> None:
    org, _project, _key, scope = setup
    budget = ledger.set_budget(org.id, limit="1", thresholds=[50], hard_cap=True)
    first = ledger.post(scope, "0.6", USAGE, idempotency_key="req-1", tokens=2000)
    assert (first.charged, [t.threshold for t in first.thresholds]) == (Decimal("0.6"), [50])
    again = ledger.post(scope, "0.6", USAGE, idempotency_key="req-1", tokens=2000)
    assert again.repeated and again.reservation_id == first.reservation_id
    with pytest.raises(Conflict):
        ledger.post(scope, "0.7", USAGE, idempotency_key="req-1")
    # Served already: recorded even beyond the hard cap.
    over = ledger.post(scope, "0.6", USAGE, idempotency_key="req-2")
    assert over.charged == Decimal("0.6")
    assert ledger.budget_status(budget.id).spent == Decimal("1.2")
    assert len(ledger.usage(org.id)) == 2
    assert ledger.reconcile(org.id).ok


def test_post_refuses_an_inconsistent_scope(ledger: Ledger, setup) -> None:
    org, _project, key, _scope = setup
    rival = ledger.create_org("rival")
    rival_project = ledger.create_project(rival.id, "p")
    with pytest.raises(PermissionDenied):
        ledger.post(Scope(org.id, rival_project.id, None, "m"), "0.1", USAGE, idempotency_key="x")
    with pytest.raises(PermissionDenied):
        ledger.post(Scope(rival.id, rival_project.id, key.id, "m"), "0.1", USAGE, idempotency_key="y")
    assert ledger.usage(org.id) == [] and ledger.usage(rival.id) == []


def test_a_view_refuses_what_reserve_refuses(ledger: Ledger, clock) -> None:
    org = ledger.create_org("viewed", timezone="Asia/Tokyo")
    project = ledger.create_project(org.id, "p")
    scope = Scope(org.id, project.id, None, "m")
    ledger.grant(org.id, "promotional", "1", idempotency_key="promo")
    ledger.set_budget(org.id, period="day", limit="0.8", hard_cap=True)
    view = ledger.account_view(org.id)
    first = view.hold(scope, "0.5", 100)
    with pytest.raises(BudgetExceeded) as by_view:
        view.hold(scope, "0.5", 100)  # 0.5 held in memory + 0.5 > 0.8
    with pytest.raises(BudgetExceeded) as by_reserve:
        ledger.reserve(scope, "0.9", 100, idempotency_key="r")
    assert type(by_view.value) is type(by_reserve.value)
    settlement = ledger.batch([PostOp(scope, Decimal("0.5"), USAGE, "req-1", 100)])[0]
    view.posted(first, settlement, USAGE.tokens)  # type: ignore[arg-type]
    assert view.open_holds == 0
    ledger.set_budget(org.id, period="day", limit="5", hard_cap=True)
    view.expire()  # a change made elsewhere: reload
    assert view.stale(clock.now)
    fresh = ledger.account_view(org.id)
    with pytest.raises(CreditExhausted, match="is out of credit") as out:
        fresh.hold(scope, "0.6", 1)  # 0.5 of 1 credit left, no payment method
    assert out.value.status == 402
    fresh.hold(scope, "0.5", 1)


def test_a_view_goes_stale_when_its_figures_could_change(ledger: Ledger, clock) -> None:
    clock.set(datetime(2024, 1, 31, 14, 0, tzinfo=UTC))  # 23:00 in Tokyo
    org = ledger.create_org("stale", timezone="Asia/Tokyo", payment_label="card")
    ledger.set_budget(org.id, period="day", limit="1", hard_cap=True)
    view = ledger.account_view(org.id, max_age=timedelta(hours=3))
    assert view.valid_until == datetime(2024, 1, 31, 15, 0, tzinfo=UTC)  # midnight in Tokyo
    assert not view.stale(clock.now) and view.stale(view.valid_until)
    ledger.grant(org.id, "promotional", "1", idempotency_key="p", expires_in=timedelta(minutes=20))
    assert ledger.account_view(org.id, max_age=timedelta(hours=3)).valid_until == clock.now + timedelta(
        minutes=20
    )


def test_a_new_view_adopts_the_open_holds_of_the_old(ledger: Ledger) -> None:
    org = ledger.create_org("handover", payment_label="card")
    project = ledger.create_project(org.id, "p")
    scope = Scope(org.id, project.id, None, "m")
    ledger.set_budget(org.id, limit="1", hard_cap=True)
    old = ledger.account_view(org.id)
    in_flight = old.hold(scope, "0.7", 10)
    new = ledger.account_view(org.id)
    new.adopt_holds(old)
    with pytest.raises(BudgetExceeded):
        new.hold(scope, "0.5", 10)
    settlement = ledger.post(scope, "0.6", USAGE, idempotency_key="r1")
    new.posted(in_flight, settlement, USAGE.tokens)
    new.hold(scope, "0.4", 10)
    with pytest.raises(KakinError):
        new.hold(scope, "0.01", 10)


def test_a_view_refusal_says_what_is_true_when_it_refuses(ledger: Ledger) -> None:
    org = ledger.create_org("prepaid-only")
    project = ledger.create_project(org.id, "p")
    scope = Scope(org.id, project.id, None, "m")
    with pytest.raises(CreditExhausted, match="never had any credit"):
        ledger.account_view(org.id).hold(scope, "0.1", 1)
    ledger.grant(org.id, "promotional", "1", idempotency_key="promo")
    view = ledger.account_view(org.id)
    with pytest.raises(CreditExhausted, match=r"only \$1 of credit is left"):
        view.hold(scope, "2", 1)
    hold = view.hold(scope, "1", 1)
    with pytest.raises(CreditExhausted, match=r"\$1 of its \$1 credit is held"):
        view.hold(scope, "0.5", 1)
    settlement = ledger.post(scope, "1", USAGE, idempotency_key="all-of-it")
    view.posted(hold, settlement, USAGE.tokens)
    with pytest.raises(CreditExhausted, match="was used up at") as refused:
        view.hold(scope, "0.1", 1)
    assert "never had any credit" not in str(refused.value)


def test_one_unbounded_hold_at_a_time_where_a_cap_could_be_passed(ledger: Ledger, clock) -> None:
    """Reserve and a view keep the same count of unbounded holds: one such hold at a time
    without a payment method (or under a hard cap); bounded holds and uncapped accounts are
    not affected; a void, a settle and an expiry each give the place back."""
    org = ledger.create_org("prepaid")
    project = ledger.create_project(org.id, "p")
    scope = Scope(org.id, project.id, None, "m")
    ledger.grant(org.id, "promotional", "10", idempotency_key="promo")
    first = ledger.reserve(scope, "0.1", 10, idempotency_key="u1", unbounded=True)
    with pytest.raises(UnboundedOutputBusy, match="set an output limit") as busy:
        ledger.reserve(scope, "0.1", 10, idempotency_key="u2", unbounded=True)
    assert (busy.value.status, busy.value.retry_after_seconds) == (429, 1)
    ledger.reserve(scope, "0.1", 10, idempotency_key="b1")  # bounded: not affected
    view = ledger.account_view(org.id)  # sees the ledger's unbounded hold
    with pytest.raises(UnboundedOutputBusy):
        view.hold(scope, "0.1", 10, unbounded=True)
    ledger.void(first.id)
    view = ledger.account_view(org.id)
    held = view.hold(scope, "0.1", 10, unbounded=True)
    with pytest.raises(UnboundedOutputBusy):
        view.hold(scope, "0.1", 10, unbounded=True)
    view.release(held)
    view.hold(scope, "0.1", 10, unbounded=True)

    second = ledger.reserve(scope, "0.1", 10, idempotency_key="u3", unbounded=True)
    ledger.settle(second.id, "0.3", USAGE)  # past its hold: allowed, and the place is free
    ledger.reserve(scope, "0.1", 10, idempotency_key="u4", unbounded=True, expires_in=60)
    clock.advance(seconds=61)
    ledger.reserve(scope, "0.1", 10, idempotency_key="u5", unbounded=True)  # u4 expired
    assert ledger.reconcile(org.id).ok

    card = ledger.create_org("card", payment_label="card")
    card_project = ledger.create_project(card.id, "p")
    card_scope = Scope(card.id, card_project.id, None, "m")
    for n in range(3):  # nothing to pass: no limit on unbounded holds
        ledger.reserve(card_scope, "0.1", 10, idempotency_key=f"c{n}", unbounded=True)
    ledger.set_budget(card.id, period="day", limit="5", hard_cap=True)
    with pytest.raises(UnboundedOutputBusy):
        ledger.reserve(card_scope, "0.1", 10, idempotency_key="c9", unbounded=True)
    assert ledger.reconcile(card.id).ok

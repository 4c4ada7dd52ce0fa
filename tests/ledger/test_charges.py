"""Two-phase charges: reserve holds, settle posts the actual amount, void releases; holds
expire; idempotency keys never charge twice; batches isolate each operation's failure."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from kakin.errors import Conflict, InvalidInput, KakinError, NotFound
from kakin.ledger import Ledger, ReserveOp, Scope, SettleOp, UsageDetail, VoidOp
from kakin.ledger.ops import execute

USAGE = UsageDetail(provider="openai", input_tokens=1200, output_tokens=300, cached_tokens=200)


def test_settle_posts_the_actual_amount_and_releases_the_hold(ledger: Ledger, setup) -> None:
    org, _project, _key, scope = setup
    held = ledger.reserve(scope, "0.50", 4000, idempotency_key="req-1")
    assert ledger.balance(org.id).held == Decimal("0.5")
    settled = ledger.settle(held.id, "0.12", USAGE)
    assert (settled.charged, settled.overrun, settled.late) == (Decimal("0.12"), 0, False)
    balance = ledger.balance(org.id)
    assert (balance.held, balance.spent) == (0, Decimal("0.12"))
    assert ledger.get_reservation(held.id).status == "settled"


def test_settle_above_the_hold_is_charged_and_the_overrun_recorded(ledger: Ledger, setup) -> None:
    org, _project, _key, scope = setup
    held = ledger.reserve(scope, "0.10", 100, idempotency_key="low-estimate")
    settled = ledger.settle(held.id, "0.13", USAGE)
    assert (settled.charged, settled.overrun) == (Decimal("0.13"), Decimal("0.03"))
    assert ledger.balance(org.id).spent == Decimal("0.13")


def test_void_releases_the_hold_and_closes_the_reservation(ledger: Ledger, setup) -> None:
    org, _project, _key, scope = setup
    held = ledger.reserve(scope, "1", 100, idempotency_key="upstream-500")
    voided = ledger.void(held.id)
    assert voided.status == "voided" and not voided.repeated
    assert ledger.void(held.id).repeated
    assert ledger.balance(org.id).held == 0
    with pytest.raises(Conflict, match="was voided"):
        ledger.settle(held.id, "0.5", USAGE)
    done = ledger.reserve(scope, "1", 100, idempotency_key="ok")
    ledger.settle(done.id, "0.2", USAGE)
    with pytest.raises(Conflict, match="cannot be voided"):
        ledger.void(done.id)
    assert ledger.entries(org.id)[-1].amount == Decimal("-0.2")


def test_a_repeated_idempotency_key_never_charges_twice(ledger: Ledger, setup) -> None:
    org, _project, _key, scope = setup
    first = ledger.reserve(scope, "0.4", 500, idempotency_key="client-retry")
    again = ledger.reserve(scope, "0.4", 500, idempotency_key="client-retry")
    assert again.id == first.id and again.repeated
    assert ledger.balance(org.id).held == Decimal("0.4")
    with pytest.raises(Conflict, match="other parameters"):
        ledger.reserve(scope, "0.5", 500, idempotency_key="client-retry")
    settled = ledger.settle(first.id, "0.3", USAGE)
    repeat = ledger.settle(first.id, "0.3", USAGE)
    assert repeat.repeated and (repeat.charged, repeat.thresholds) == (settled.charged, settled.thresholds)
    with pytest.raises(Conflict, match="already settled"):
        ledger.settle(first.id, "0.35", USAGE)
    assert ledger.balance(org.id).spent == Decimal("0.3")
    assert len(ledger.usage(org.id)) == 1
    # The key stays bound to that request even after settling.
    assert ledger.reserve(scope, "0.4", 500, idempotency_key="client-retry").status == "settled"


def test_an_unsettled_hold_expires_and_a_late_settle_is_still_charged_in_full(
    ledger: Ledger, setup, clock
) -> None:
    org, _project, _key, scope = setup
    budget = ledger.set_budget(org.id, limit="10", hard_cap=True)
    held = ledger.reserve(scope, "2", 100, idempotency_key="slow", expires_in=timedelta(minutes=5))
    assert ledger.budget_status(budget.id).held == Decimal(2)
    clock.advance(minutes=5)
    assert ledger.balance(org.id).held == 0
    assert ledger.budget_status(budget.id).held == 0
    assert ledger.get_reservation(held.id).status == "expired"
    with pytest.raises(Conflict, match="expired"):
        ledger.void(held.id)
    settled = ledger.settle(held.id, "1.5", USAGE)
    assert (settled.late, settled.overrun, settled.charged) == (True, Decimal("1.5"), Decimal("1.5"))
    assert ledger.budget_status(budget.id).spent == Decimal("1.5")
    assert ledger.reconcile(org.id).ok


def test_expire_holds_releases_everything_past_due(ledger: Ledger, setup, clock) -> None:
    org, _project, _key, scope = setup
    for i in range(3):
        ledger.reserve(scope, "0.1", 10, idempotency_key=f"h{i}", expires_in=60 * (i + 1))
    clock.advance(minutes=2, seconds=30)
    assert ledger.expire_holds() == 2
    assert ledger.expire_holds() == 0
    assert ledger.balance(org.id).held == Decimal("0.1")


def test_each_settle_writes_one_usage_record_with_the_request_details(ledger: Ledger, setup, clock) -> None:
    org, project, key, scope = setup
    started = clock.now
    held = ledger.reserve(scope, "0.02", 2000, idempotency_key="u")
    clock.advance(seconds=3)
    detail = UsageDetail(
        provider="openai",
        input_tokens=1000,
        output_tokens=50,
        cached_tokens=400,
        cost_items=[{"unit": "input_tokens", "quantity": 600, "price": Decimal("0.00000015")}],
        request_id="chatcmpl-123",
        cache_hit=False,
        routed_from="gpt-4o",
        routing_saved=Decimal("0.004"),
    )
    ledger.settle(held.id, "0.00015", detail)
    [record] = ledger.usage(org.id)
    assert (record.project_id, record.key_id, record.model, record.provider) == (
        project.id,
        key.id,
        "gpt-4o-mini",
        "openai",
    )
    assert (record.input_tokens, record.output_tokens, record.cached_tokens) == (1000, 50, 400)
    assert record.cost == Decimal("0.00015") and record.routing_saved == Decimal("0.004")
    assert record.cost_items == [{"unit": "input_tokens", "quantity": 600, "price": "1.5E-7"}]
    assert (record.occurred_at, record.settled_at) == (started, clock.now)
    assert ledger.usage(org.id, model="gpt-4o") == [] and len(ledger.usage(org.id, key_id=key.id)) == 1


def test_charge_reserves_and_settles_in_one_step(ledger: Ledger, setup) -> None:
    org, _project, _key, scope = setup
    settled = ledger.charge(scope, "0.07", USAGE, idempotency_key="import-1")
    assert settled.charged == Decimal("0.07")
    assert ledger.charge(scope, "0.07", USAGE, idempotency_key="import-1").repeated
    assert ledger.balance(org.id).spent == Decimal("0.07")


def test_a_batch_returns_each_failure_in_place_and_applies_the_rest(ledger: Ledger, setup) -> None:
    org, _project, _key, scope = setup
    open_hold = ledger.reserve(scope, "0.3", 10, idempotency_key="earlier")
    results = ledger.batch(
        [
            ReserveOp(scope, Decimal("0.1"), 10, "b1"),
            ReserveOp(scope, Decimal("-1"), 10, "bad-amount"),
            SettleOp(open_hold.id, Decimal("0.2"), USAGE),
            SettleOp("res_missing", Decimal("0.2"), USAGE),
            VoidOp(open_hold.id),  # already settled a moment ago in this very batch
            ReserveOp(Scope("org_missing", "p", None, "m"), Decimal("0.1"), 1, "x"),
            ReserveOp(scope, Decimal("0.1"), 10, "b1"),  # repeat inside the batch
        ]
    )
    kinds = [type(r).__name__ for r in results]
    assert kinds == [
        "Reservation",
        "InvalidInput",
        "Settlement",
        "NotFound",
        "Conflict",
        "NotFound",
        "Reservation",
    ]
    assert results[6].id == results[0].id and results[6].repeated  # type: ignore[union-attr]
    balance = ledger.balance(org.id)
    assert (balance.held, balance.spent) == (Decimal("0.1"), Decimal("0.2"))
    assert ledger.reconcile(org.id).ok


def test_reserve_and_settle_in_the_same_batch(ledger: Ledger, setup) -> None:
    org, _project, _key, scope = setup
    [reservation] = ledger.batch([ReserveOp(scope, Decimal("0.5"), 10, "same-batch")])
    results = ledger.batch(
        [SettleOp(reservation.id, Decimal("0.25"), USAGE), ReserveOp(scope, Decimal("0.5"), 10, "next")]  # type: ignore[union-attr]
    )
    assert [type(r).__name__ for r in results] == ["Settlement", "Reservation"]
    assert ledger.reconcile(org.id).ok


def test_operations_run_on_the_callers_transaction(ledger: Ledger, setup) -> None:
    org, _project, _key, scope = setup
    with ledger.engine.begin() as conn:
        first = execute(
            conn, [ReserveOp(scope, Decimal("0.1"), 1, "g1")], now=ledger.now(), context=ledger.context
        )
        second = execute(
            conn,
            [SettleOp(first[0].id, Decimal("0.1"), USAGE)],
            now=ledger.now(),
            context=ledger.context,  # type: ignore[union-attr]
        )
        assert not isinstance(second[0], KakinError)
    assert ledger.balance(org.id).spent == Decimal("0.1")
    try:
        with ledger.engine.begin() as conn:
            execute(
                conn,
                [ReserveOp(scope, Decimal("0.1"), 1, "rolled-back")],
                now=ledger.now(),
                context=ledger.context,
            )
            raise RuntimeError("caller aborts")
    except RuntimeError:
        pass
    assert ledger.balance(org.id).held == 0


def test_bad_charge_input_is_refused_and_writes_nothing(ledger: Ledger, setup) -> None:
    org, _project, _key, scope = setup
    before = ledger.entries(org.id)
    bad_reserves = [
        dict(amount="-0.01"),
        dict(amount="2000000"),
        dict(amount=0.5),
        dict(amount="NaN"),
        dict(amount="1", tokens=-5),
        dict(amount="1", tokens=1.5),
        dict(amount="1", idempotency_key=""),
        dict(amount="1", expires_in=timedelta(days=30)),
        dict(amount="1", expires_in=-1),
    ]
    for attempt in bad_reserves:
        params = {"idempotency_key": "k", "tokens": 10, **attempt}
        with pytest.raises(InvalidInput):
            ledger.reserve(scope, **params)  # type: ignore[arg-type]
    held = ledger.reserve(scope, "1", 10, idempotency_key="good")
    bad_usage = [
        UsageDetail(provider="", input_tokens=1),
        UsageDetail(provider="openai", input_tokens=-1),
        UsageDetail(provider="openai", input_tokens=1, cached_tokens=2),
        UsageDetail(provider="openai", cost_items={"x": object()}),
    ]
    for usage in bad_usage:
        with pytest.raises(InvalidInput):
            ledger.settle(held.id, "0.1", usage)
    with pytest.raises(InvalidInput):
        ledger.settle(held.id, "-0.1", USAGE)
    with pytest.raises(NotFound):
        ledger.settle("res_unknown", "0.1", USAGE)
    with pytest.raises(NotFound):
        ledger.reserve(Scope("org_unknown", "prj", None, "m"), "0.1", idempotency_key="k")
    assert ledger.get_reservation(held.id).status == "held"
    assert ledger.entries(org.id) == before and ledger.usage(org.id) == []
    assert ledger.reconcile(org.id).ok


def test_cost_items_may_come_as_values_or_as_a_json_document(ledger: Ledger, setup) -> None:
    org, _project, _key, scope = setup
    as_values = [{"unit": "input", "price": Decimal("0.00000015"), "n": 600}]
    as_text = '[{"unit": "output", "price": "0.0000006", "n": 300}]'
    for key, items in (("values", as_values), ("text", as_text)):
        ledger.charge(scope, "0.01", UsageDetail(provider="openai", cost_items=items), idempotency_key=key)
    recorded = [record.cost_items for record in ledger.usage(org.id)]
    assert recorded == [
        [{"unit": "input", "price": "1.5E-7", "n": 600}],
        [{"unit": "output", "price": "0.0000006", "n": 300}],
    ]
    with pytest.raises(InvalidInput, match="JSON document"):
        ledger.charge(scope, "0.01", UsageDetail(provider="openai", cost_items="[{"), idempotency_key="bad")
    assert len(ledger.usage(org.id)) == 2

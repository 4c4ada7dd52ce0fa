"""Budgets: hard caps checked atomically with the hold, spend counted from the start of the
period even for a budget added mid-period, resets exactly at the local calendar boundary,
thresholds reported once per period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from kakin.errors import InvalidInput, NotFound
from kakin.ledger import BudgetExceeded, Ledger, Scope, UsageDetail

USAGE = UsageDetail(provider="openai", input_tokens=800, output_tokens=200)
JST_FEB_1 = datetime(2024, 1, 31, 15, 0, tzinfo=UTC)  # 2024-02-01 00:00 in Asia/Tokyo


def spend(ledger: Ledger, scope: Scope, amount: str, key: str, tokens: int = 1000):  # type: ignore[no-untyped-def]
    held = ledger.reserve(scope, amount, tokens, idempotency_key=key)
    return ledger.settle(held.id, amount, USAGE)


def test_a_budget_added_mid_period_counts_the_spend_already_made(ledger: Ledger, setup, clock) -> None:
    org, _project, _key, scope = setup
    clock.set(datetime(2024, 1, 10, tzinfo=UTC))
    spend(ledger, scope, "3", "early")
    clock.set(datetime(2024, 1, 20, tzinfo=UTC))
    budget = ledger.set_budget(org.id, limit="5", hard_cap=True, name="january cap")
    status = ledger.budget_status(budget.id)
    assert (status.spent, status.percent, status.remaining) == (Decimal(3), Decimal("60.00"), Decimal(2))
    with pytest.raises(BudgetExceeded) as refused:
        ledger.reserve(scope, "2.5", 10, idempotency_key="too-much")
    message = str(refused.value)
    assert "january cap" in message and "$2.5" in message and "2024-02-01T00:00:00+09:00" in message
    assert refused.value.status == 402 and refused.value.budget_id == budget.id
    ledger.reserve(scope, "2", 10, idempotency_key="fits")
    assert ledger.budget_status(budget.id).remaining == 0


def test_month_budget_resets_exactly_at_midnight_tokyo(ledger: Ledger, setup, clock) -> None:
    org, _project, _key, scope = setup
    clock.set(JST_FEB_1 - timedelta(days=2))
    budget = ledger.set_budget(org.id, limit="1", hard_cap=True)
    spend(ledger, scope, "1", "january")
    clock.set(JST_FEB_1 - timedelta(microseconds=1))
    with pytest.raises(BudgetExceeded):
        ledger.reserve(scope, "0.01", 1, idempotency_key="still-january")
    clock.set(JST_FEB_1)
    status = ledger.budget_status(budget.id)
    assert (status.period_start, status.spent) == (JST_FEB_1, 0)
    assert status.period_end == datetime(2024, 2, 29, 15, 0, tzinfo=UTC)  # leap year, 1 March JST
    ledger.reserve(scope, "0.01", 1, idempotency_key="february")
    assert ledger.reconcile(org.id).ok


def test_day_budget_follows_the_local_day(ledger: Ledger, setup, clock) -> None:
    org, _project, _key, scope = setup
    clock.set(datetime(2024, 3, 10, 14, 59, tzinfo=UTC))  # 23:59 JST
    budget = ledger.set_budget(org.id, period="day", limit="0.5", hard_cap=True)
    spend(ledger, scope, "0.5", "late-night")
    with pytest.raises(BudgetExceeded):
        ledger.reserve(scope, "0.1", 1, idempotency_key="refused")
    clock.advance(minutes=1)  # 00:00 JST: a new day
    ledger.reserve(scope, "0.1", 1, idempotency_key="next-day")
    assert ledger.budget_status(budget.id).period_start == datetime(2024, 3, 10, 15, 0, tzinfo=UTC)


def test_thresholds_fire_once_per_period(ledger: Ledger, setup, clock) -> None:
    org, _project, _key, scope = setup
    clock.set(datetime(2024, 1, 5, tzinfo=UTC))
    budget = ledger.set_budget(org.id, limit="10", thresholds=[50, 80, 100])
    fired = lambda settlement: [t.threshold for t in settlement.thresholds]  # noqa: E731
    assert fired(spend(ledger, scope, "4", "a")) == []
    crossing = spend(ledger, scope, "1.5", "b")
    assert fired(crossing) == [50]
    threshold = crossing.thresholds[0]
    assert (threshold.budget_id, threshold.spent, threshold.limit, threshold.unit) == (
        budget.id,
        Decimal("5.5"),
        10,
        "usd",
    )
    assert fired(spend(ledger, scope, "0.5", "c")) == []
    assert fired(spend(ledger, scope, "5", "d")) == [80, 100]  # past the limit: soft budget, no cap
    assert fired(spend(ledger, scope, "1", "e")) == []
    assert ledger.budget_status(budget.id).fired == (50, 80, 100)
    clock.set(datetime(2024, 2, 10, tzinfo=UTC))
    assert fired(spend(ledger, scope, "6", "f")) == [50]  # a new period fires again


def test_thresholds_already_passed_when_a_budget_is_added_fire_on_the_next_settle(
    ledger: Ledger, setup
) -> None:
    org, _project, _key, scope = setup
    spend(ledger, scope, "9", "before")
    ledger.set_budget(org.id, limit="10")
    assert [t.threshold for t in spend(ledger, scope, "0.1", "after").thresholds] == [50, 80]


def test_hard_cap_counts_open_holds(ledger: Ledger, setup) -> None:
    org, _project, _key, scope = setup
    ledger.set_budget(org.id, limit="1", hard_cap=True)
    first = ledger.reserve(scope, "0.6", 10, idempotency_key="first")
    with pytest.raises(BudgetExceeded, match=r"held by requests in flight \$0\.6"):
        ledger.reserve(scope, "0.6", 10, idempotency_key="second")
    ledger.void(first.id)
    ledger.reserve(scope, "0.6", 10, idempotency_key="second")


def test_a_new_budget_adopts_the_holds_already_open(ledger: Ledger, setup) -> None:
    org, _project, _key, scope = setup
    open_hold = ledger.reserve(scope, "0.7", 10, idempotency_key="in-flight")
    budget = ledger.set_budget(org.id, limit="1", hard_cap=True)
    assert ledger.budget_status(budget.id).held == Decimal("0.7")
    with pytest.raises(BudgetExceeded):
        ledger.reserve(scope, "0.5", 10, idempotency_key="over")
    ledger.settle(open_hold.id, "0.7", USAGE)
    status = ledger.budget_status(budget.id)
    assert (status.spent, status.held) == (Decimal("0.7"), 0)
    assert ledger.reconcile(org.id).ok


def test_scoped_budgets_apply_only_to_their_project_key_or_model(ledger: Ledger, setup) -> None:
    org, project, key, scope = setup
    other_project = ledger.create_project(org.id, "batch")
    ledger.set_budget(org.id, scope="project", scope_ref=project.id, limit="1", hard_cap=True)
    ledger.set_budget(org.id, scope="model", scope_ref="gpt-4o", limit="0.5", hard_cap=True)
    key_budget = ledger.set_budget(
        org.id, scope="key", scope_ref=key.id, period="total", limit_tokens=5000, hard_cap=True
    )
    spend(ledger, scope, "1", "web")
    with pytest.raises(BudgetExceeded, match="project"):
        ledger.reserve(scope, "0.01", 1, idempotency_key="web-2")
    other = Scope(org.id, other_project.id, None, "gpt-4o")
    spend(ledger, other, "0.5", "batch")  # the project budget does not apply here
    with pytest.raises(BudgetExceeded, match="model gpt-4o"):
        ledger.reserve(other, "0.01", 1, idempotency_key="batch-2")
    spend(ledger, Scope(org.id, other_project.id, None, "gpt-4o-mini"), "2", "mini")
    assert ledger.budget_status(key_budget.id).spent == Decimal(1000)  # tokens from the one keyed request


def test_token_budgets_cap_reserved_tokens(ledger: Ledger, setup) -> None:
    org, _project, _key, scope = setup
    budget = ledger.set_budget(org.id, period="day", limit_tokens=3000, hard_cap=True)
    ledger.reserve(scope, "0.01", 2000, idempotency_key="a")
    with pytest.raises(BudgetExceeded, match="2,000 tokens"):
        ledger.reserve(scope, "0.01", 1001, idempotency_key="b")
    status = ledger.budget_status(budget.id)
    assert (status.held, status.limit, status.budget.unit) == (2000, 3000, "tokens")


def test_changing_a_budget_keeps_the_periods_spend(ledger: Ledger, setup) -> None:
    org, _project, _key, scope = setup
    budget = ledger.set_budget(org.id, limit="2", hard_cap=True)
    spend(ledger, scope, "1.5", "a")
    changed = ledger.set_budget(org.id, limit="5", hard_cap=True, thresholds=[90])
    assert changed.id == budget.id and changed.limit == 5 and changed.thresholds == (90,)
    assert ledger.budget_status(budget.id).spent == Decimal("1.5")
    assert [b.id for b in ledger.list_budgets(org.id)] == [budget.id]
    ledger.delete_budget(budget.id)
    assert ledger.list_budgets(org.id) == []
    ledger.reserve(scope, "100", 1, idempotency_key="uncapped")


def test_bad_budget_input_is_refused(ledger: Ledger, setup) -> None:
    org, _project, _key, _scope = setup
    rival = ledger.create_org("rival")
    rival_project = ledger.create_project(rival.id, "theirs")
    attempts = [
        dict(limit="1", limit_tokens=5),
        dict(),
        dict(limit="-1"),
        dict(limit="0"),
        dict(limit="1", scope="team"),
        dict(limit="1", period="week"),
        dict(limit="1", thresholds=[0]),
        dict(limit="1", thresholds="50"),
        dict(limit="1", scope="project"),
        dict(limit="1", scope_ref="x"),
        dict(limit_tokens=-3),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidInput):
            ledger.set_budget(org.id, **attempt)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        ledger.set_budget(org.id, scope="project", scope_ref=rival_project.id, limit="1")
    with pytest.raises(NotFound):
        ledger.budget_status("bud_missing")
    assert ledger.list_budgets(org.id) == []


def test_the_migration_puts_model_budgets_under_the_catalogs_name(ledger: Ledger, setup, clock) -> None:  # type: ignore[no-untyped-def]
    """Budgets set before requests were budgeted under the catalog's model name: one on a dated
    snapshot is renamed, one beside the same budget on the catalog's name is folded into it
    (limits added, counters and open holds moved), one on an unknown name stays; the usage,
    holds and rollups take the catalog's names, and the ledger still reconciles."""
    from alembic import command

    from kakin.ledger.db import alembic_config, migrate

    org, project, key, _ = setup
    clock.set(datetime(2024, 1, 10, tzinfo=UTC))
    dated = Scope(org.id, project.id, key.id, "gpt-4o-2024-08-06")
    alone = ledger.set_budget(org.id, scope="model", scope_ref="claude-sonnet-4-5-20250929", limit="4")
    private = ledger.set_budget(org.id, scope="model", scope_ref="our-private-model", limit="4")
    folded = ledger.set_budget(
        org.id, scope="model", scope_ref="gpt-4o-2024-08-06", limit="3", thresholds=[50], hard_cap=True
    )
    kept = ledger.set_budget(org.id, scope="model", scope_ref="gpt-4o", limit="2", thresholds=[80])
    spend(ledger, dated, "1", "dated-spent")
    spend(ledger, Scope(org.id, project.id, key.id, "gpt-4o"), "0.5", "plain-spent")
    open_hold = ledger.reserve(dated, "0.25", 10, idempotency_key="dated-held")
    with ledger.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0009_unbounded_holds")  # before the catalog names
    migrate(ledger.engine)

    with Ledger.open(ledger.engine.url.render_as_string(hide_password=False), clock=clock) as after:
        budgets = {b.id: b for b in after.list_budgets(org.id)}
        assert budgets[alone.id].scope_ref == "claude-sonnet-4-5"
        assert budgets[private.id].scope_ref == "our-private-model"
        assert folded.id not in budgets
        merged = budgets[kept.id]
        assert (merged.scope_ref, merged.limit, merged.hard_cap) == ("gpt-4o", Decimal(5), True)
        assert list(merged.thresholds) == [50, 80]
        status = after.budget_status(kept.id)
        assert (status.spent, status.held) == (Decimal("1.5"), Decimal("0.25"))
        after.settle(open_hold.id, "0.25", USAGE)  # the moved hold settles against the kept budget
        status = after.budget_status(kept.id)
        assert (status.spent, status.held) == (Decimal("1.75"), Decimal(0))
        assert {record.model for record in after.usage(org.id)} == {"gpt-4o"}  # history renamed too
        report = after.reconcile(org.id)  # rollups folded: still equal to the usage records
        assert report.ok, [c for c in report.checks if c.counter != c.computed]

"""Reconciliation finds every disagreement planted in the sample bills and flags nothing else."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from kakin.errors import NotFound
from kakin.ledger import Ledger
from kakin.reconcile import BillStore, Reconciler

from .conftest import sample


def flagged(result) -> set[tuple[str, str | None, str, str]]:  # type: ignore[no-untyped-def]
    return {(line.day.isoformat(), line.model, line.unit, line.verdict) for line in result.flagged}


def explained(result) -> set[tuple[str, str | None, str, str]]:  # type: ignore[no-untyped-def]
    return {
        (line.day.isoformat(), line.model, line.unit, line.explained)
        for line in result.lines
        if line.explained
    }


def test_openai_missing_day_price_change_lag_and_outside_traffic(ledger: Ledger, acme: str) -> None:
    BillStore(ledger).import_bill(acme, "openai", sample("openai_costs.json"), "openai_costs.json")
    result = Reconciler(ledger).compare(acme, "openai", accounts=["proj_kakin"])
    assert (result.start, result.end) == (date(2026, 3, 1), date(2026, 3, 8))
    assert flagged(result) == {
        ("2026-03-04", "gpt-4o", "input", "missing_at_provider"),  # the day the bill lacks
        ("2026-03-04", "gpt-4o", "cached_input", "missing_at_provider"),
        ("2026-03-04", "gpt-4o", "output", "missing_at_provider"),
        ("2026-03-06", "gpt-4o", "output", "provider_higher"),  # output at $12/M, kakin's $10/M
        ("2026-03-07", "gpt-4o", "output", "provider_higher"),
    }
    assert explained(result) == {
        ("2026-03-07", "gpt-4o", "input", "lag"),  # the last day is not final yet
        ("2026-03-02", "gpt-4o-mini", "input", "outside_kakin"),  # another project's traffic
    }
    # The request at 23:45 UTC on 03-03 (a local hour across UTC midnight) is on 03-03.
    (line,) = [x for x in result.lines if (x.day, x.unit) == (date(2026, 3, 3), "input")]
    assert (line.kakin_cost, line.provider_cost, line.verdict) == (Decimal("2.25"), Decimal("2.25"), "match")
    assert result.totals["outside_kakin"] == Decimal("0.05")
    # Without the accounts, the other project's traffic is a model kakin never saw.
    everything = Reconciler(ledger).compare(acme, "openai")
    assert ("2026-03-02", "gpt-4o-mini", "input", "missing_in_kakin") in flagged(everything)


def test_openai_usage_export_adds_token_counts_and_hides_no_missing_day(ledger: Ledger, acme: str) -> None:
    store = BillStore(ledger)
    store.import_bill(acme, "openai", sample("openai_costs.json"))
    usage = store.import_bill(acme, "openai", sample("openai_usage_completions.json"))
    assert (usage.format, usage.rows, usage.lines) == ("openai.usage", 8, 24)
    result = Reconciler(ledger).compare(acme, "openai", accounts=["proj_kakin"])
    # The usage report counts day 4's tokens; the costs have nothing for it: still missing.
    assert flagged(result) == {
        ("2026-03-04", "gpt-4o", "input", "missing_at_provider"),
        ("2026-03-04", "gpt-4o", "cached_input", "missing_at_provider"),
        ("2026-03-04", "gpt-4o", "output", "missing_at_provider"),
        ("2026-03-06", "gpt-4o", "output", "provider_higher"),
        ("2026-03-07", "gpt-4o", "output", "provider_higher"),
    }
    tokens = {
        (x.day.day, x.unit): (x.kakin_tokens, x.provider_tokens) for x in result.lines if x.model == "gpt-4o"
    }
    assert tokens[(1, "input")] == (800_000, 800_000)
    assert tokens[(3, "cached_input")] == (200_000, 200_000)
    assert tokens[(4, "input")] == (900_000, 900_000)  # the 00:10 request of the split hour is on 03-04
    cache = {u.unit: u for u in result.units}["cached_input"]
    assert (cache.kakin_tokens, cache.provider_tokens) == (7 * 200_000, 7 * 200_000)


def test_anthropic_cache_read_undercount_and_midnight_request(ledger: Ledger, acme: str) -> None:
    store = BillStore(ledger)
    store.import_bill(acme, "anthropic", sample("anthropic_cost_report.json"), "cost_report.json")
    store.import_bill(acme, "anthropic", sample("anthropic_usage_report.json"), "usage_report.json")
    result = Reconciler(ledger).compare(acme, "anthropic")
    assert flagged(result) == {
        ("2026-03-02", "claude-sonnet-4", "cached_input", "provider_higher"),
        ("2026-03-02", "claude-sonnet-4", "input", "kakin_higher"),
        ("2026-03-03", "claude-sonnet-4", "cached_input", "provider_higher"),
        ("2026-03-03", "claude-sonnet-4", "input", "kakin_higher"),
    }
    assert explained(result) == {
        ("2026-03-05", "claude-sonnet-4", "output", "day_boundary"),
        ("2026-03-06", "claude-sonnet-4", "output", "day_boundary"),
    }
    cache = {u.unit: u for u in result.units}["cached_input"]
    assert result.units[0].unit == "cached_input"  # cache categories come first
    assert (cache.kakin_tokens, cache.provider_tokens) == (5 * 500_000 + 2 * 300_000, 7 * 500_000)
    assert (cache.kakin_cost, cache.provider_cost) == (Decimal("0.93"), Decimal("1.05"))
    # The simulator's claude-haiku is on no Anthropic bill and is not compared.
    assert all(line.model == "claude-sonnet-4" for line in result.lines)


def test_google_model_kakin_never_saw_with_credits_and_rounding(ledger: Ledger, acme: str) -> None:
    imported = BillStore(ledger).import_bill(
        acme, "google", sample("google_billing_export.jsonl"), "export.jsonl"
    )
    assert (imported.rows, imported.skipped) == (37, 7)  # Compute Engine rows left out
    result = Reconciler(ledger).compare(acme, "google")
    assert flagged(result) == {("2026-03-02", "gemini-2.5-pro", "input", "missing_in_kakin")}
    labels = explained(result)
    assert {label for *_, label in labels} == {"credit", "rounding"}
    assert len([x for x in labels if x[3] == "credit"]) == 7
    assert result.totals["corrections"] == Decimal("-0.35") + Decimal("-0.000123")
    assert result.totals["kakin"] == 7 * Decimal("0.875")


def test_days_no_bill_covers_are_not_compared(ledger: Ledger, acme: str) -> None:
    # Two exports: 03-01 and 03-03 only. kakin's 03-02 is in neither, so it is not "missing".
    document = json.loads(sample("openai_costs.json"))
    first, third = document[0]["data"][0], document[0]["data"][2]
    for bucket in (first, third):
        BillStore(ledger).import_bill(acme, "openai", json.dumps({"data": [bucket]}).encode())
    result = Reconciler(ledger).compare(acme, "openai", accounts=["proj_kakin"], lag_days=0)
    assert {line.day.day for line in result.lines} == {1, 3}
    assert not result.flagged


def test_a_period_narrows_the_comparison_and_no_bill_is_not_found(ledger: Ledger, acme: str) -> None:
    BillStore(ledger).import_bill(acme, "openai", sample("openai_costs.json"))
    result = Reconciler(ledger).compare(
        acme, "openai", start="2026-03-05", end="2026-03-06", accounts=["proj_kakin"]
    )
    assert {line.day for line in result.lines} == {date(2026, 3, 5)}
    assert not result.flagged
    with pytest.raises(NotFound, match="no anthropic bill"):
        Reconciler(ledger).compare(acme, "anthropic")

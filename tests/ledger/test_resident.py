"""Batches reuse the rows earlier batches read (on SQLite); whatever changes them elsewhere —
this ledger's other methods, another ledger on the same database — is seen at once."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest

from kakin.errors import Conflict
from kakin.ledger import (
    BudgetExceeded,
    KeyRevoked,
    Ledger,
    PostOp,
    ReserveOp,
    Scope,
    SettleOp,
    UsageDetail,
    checkpoints,
)
from kakin.ledger.work import Work

USAGE = UsageDetail(provider="sim", input_tokens=10, output_tokens=5, cost_items=[{"n": 1}])


def post(ledger: Ledger, scope: Scope, key: str) -> None:
    result = ledger.batch([PostOp(scope, Decimal("0.1"), USAGE, key, 15)])[0]
    assert not isinstance(result, Exception), result


def test_changes_made_between_batches_are_seen(ledger: Ledger, setup) -> None:
    org, _project, key, scope = setup
    post(ledger, scope, "a")
    budget = ledger.set_budget(org.id, limit="0.15", hard_cap=True)
    (refused,) = ledger.batch([ReserveOp(scope, Decimal("0.1"), 1, "b")])
    assert isinstance(refused, BudgetExceeded)
    post(ledger, scope, "c")
    assert ledger.budget_status(budget.id).spent == Decimal("0.2")
    ledger.revoke_key(key.id)
    (revoked,) = ledger.batch([ReserveOp(scope, Decimal("0.01"), 1, "d")])
    assert isinstance(revoked, KeyRevoked)
    assert ledger.balance(org.id).spent == Decimal("0.2")
    assert ledger.reconcile(org.id).ok


def test_another_ledger_on_the_same_database_is_seen(ledger: Ledger, setup, db_url, clock) -> None:
    org, _project, _key, scope = setup
    ledger.grant(org.id, "promotional", "1", idempotency_key="promo")
    post(ledger, scope, "a")
    with Ledger.open(db_url, clock=clock) as other:
        other.batch([PostOp(scope, Decimal("0.2"), USAGE, "b", 15)])
        other.set_budget(org.id, limit="0.35", hard_cap=True)
    post(ledger, scope, "c")  # burns the promotional credit the other ledger already drew on
    (refused,) = ledger.batch([ReserveOp(scope, Decimal("0.1"), 1, "d")])
    assert isinstance(refused, BudgetExceeded)
    balance = ledger.balance(org.id)
    assert (balance.spent, balance.credit) == (Decimal("0.4"), Decimal("0.6"))
    assert ledger.reconcile(org.id).ok


def test_a_failed_batch_leaves_no_trace_in_later_ones(ledger: Ledger, setup, monkeypatch) -> None:
    org, _project, _key, scope = setup
    post(ledger, scope, "a")

    def disk_full(self: Work) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patch:  # the write fails after the charge was applied in memory
        patch.setattr(Work, "flush", disk_full)
        with pytest.raises(OSError):
            ledger.batch([PostOp(scope, Decimal("0.1"), USAGE, "b", 15)])
    post(ledger, scope, "c")
    assert ledger.balance(org.id).spent == Decimal("0.2")
    assert ledger.reconcile(org.id).ok


def test_a_hold_closed_by_another_ledger_cannot_be_settled_here(ledger: Ledger, setup, db_url, clock) -> None:
    org, _project, _key, scope = setup
    (held,) = ledger.batch([ReserveOp(scope, Decimal("0.2"), 10, "r")])
    with Ledger.open(db_url, clock=clock) as other:
        other.void(held.id)  # type: ignore[union-attr]
    (settled,) = ledger.batch([SettleOp(held.id, Decimal("0.1"), USAGE)])  # type: ignore[union-attr]
    assert isinstance(settled, Conflict) and "voided" in str(settled)
    assert ledger.balance(org.id).held == 0
    assert ledger.reconcile(org.id).ok


def test_settings_changed_during_a_batch_are_stored(ledger: Ledger, db_url, clock) -> None:
    """Charges write an organisation's counters only; a setting the batch changes (here a tier
    promotion that came due) is written with them."""
    org = ledger.create_org("tiered", tier_rules="openai", phone="+81 90-1234-5678")
    project = ledger.create_project(org.id, "web")
    scope = Scope(org.id, project.id, None, "gpt-4o-mini")
    ledger.grant(org.id, "prepaid", "50", idempotency_key="paid")
    post(ledger, scope, "a")
    assert ledger.tier_of(org.id).tier.name == "Tier 1"  # type: ignore[union-attr]
    promoted_at = clock.advance(days=8)
    post(ledger, scope, "b")  # the promotion to Tier 2 comes due in this batch
    with Ledger.open(db_url, clock=clock) as other:
        stored = other.get_org(org.id)
        assert (stored.tier, stored.phone) == ("Tier 2", "+819012345678")
        assert other.tier_of(org.id).since == promoted_at
        assert other.balance(org.id).spent == Decimal("0.2")
    assert ledger.reconcile(org.id).ok


def test_commits_reach_the_database_file_without_waiting_for_the_log_to_fill(
    ledger: Ledger, setup, db_url, monkeypatch
) -> None:
    """Checkpoints run on a thread of their own: the charges are copied from the write-ahead
    log into the database file shortly after the last commit, the log far below its threshold."""
    if ledger.backend != "sqlite":
        pytest.skip("SQLite's write-ahead log")
    monkeypatch.setattr(checkpoints, "IDLE_SECONDS", 0.05)
    _org, _project, _key, scope = setup
    for n in range(5):
        post(ledger, scope, f"k{n}")
    path = Path(db_url.removeprefix("sqlite:///"))
    found, deadline = 0, time.monotonic() + 10
    while True:  # the database file alone (a copy without its log) holds every charge
        copy = path.with_name("copy.db")
        copy.write_bytes(path.read_bytes())
        with closing(sqlite3.connect(copy)) as alone:
            tables = alone.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'reservations'")
            if tables.fetchone()[0]:
                found = alone.execute("SELECT count(*) FROM reservations").fetchone()[0]
        if found == 5 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert found == 5
    ledger.close()
    assert not [t for t in threading.enumerate() if t.name == "kakin-checkpoints"]

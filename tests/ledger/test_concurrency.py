"""Fifty concurrent requests against one hard cap, through two independent ledger
instances (two engines, as two gateway processes would have): the total posted never
passes the cap, and everything reconciles."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

from kakin.errors import KakinError
from kakin.ledger import BudgetExceeded, CreditExhausted, Ledger, Scope, UsageDetail
from kakin.ledger.errors import UnboundedOutputBusy

THREADS = 50


def test_fifty_concurrent_reservations_never_pass_a_hard_cap(ledger: Ledger, db_url: str, clock) -> None:
    org = ledger.create_org("busy", payment_label="card")
    project = ledger.create_project(org.id, "api")
    scope = Scope(org.id, project.id, None, "gpt-4o-mini")
    cap = ledger.set_budget(org.id, period="month", limit="1", hard_cap=True)
    second = Ledger.open(db_url, clock=clock, migrate=False)
    barrier = threading.Barrier(THREADS)
    refused: list[KakinError] = []
    failures: list[BaseException] = []
    settled: list[Decimal] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        instance = ledger if n % 2 else second
        try:
            barrier.wait()
            for attempt in range(2):
                try:
                    held = instance.reserve(scope, "0.05", 500, idempotency_key=f"t{n}-{attempt}")
                except (BudgetExceeded, CreditExhausted) as error:
                    with lock:
                        refused.append(error)
                    continue
                result = instance.settle(
                    held.id, "0.05", UsageDetail(provider="sim", input_tokens=400, output_tokens=100)
                )
                with lock:
                    settled.append(result.charged)
        except BaseException as error:  # surfaced below
            failures.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    second.close()
    assert failures == []
    total = sum(settled, Decimal(0))
    status = ledger.budget_status(cap.id)
    assert total == status.spent == Decimal(1)  # every refusal came when the cap was truly full
    assert len(settled) == 20 and len(refused) == 2 * THREADS - 20
    assert ledger.balance(org.id).held == 0
    report = ledger.reconcile(org.id)
    assert report.ok, report.mismatches


def test_concurrent_unbounded_reservations_pass_a_hard_cap_by_at_most_one(
    ledger: Ledger, db_url: str, clock
) -> None:
    """Fifty requests whose output is unbounded, each costing three times its hold, through
    two ledger instances: they are admitted one at a time (the others told to wait), so the
    cap is passed by less than one request's cost. Admitted together, as their holds fit, 20
    would post three times the cap."""
    org = ledger.create_org("open-ended", payment_label="card")
    project = ledger.create_project(org.id, "api")
    scope = Scope(org.id, project.id, None, "gpt-4o-mini")
    cap = ledger.set_budget(org.id, period="month", limit="1", hard_cap=True)
    second = Ledger.open(db_url, clock=clock, migrate=False)
    barrier = threading.Barrier(THREADS)
    waited: list[UnboundedOutputBusy] = []
    failures: list[BaseException] = []
    settled: list[Decimal] = []
    lock = threading.Lock()
    cost = Decimal("0.15")

    def worker(n: int) -> None:
        instance = ledger if n % 2 else second
        try:
            barrier.wait()
            while True:
                try:
                    held = instance.reserve(scope, "0.05", 500, idempotency_key=f"u{n}", unbounded=True)
                except UnboundedOutputBusy as busy:
                    with lock:
                        waited.append(busy)
                    time.sleep(0.001)
                    continue
                except BudgetExceeded:
                    return
                # Upstream for a moment, as a request is: the others try meanwhile (else one
                # thread could hold and settle within its time slice, and none would be told to wait).
                time.sleep(0.01)
                result = instance.settle(
                    held.id, cost, UsageDetail(provider="sim", input_tokens=400, output_tokens=1500)
                )
                with lock:
                    settled.append(result.charged)
                return
        except BaseException as error:  # surfaced below
            failures.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    second.close()
    assert failures == []
    total = sum(settled, Decimal(0))
    assert total == ledger.budget_status(cap.id).spent
    assert Decimal(1) < total <= Decimal(1) + cost  # the cap, then at most one request past it
    assert waited and all(w.status == 429 and w.retry_after_seconds == 1 for w in waited)
    assert ledger.balance(org.id).held == 0
    report = ledger.reconcile(org.id)
    assert report.ok, report.mismatches

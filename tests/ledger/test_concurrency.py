"""Fifty concurrent requests against one hard cap, through two independent ledger
instances (two engines, as two gateway processes would have): the total posted never
passes the cap, and everything reconciles."""

from __future__ import annotations

import threading
from decimal import Decimal

from kakin.errors import KakinError
from kakin.ledger import BudgetExceeded, CreditExhausted, Ledger, Scope, UsageDetail

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

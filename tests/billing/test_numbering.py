"""Numbers are gapless per organisation under concurrent issuing: threads and processes issue
the same twelve cycles at once, in different orders, and credit notes race each other."""

from __future__ import annotations

import multiprocessing
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

from kakin.billing import Billing
from kakin.ledger import Ledger, Scope

from .conftest import Clock, post, token_items

AFTER_THE_YEAR = datetime(2026, 1, 3, 0, 0, tzinfo=UTC)
MONTHS = [f"2025-{m:02d}" for m in range(1, 13)]


def after_the_year() -> datetime:
    return AFTER_THE_YEAR


def issue_in_a_process(url: str, org_id: str, seed: int) -> list[str]:
    with Ledger.open(url, clock=after_the_year, migrate=False) as ledger:
        billing = Billing(ledger)
        months = random.Random(seed).sample(MONTHS, len(MONTHS))
        return [done.invoice.number or "" for month in months for done in billing.issue(org_id, month)]


def test_concurrent_issuing_numbers_every_cycle_once_without_gaps(
    db_url: str, ledger: Ledger, clock: Clock
) -> None:
    clock.now = datetime(2025, 1, 1, 0, 0, tzinfo=UTC)
    org = ledger.create_org("racers", timezone="Europe/Berlin", payment_label="card")
    project = ledger.create_project(org.id, "p")
    scope = Scope(org.id, project.id, None, "gpt-4o")
    spent = Decimal(0)
    for n in range(24):
        clock.now = datetime(2025, 1 + n // 2, 10 + n % 2 * 10, tzinfo=UTC)
        spent += post(ledger, scope, token_items("0.0000025", 1000 + n), f"c{n}")
    clock.now = AFTER_THE_YEAR
    billing = Billing(ledger)

    def in_a_thread(seed: int) -> list[str]:
        months = random.Random(seed).sample(MONTHS, len(MONTHS))
        return [done.invoice.number or "" for month in months for done in billing.issue(org.id, month)]

    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as processes, ThreadPoolExecutor(6) as threads:
        far = [processes.apply_async(issue_in_a_process, (db_url, org.id, seed)) for seed in (101, 102)]
        near = [threads.submit(in_a_thread, seed) for seed in range(6)]
        seen = [f.result() for f in near] + [f.get(timeout=300) for f in far]
    invoices = billing.invoices(org.id)
    issued = [i for i in invoices if i.status == "issued"]
    assert [i.month for i in issued] == MONTHS
    assert [i.number for i in issued] == [f"INV-{n:06d}" for n in range(1, 13)]
    assert all(set(numbers) <= {i.number for i in issued} for numbers in seen)
    assert sum(i.charges for i in invoices) == spent == ledger.balance(org.id).spent
    assert all(i.charges > 0 for i in issued)

    last = issued[-1].number or ""
    with ThreadPoolExecutor(8) as threads:
        notes = list(
            threads.map(
                lambda n: billing.notes.issue(
                    org.id, last, reason=f"race {n}", amount="0.0001", settlement="refund"
                )[0],
                range(16),
            )
        )
    assert sorted(note.number for note in notes) == [f"CN-{n:06d}" for n in range(1, 17)]

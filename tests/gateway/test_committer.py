"""Group commit through a writer process and a writer thread: the same answers, refusals that
keep their fields across the process boundary, queued work committed at stop, and a writer
that dies answered with a clear error instead of a hang."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from kakin.errors import KakinError
from kakin.gateway.committer import LedgerUnavailable, ProcessCommitter, ThreadCommitter, make_committer
from kakin.ledger import BudgetExceeded, Ledger, PostOp, ReserveOp, Scope, UsageDetail, VoidOp

USAGE = UsageDetail(provider="sim", input_tokens=10, output_tokens=5)


@pytest.fixture()
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield ledger
    ledger.close()


def _scope(ledger: Ledger) -> Scope:
    org = ledger.create_org("writer", payment_label="card")
    project = ledger.create_project(org.id, "p")
    ledger.set_budget(org.id, limit="1", hard_cap=True)
    return Scope(org.id, project.id, None, "m")


def test_refusals_keep_their_fields_when_pickled() -> None:
    error = BudgetExceeded("no room", budget_id="b-1", period_end=None)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.budget_id, copy.status) == (BudgetExceeded, "no room", "b-1", 402)


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_both_writers_commit_and_refuse_alike(ledger: Ledger, writer: str) -> None:
    scope = _scope(ledger)
    committer = make_committer(ledger, writer=writer, max_batch=8)
    assert isinstance(committer, ProcessCommitter if writer == "process" else ThreadCommitter)

    async def run() -> None:
        await committer.start()
        try:
            posts = [PostOp(scope, Decimal("0.01"), USAGE, f"req-{i}", 15) for i in range(40)]
            settlements = await asyncio.gather(*(committer.submit(op) for op in posts))
            assert sum(s.charged for s in settlements) == Decimal("0.40")
            with pytest.raises(BudgetExceeded) as refused:
                await committer.submit(ReserveOp(scope, Decimal("0.7"), 0, "too-much", 60))
            assert refused.value.budget_id and refused.value.status == 402
            held = await committer.submit(ReserveOp(scope, Decimal("0.1"), 0, "held", 60))
            committer.enqueue(VoidOp(held.id))  # not awaited: committed before stop returns
            view = await committer.call(Ledger.account_view, scope.org_id)
            assert view.org_id == scope.org_id
        finally:
            await committer.stop()

    asyncio.run(run())
    assert len(ledger.usage(scope.org_id)) == 40
    assert ledger.get_reservation(held_id(ledger, scope)).status == "voided"
    assert ledger.reconcile(scope.org_id).ok


def held_id(ledger: Ledger, scope: Scope) -> str:
    return ledger.reserve(scope, "0.1", idempotency_key="held").id  # a repeat returns the first


def test_a_view_from_the_writer_process_explains_refusals(ledger: Ledger) -> None:
    org = ledger.create_org("empty")
    project = ledger.create_project(org.id, "p")
    committer = ProcessCommitter(str(ledger.engine.url), hold_seconds=900)

    async def load() -> object:
        await committer.start()
        try:
            return await committer.call(Ledger.account_view, org.id)
        finally:
            await committer.stop()

    view = asyncio.run(load())
    view.read_journal_through(ledger)  # type: ignore[attr-defined]
    with pytest.raises(KakinError, match="out of credit"):
        view.hold(Scope(org.id, project.id, None, "m"), "0.01", 1)  # type: ignore[attr-defined]


def test_a_writer_that_dies_fails_its_requests_clearly(ledger: Ledger) -> None:
    scope = _scope(ledger)
    committer = ProcessCommitter(str(ledger.engine.url), hold_seconds=900)

    async def run() -> None:
        await committer.start()
        assert committer._process is not None
        committer._process.kill()
        with pytest.raises(LedgerUnavailable, match="ledger writer process stopped"):
            await asyncio.wait_for(committer.submit(PostOp(scope, Decimal("0.01"), USAGE, "lost", 1)), 10)
        with pytest.raises(LedgerUnavailable):
            await committer.submit(PostOp(scope, Decimal("0.01"), USAGE, "after", 1))
        await committer.stop()

    asyncio.run(run())
    assert ledger.usage(scope.org_id) == []


def test_a_ledger_on_its_own_clock_gets_a_thread(tmp_path: Path) -> None:
    ledger = Ledger.open(
        f"sqlite:///{tmp_path / 'clocked.db'}", clock=lambda: datetime(2026, 1, 1, tzinfo=UTC)
    )
    try:
        assert isinstance(make_committer(ledger, writer="process", max_batch=8), ThreadCommitter)
        assert isinstance(make_committer(ledger, writer="thread", max_batch=8), ThreadCommitter)
    finally:
        ledger.close()

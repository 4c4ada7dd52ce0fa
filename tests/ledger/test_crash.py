"""A process killed in the middle of its work loses nothing it acknowledged, and what it
left behind still reconciles: every transaction is all-or-nothing and durable on commit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from tests.ledger.test_rollups import every_table, rebuilt

from kakin.ledger import Ledger

CHILD = textwrap.dedent(
    """
    import sys
    from decimal import Decimal
    from kakin.ledger import Ledger, ReserveOp, Scope, SettleOp, UsageDetail

    url, org_id, project_id = sys.argv[1:4]
    ledger = Ledger.open(url, migrate=False)
    scope = Scope(org_id, project_id, None, "gpt-4o-mini")
    usage = UsageDetail(provider="sim", input_tokens=10, output_tokens=5)
    i = 0
    while True:
        held = ledger.reserve(scope, "0.01", 15, idempotency_key=f"k{i}")
        ops = [SettleOp(held.id, Decimal("0.004"), usage)]
        ops += [ReserveOp(scope, Decimal("0.01"), 15, f"k{i}-{j}") for j in range(20)]
        ledger.batch(ops)
        print(held.id, flush=True)  # acknowledged: its settle committed
        i += 1
    """
)


def test_a_killed_writer_loses_nothing_acknowledged_and_still_reconciles(ledger: Ledger, db_url: str) -> None:
    org = ledger.create_org("crashy", payment_label="card")
    project = ledger.create_project(org.id, "p")
    ledger.set_budget(org.id, limit="1000", hard_cap=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, db_url, org.id, project.id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    acknowledged: list[str] = []
    assert child.stdout is not None
    deadline = time.monotonic() + 30
    while len(acknowledged) < 15 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        acknowledged.append(line.strip())
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert len(acknowledged) >= 15, child.stderr.read() if child.stderr else ""
    recorded = {u.reservation_id for u in ledger.usage(org.id)}
    assert set(acknowledged) <= recorded
    report = ledger.reconcile(org.id)
    assert report.ok, report.mismatches
    assert every_table(ledger) == rebuilt(ledger)  # every rollup row = its usage records
    balance = ledger.balance(org.id)
    assert balance.spent == sum((u.cost for u in ledger.usage(org.id)), 0)

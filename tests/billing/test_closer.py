"""``kakin serve`` closes cycles by itself: started after a cycle's grace period, the served
application issues it without being asked; the cycles of the month in progress stay drafts."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from kakin.billing import Billing
from kakin.config import load_settings
from kakin.ledger import Ledger, Scope
from kakin.server import start_in_thread

from .conftest import Clock, post, token_items


def test_serve_issues_cycles_past_their_grace_period(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kakin.db'}"
    clock = Clock(datetime(2026, 3, 3, tzinfo=UTC))
    settings = load_settings(
        env={
            "KAKIN_DATABASE_URL": url,
            "KAKIN_ADMIN_KEY": "k" * 24,
            "KAKIN_BILLING__CLOSE_INTERVAL_SECONDS": "1",
        }
    )
    ledger = Ledger.open(url, clock=clock)
    org = ledger.create_org("closer", timezone="Asia/Tokyo", payment_label="card")
    project = ledger.create_project(org.id, "p")
    charged = post(ledger, Scope(org.id, project.id, None, "gpt-4o"), token_items("0.0000025", 1000), "a")
    clock.now = datetime(2026, 4, 1, 14, 0, tzinfo=UTC)  # 23:00 on 1 April in Tokyo: March still in grace
    running = start_in_thread(settings, ledger, close_cycles=True)
    try:
        time.sleep(2.5)  # at least two rounds
        assert [i.status for i in Billing(ledger).invoices(org.id)] == ["draft", "draft"]
        clock.now = datetime(2026, 4, 1, 15, 0, tzinfo=UTC)  # the grace period is over
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            invoices = Billing(ledger).invoices(org.id)
            if invoices[0].status == "issued":
                break
            time.sleep(0.2)
        assert [(i.month, i.status, i.number) for i in invoices] == [
            ("2026-03", "issued", "INV-000001"),
            ("2026-04", "draft", None),
        ]
        assert invoices[0].charges == charged
    finally:
        running.stop()
        ledger.close()

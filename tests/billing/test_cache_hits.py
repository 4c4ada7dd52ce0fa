"""Requests answered from kakin's response cache cost nothing: the invoice itemises them as a
zero line of their model (how many, at no charge), the same in every face, never as
"other (not itemised)"."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

from kakin.billing import Billing
from kakin.billing.render import invoice_csv, invoice_html, invoice_json
from kakin.ledger import Ledger, Scope, UsageDetail

from .conftest import Clock, post, token_items


def cache_hit(ledger: Ledger, scope: Scope, key: str, model: str = "gpt-4o") -> None:
    """Record a request answered from the response cache, as the gateway does."""
    hit = UsageDetail(provider="openai", cache_hit=True, cache_saved=Decimal("0.0025"))
    ledger.post(
        Scope(scope.org_id, scope.project_id, scope.key_id, model), Decimal(0), hit, idempotency_key=key
    )


def test_cache_hits_are_a_zero_line_of_their_model(ledger: Ledger, clock: Clock, billing: Billing) -> None:
    clock.now = datetime(2026, 2, 10, 0, 0, tzinfo=UTC)
    org = ledger.create_org("cached", timezone="Asia/Tokyo", payment_label="card")
    project = ledger.create_project(org.id, "web")
    scope = Scope(org.id, project.id, None, "gpt-4o")
    charged = post(ledger, scope, token_items("0.0000025", 1000), "served")
    for n in range(3):
        cache_hit(ledger, scope, f"hit{n}")
    cache_hit(ledger, scope, "mini-hit", model="gpt-4o-mini")
    clock.now = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    (issued,) = billing.issue(org.id, "2026-02")
    invoice = issued.invoice

    assert invoice.charges == charged and invoice.requests == 5
    hits = [line for line in invoice.lines if line.unit == "cache_hits"]
    assert [(h.model, h.quantity, h.unit_price, h.amount, h.requests, h.measure) for h in hits] == [
        ("gpt-4o", 3, 0, 0, 3, "request"),
        ("gpt-4o-mini", 1, 0, 0, 1, "request"),
    ]
    assert [line.unit for line in invoice.lines] == ["input", "cache_hits", "cache_hits"]

    rows = list(csv.DictReader(io.StringIO(invoice_csv(invoice))))
    assert [
        (r["model"], r["unit"], r["quantity"], r["unit_price_usd"], r["amount_usd"]) for r in rows[1:3]
    ] == [
        ("gpt-4o", "cache_hits", "3", "0", "0"),
        ("gpt-4o-mini", "cache_hits", "1", "0", "0"),
    ]
    lines = json.loads(invoice_json(invoice))["lines"]
    assert [
        (line["unit"], line["quantity"], line["unit_price"], line["amount_pico"]) for line in lines[1:]
    ] == [
        ("cache_hits", "3", "0", 0),
        ("cache_hits", "1", "0", 0),
    ]
    # The page, which the PDF draws too, names them in the reader's language.
    english, japanese = invoice_html(invoice, "en"), invoice_html(invoice, "ja")
    assert english.count("response cache hits (no charge)") == 2 and "not itemised" not in english
    assert japanese.count("レスポンスキャッシュからの応答（無料）") == 2 and "明細なし" not in japanese

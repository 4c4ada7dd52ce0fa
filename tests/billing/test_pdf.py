"""The PDF, rendered offline from the invoice's HTML: its text, read back with pypdf, holds the
Japanese names and labels and the totals."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import pypdf
import pytest

from kakin.billing import Billing
from kakin.billing.render import FONT, invoice_pdf
from kakin.config import BillingSettings, IssuerSettings
from kakin.ledger import Ledger, Scope
from kakin.money import format_amount

from .conftest import Clock, post, token_items

pytestmark = pytest.mark.skipif(not FONT.exists(), reason=f"{FONT} is missing: `make browser` installs it")


def text_of(pdf: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_the_pdf_says_it_in_japanese_with_the_totals(ledger: Ledger, clock: Clock) -> None:
    clock.now = datetime(2026, 2, 3, 0, 0, tzinfo=UTC)
    org = ledger.create_org(
        "株式会社さくらテック", timezone="Asia/Tokyo", currency="JPY", payment_label="card"
    )
    project = ledger.create_project(org.id, "検索")
    scope = Scope(org.id, project.id, None, "gpt-4o")
    ledger.grant(org.id, "promotional", "0.5", idempotency_key="キャンペーン", note="春のキャンペーン")
    charged = sum(
        (post(ledger, scope, token_items("0.0000025", 120_000, output=30_000), f"c{n}") for n in range(3)),
        Decimal(0),
    )
    clock.now = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    issuer = IssuerSettings(name="カキン株式会社", address="東京都千代田区1-1", registration="T1234567890123")
    billing = Billing(ledger, BillingSettings(issuer=issuer), rates={"JPY": Decimal("150")})
    (issued,) = billing.issue(org.id, "2026-02")
    invoice = issued.invoice
    pdf = invoice_pdf(invoice, "ja", digest=issued.content_hash)
    assert pdf.startswith(b"%PDF")
    text = text_of(pdf)
    for words in (
        "株式会社さくらテック",
        "御中",
        "カキン株式会社",
        "T1234567890123",
        "請求書",
        "INV-000001",
        "ご請求金額",
        "春のキャンペーン",
    ):
        assert words in text, words
    assert charged == Decimal("1.8") and invoice.credits_total == Decimal("0.5")
    for amount in (
        format_amount(charged, "USD", significant=6),
        "−$0.50",
        format_amount(invoice.due, "USD", significant=6),
    ):
        assert amount in text, amount
    assert "¥195" in text  # 1.30 USD at 150 JPY/USD, the amount due
    assert "150 JPY/USD" in text
    english = text_of(invoice_pdf(invoice, "en"))
    assert "Invoice" in english and "株式会社さくらテック" in english and "$1.30" in english

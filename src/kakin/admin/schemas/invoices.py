"""Invoices and credit notes as the admin API shows them: the document's own figures as exact
decimal strings (USD), the display currency at the rate the document records."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from kakin.admin.fields import Amount, IdempotencyKey, text
from kakin.admin.schemas.common import Strict, example, money, usd_field
from kakin.billing import CreditNote, Invoice
from kakin.money import decimal_str

Month = text(7, examples=["2026-03"], description="a billing cycle, YYYY-MM in the organisation's timezone")


class LineOut(BaseModel):
    section: Literal["current", "prior"] = Field(
        description="current: this cycle's usage; prior: charges posted after an earlier cycle's invoice"
    )
    month: str = Field(examples=["2026-03"], description="the cycle the usage belongs to")
    model: str = Field(examples=["gpt-4o"])
    unit: str = Field(
        examples=["input"],
        description="input, cached_input, cache_write, output, reasoning, images, audio, requests, other; "
        "cache_hits: requests answered from the response cache, at no charge",
    )
    component: str = Field(examples=["image 1024x1024 high"], description="as priced")
    measure: str = Field(
        examples=["token"], description="what the quantity counts: token, image, second, request"
    )
    quantity: str = Field(examples=["125000"])
    unit_price: str | None = Field(examples=["0.0000025"], description="USD per unit; null when not itemised")
    amount: str = usd_field("quantity × unit price, as charged", "0.3125")
    tier: str | None
    mode: str = Field(examples=["standard"])
    price_source: str = Field(examples=["genai-prices 0.0.40"])
    effective_from: str | None = Field(examples=["2026-01-01"], description="the date the price took effect")
    requests: int = Field(examples=[42])


class CreditOut(BaseModel):
    grant_id: str = Field(examples=["grt_01hx3k9v2a7bq4c8m0zp"])
    kind: str = Field(examples=["free_trial"])
    note: str
    amount: str = usd_field("credit this grant paid of the invoice", "5")


class InvoiceOut(BaseModel):
    status: Literal["draft", "issued"] = Field(examples=["issued"])
    id: str | None = Field(examples=["inv_01hx3k9v2a7bq4c8m0zp"], description="null for a draft")
    number: str | None = Field(examples=["INV-000004"], description="given when issued; null for a draft")
    org_id: str
    recipient: str = Field(examples=["acme"])
    month: str = Field(examples=["2026-03"])
    timezone: str = Field(examples=["Asia/Tokyo"])
    cycle_start: str = Field(examples=["2026-03-01T00:00:00+09:00"], description="local")
    cycle_end: str = Field(examples=["2026-04-01T00:00:00+09:00"], description="local, excluded")
    issued_at: str | None = Field(examples=["2026-04-02T00:00:00+00:00"])
    as_of: str = Field(examples=["2026-04-02T00:00:00+00:00"], description="when the figures were read")
    due_date: str | None = Field(examples=["2026-05-02"])
    requests: int = Field(examples=[1200])
    charges: str = usd_field("the ledger's charges for the usage covered", "12.5")
    credits: str = usd_field("paid from credit", "5")
    due: str = usd_field("postpaid: charges − credits", "7.5")
    payable: str = usd_field("the amount due rounded to the cent", "7.50")
    display_currency: str = Field(examples=["JPY"])
    display_rate: str = Field(examples=["150"], description="display currency units per USD")
    display_rate_source: str = Field(examples=["kakin.toml"])
    due_display: str = Field(examples=["1125"], description="the amount due in the display currency, rounded")
    lines: list[LineOut] | None = Field(None, description="absent in listings")
    credit_applied: list[CreditOut] | None = Field(
        None, description="per grant, in consumption order; absent in listings"
    )
    content_hash: str | None = Field(None, examples=["9f2c…"], description="SHA-256 of the issued document")

    @classmethod
    def of(cls, invoice: Invoice, *, full: bool = True, digest: str | None = None) -> InvoiceOut:
        return cls(
            status=invoice.status,  # type: ignore[arg-type]
            id=invoice.id,
            number=invoice.number,
            org_id=invoice.org_id,
            recipient=invoice.recipient.name,
            month=invoice.month,
            timezone=invoice.timezone,
            cycle_start=invoice.cycle_start,
            cycle_end=invoice.cycle_end,
            issued_at=invoice.issued_at,
            as_of=invoice.as_of,
            due_date=invoice.due_date,
            requests=invoice.requests,
            charges=money(invoice.charges),
            credits=money(invoice.credits_total),
            due=money(invoice.due),
            payable=money(invoice.payable),
            display_currency=invoice.display.currency,
            display_rate=decimal_str(invoice.display.per_usd),
            display_rate_source=invoice.display.source,
            due_display=decimal_str(invoice.display.convert(invoice.due_pico)),
            lines=[
                LineOut(
                    section=line.section,  # type: ignore[arg-type]
                    month=line.month,
                    model=line.model,
                    unit=line.unit,
                    component=line.component,
                    measure=line.measure,
                    quantity=decimal_str(line.quantity),
                    unit_price=None if line.unit_price is None else decimal_str(line.unit_price),
                    amount=money(line.amount),
                    tier=line.tier,
                    mode=line.mode,
                    price_source=line.price_source,
                    effective_from=line.effective_from,
                    requests=line.requests,
                )
                for line in invoice.lines
            ]
            if full
            else None,
            credit_applied=[
                CreditOut(grant_id=c.grant_id, kind=c.kind, note=c.note, amount=money(c.amount))
                for c in invoice.credits
            ]
            if full
            else None,
            content_hash=digest,
        )


class IssueCreate(Strict):
    month: Month = Field(
        description="the cycle to issue; the organisation's earlier unissued cycles are issued first"
    )

    model_config = example(month="2026-03")


class IssuedOut(BaseModel):
    number: str = Field(examples=["INV-000004"])
    month: str = Field(examples=["2026-03"])
    due: str = usd_field("amount due", "7.5")
    repeated: bool = Field(description="true when the cycle was already issued (nothing changed)")


class CreditNoteCreate(Strict):
    reason: text(500, examples=["duplicate requests billed twice"]) = Field(description="printed on the note")  # type: ignore[valid-type]
    settlement: Literal["credit", "refund"] = Field(
        "credit", description="credit: given back as promotional credit in the ledger; refund: paid back"
    )
    amount: Amount | None = Field(
        None,
        description="USD to credit; of the invoice, or of `line` (default: all that is left of the line)",
    )
    line: int | None = Field(None, ge=1, le=100_000, description="the invoice line it corrects, 1-based")
    quantity: Amount | None = Field(None, description="how much of the line's quantity, at its unit price")
    idempotency_key: IdempotencyKey | None = Field(None, description="or the Idempotency-Key header")

    model_config = example(reason="duplicate requests billed twice", line=2, quantity="1000")


class CreditNoteOut(BaseModel):
    id: str = Field(examples=["cn_01hx3k9v2a7bq4c8m0zp"])
    number: str = Field(examples=["CN-000001"])
    invoice_number: str = Field(examples=["INV-000004"])
    issued_at: str = Field(examples=["2026-04-05T00:00:00+00:00"])
    reason: str
    settlement: Literal["credit", "refund"]
    amount: str = usd_field("credited", "0.0025")
    line: int | None
    quantity: str | None
    repeated: bool = Field(False, description="true when an idempotent retry returned the first note")

    @classmethod
    def of(cls, note: CreditNote, repeated: bool = False) -> CreditNoteOut:
        return cls(
            id=note.id,
            number=note.number,
            invoice_number=note.invoice_number,
            issued_at=note.issued_at,
            reason=note.reason,
            settlement=note.settlement,  # type: ignore[arg-type]
            amount=money(note.amount),
            line=note.line,
            quantity=None if note.quantity is None else decimal_str(note.quantity),
            repeated=repeated,
        )

"""A cycle's life: the live draft, the grace period, issuing (once, in order, frozen), late
charges as prior-period adjustments, price changes as separate lines, credit notes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import update

from kakin.billing import Billing
from kakin.billing import schema as b
from kakin.billing.store import TamperedDocument
from kakin.errors import Conflict, InvalidInput, NotFound
from kakin.ledger import Ledger, Scope, UsageDetail
from kakin.money import to_pico

from .conftest import Clock, post, token_items


@pytest.fixture()
def tokyo(ledger: Ledger, clock: Clock) -> Scope:
    clock.now = datetime(2026, 2, 10, 0, 0, tzinfo=UTC)
    org = ledger.create_org("東京商事", timezone="Asia/Tokyo", currency="JPY", payment_label="card")
    project = ledger.create_project(org.id, "web")
    key, _ = ledger.create_key(project.id, "server")
    return Scope(org.id, project.id, key.id, "gpt-4o")


def test_draft_then_grace_then_issue_then_late_charge(
    ledger: Ledger, clock: Clock, billing: Billing, tokyo: Scope
) -> None:
    ledger.grant(tokyo.org_id, "promotional", "0.003", idempotency_key="promo")
    first = post(ledger, tokyo, token_items("0.0000025", 1000), "a")  # February, Tokyo
    clock.now = datetime(2026, 2, 27, 0, 0, tzinfo=UTC)
    held = ledger.reserve(tokyo, "0.05", idempotency_key="long")  # a request that starts in February
    draft = billing.invoice(tokyo.org_id, "2026-02")
    assert (draft.status, draft.number, draft.charges) == ("draft", None, first)
    with pytest.raises(Conflict, match="ends at 2026-03-01T00:00:00\\+09:00"):
        billing.issue(tokyo.org_id, "2026-02")
    # 2026-02-28 15:00 UTC is midnight in Tokyo: the cycle ends; its grace runs 24 hours.
    clock.now = datetime(2026, 2, 28, 20, 0, tzinfo=UTC)
    late = Decimal("0.00125")
    ledger.settle(
        held.id,
        late,
        UsageDetail(
            provider="openai", input_tokens=500, output_tokens=0, cost_items=token_items("0.0000025", 500)
        ),
    )
    assert billing.close_due() == []  # still in its grace period
    assert billing.invoice(tokyo.org_id, "2026-02").charges == first + late  # absorbed by the draft
    clock.now = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
    (issued,) = billing.close_due()
    invoice = issued.invoice
    assert (invoice.status, invoice.number, invoice.month) == ("issued", "INV-000001", "2026-02")
    assert invoice.charges == first + late
    assert invoice.credits_total == Decimal("0.003") and invoice.due == first + late - Decimal("0.003")
    assert invoice.issued_at == "2026-03-01T15:00:00+00:00" and invoice.due_date == "2026-04-01"
    # Issuing again is harmless.
    (again,) = billing.issue(tokyo.org_id, "2026-02")
    assert again.repeated and again.invoice == invoice and again.content_hash == issued.content_hash
    # A February request settled now is too late for February's invoice: March carries it.
    clock.now = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    older = ledger.reserve(tokyo, "0.05", idempotency_key="older")  # starts in March, settles in March
    ledger.settle(
        older.id,
        Decimal("0.0025"),
        UsageDetail(
            provider="openai", input_tokens=1000, output_tokens=0, cost_items=token_items("0.0000025", 1000)
        ),
    )
    clock.now = datetime(2026, 2, 28, 14, 0, tzinfo=UTC)
    stale = ledger.reserve(tokyo, "0.05", idempotency_key="stale")  # 23:00 on 28 February, Tokyo
    clock.now = datetime(2026, 3, 5, 0, 0, tzinfo=UTC)
    ledger.settle(
        stale.id,
        Decimal("0.01"),
        UsageDetail(
            provider="openai", input_tokens=4000, output_tokens=0, cost_items=token_items("0.0000025", 4000)
        ),
    )
    assert billing.invoice(tokyo.org_id, "INV-000001") == invoice  # frozen
    march = billing.invoice(tokyo.org_id, "2026-03")
    (prior,) = march.lines_in("prior")
    assert (prior.month, prior.amount, prior.quantity) == ("2026-02", Decimal("0.01"), 4000)
    assert march.charges == Decimal("0.0125")


def test_issuing_a_month_issues_the_earlier_ones_first(
    ledger: Ledger, clock: Clock, billing: Billing, tokyo: Scope
) -> None:
    post(ledger, tokyo, token_items("0.0000025", 1000), "a")
    clock.now = datetime(2026, 5, 2, 0, 0, tzinfo=UTC)
    done = billing.issue(tokyo.org_id, "2026-04")
    assert [(d.invoice.month, d.invoice.number) for d in done] == [
        ("2026-02", "INV-000001"),
        ("2026-03", "INV-000002"),
        ("2026-04", "INV-000003"),
    ]
    assert [i.status for i in billing.invoices(tokyo.org_id)] == ["issued", "issued", "issued", "draft"]
    with pytest.raises(NotFound):
        billing.issue(tokyo.org_id, "2025-12")  # before the organisation existed
    with pytest.raises(InvalidInput):
        billing.issue(tokyo.org_id, "2026-13")


def test_a_price_change_inside_the_month_gives_two_lines(
    ledger: Ledger, clock: Clock, billing: Billing, tokyo: Scope
) -> None:
    old = token_items("0.0000025", 1000)
    new = [
        dict(
            old[0],
            unit_price="0.000002",
            amount=str(Decimal("0.000002") * 3000),
            quantity="3000",
            effective_from="2026-02-15",
            source="override: kakin.toml",
        )
    ]
    post(ledger, tokyo, old, "a")
    clock.advance(days=7)
    post(ledger, tokyo, new, "b")
    post(ledger, tokyo, new, "c")
    lines = billing.invoice(tokyo.org_id, "2026-02").lines
    assert [
        (x.unit, x.quantity, x.unit_price, x.amount, x.effective_from, x.price_source) for x in lines
    ] == [
        ("input", 1000, Decimal("0.0000025"), Decimal("0.0025"), "2026-01-01", "test prices"),
        ("input", 6000, Decimal("0.000002"), Decimal("0.012"), "2026-02-15", "override: kakin.toml"),
    ]


def test_an_issued_invoice_never_changes(
    ledger: Ledger, clock: Clock, billing: Billing, tokyo: Scope
) -> None:
    grant = ledger.grant(tokyo.org_id, "prepaid", "1", idempotency_key="pre")
    held = ledger.reserve(tokyo, "0.05", idempotency_key="h")
    post(ledger, tokyo, token_items("0.0000025", 1000, output=300), "a")
    clock.now = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    (issued,) = billing.issue(tokyo.org_id, "2026-02")
    stored = ledger.read(lambda c: c.execute(b.invoices.select()).one())
    # More charges (one of them for February), a refund, other prices, another display rate.
    ledger.settle(held.id, Decimal("0.02"), UsageDetail(provider="openai", input_tokens=9, output_tokens=0))
    post(ledger, tokyo, [dict(token_items("0.0000025", 1000)[0], unit_price="0.00001", amount="0.01")], "b")
    ledger.refund(grant.id, Decimal("0.5"), idempotency_key="r")
    reread = Billing(ledger, rates={"JPY": Decimal("140")}).invoice(tokyo.org_id, "INV-000001")
    assert reread == issued.invoice
    assert billing.content_hash(tokyo.org_id, "INV-000001") == issued.content_hash
    assert ledger.read(lambda c: c.execute(b.invoices.select()).one()) == stored
    # The text is what was hashed: changed behind kakin's back, it is refused, not shown.
    doctored = stored.document.replace(str(issued.invoice.due_pico), str(issued.invoice.due_pico - 1))
    with ledger.engine.begin() as conn:
        conn.execute(update(b.invoices).values(document=doctored))
    with pytest.raises(TamperedDocument, match="INV-000001"):
        billing.invoice(tokyo.org_id, "INV-000001")


def test_credit_notes(ledger: Ledger, clock: Clock, billing: Billing, tokyo: Scope) -> None:
    post(ledger, tokyo, token_items("0.0000025", 2000, output=100), "a")  # 0.005 + 0.001
    clock.now = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    (issued,) = billing.issue(tokyo.org_id, "2026-02")
    before = ledger.balance(tokyo.org_id)
    request = {"reason": "誤課金: 重複リクエスト", "line": 1, "quantity": 1000, "idempotency_key": "k1"}
    note, repeated = billing.notes.issue(tokyo.org_id, "INV-000001", **request)
    assert (note.number, note.amount, repeated, note.invoice_number) == (
        "CN-000001",
        Decimal("0.0025"),
        False,
        "INV-000001",
    )
    assert ledger.balance(tokyo.org_id).credit == before.credit + Decimal("0.0025")  # credited back
    again, repeated = billing.notes.issue(tokyo.org_id, "INV-000001", **request)  # the same request again
    assert (
        repeated
        and again == note
        and ledger.balance(tokyo.org_id).credit == before.credit + Decimal("0.0025")
    )
    with pytest.raises(Conflict):
        billing.notes.issue(tokyo.org_id, "INV-000001", reason="other", amount="0.001", idempotency_key="k1")
    with pytest.raises(InvalidInput, match="1000 tokens left"):
        billing.notes.issue(tokyo.org_id, "INV-000001", reason="more", line=1, quantity=1001)
    refund, _ = billing.notes.issue(
        tokyo.org_id, "INV-000001", reason="goodwill", amount="0.0035", settlement="refund"
    )
    assert refund.number == "CN-000002" and ledger.balance(tokyo.org_id).credit == before.credit + Decimal(
        "0.0025"
    )
    with pytest.raises(InvalidInput, match="has 0 USD of charges left to credit"):
        billing.notes.issue(tokyo.org_id, "INV-000001", reason="too much", amount="0.000000000001")
    with pytest.raises(NotFound):
        billing.notes.issue(tokyo.org_id, "2026-03", reason="a draft", amount="1")
    assert [n.number for n in billing.notes.of(tokyo.org_id, "INV-000001")] == ["CN-000001", "CN-000002"]
    assert issued.invoice == billing.invoice(tokyo.org_id, "INV-000001")  # the invoice itself stands
    assert to_pico(refund.amount + note.amount) == issued.invoice.charges_pico


def test_a_timezone_change_between_cycles_counts_every_charge_once(
    ledger: Ledger, clock: Clock, billing: Billing, tokyo: Scope
) -> None:
    costs = Decimal(0)
    # 28 February 20:00 UTC is 1 March in Tokyo, but still February in Los Angeles.
    for n, at in enumerate((datetime(2026, 2, 20, tzinfo=UTC), datetime(2026, 2, 28, 20, tzinfo=UTC))):
        clock.now = at
        costs += post(ledger, tokyo, token_items("0.0000025", 1000 + n), f"a{n}")
    clock.now = datetime(2026, 3, 2, tzinfo=UTC)
    (february,) = billing.issue(tokyo.org_id, "2026-02")
    assert february.invoice.charges == Decimal("0.0025")
    ledger.update_org(tokyo.org_id, timezone="America/Los_Angeles")
    clock.now = datetime(2026, 3, 10, tzinfo=UTC)
    costs += post(ledger, tokyo, token_items("0.0000025", 3000), "b")
    clock.now = datetime(2026, 4, 3, tzinfo=UTC)
    *_, march = billing.issue(tokyo.org_id, "2026-03")  # February is already issued
    (prior,) = march.invoice.lines_in("prior")
    assert (prior.month, prior.quantity) == ("2026-02", 1001)  # the hours Los Angeles' March skips
    assert february.invoice.charges + march.invoice.charges == costs == ledger.balance(tokyo.org_id).spent

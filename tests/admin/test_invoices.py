"""Invoices over the admin API: a draft, issuing (409 before the month ends, idempotent
after), the issued document with its hash, credit notes with idempotency keys."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from fastapi.testclient import TestClient

from conftest import Clock
from kakin.admin import create_admin_app
from kakin.ledger import Ledger, Scope, UsageDetail

from .conftest import ADMIN_KEY, AUTH, unique
from .helpers import error_of, ok


def test_invoices_over_the_api(ledger: Ledger) -> None:
    clock = ledger.clock = Clock(datetime(2026, 4, 10, tzinfo=UTC))
    org = ledger.create_org(unique("請求テスト"), timezone="Asia/Tokyo", currency="JPY", payment_label="card")
    project = ledger.create_project(org.id, "web")
    item = {"component": "input", "quantity": "1000", "unit": "token", "unit_price": "0.0000025",
            "amount": "0.0025", "tier": None, "effective_from": "2026-01-01", "source": "test", "direction": "input"}  # fmt: skip
    usage = UsageDetail(provider="openai", input_tokens=1000, output_tokens=0, cost_items=[item])
    ledger.post(Scope(org.id, project.id, None, "gpt-4o"), Decimal("0.0025"), usage, idempotency_key="a")
    client = TestClient(create_admin_app(ledger, admin_key=ADMIN_KEY), headers=AUTH)
    listed = ok(client.get(f"/orgs/{org.id}/invoices"))["items"]
    assert [(i["status"], i["month"], i["charges"], i["number"]) for i in listed] == [
        ("draft", "2026-04", "0.0025", None)
    ]
    refused = error_of(client.post(f"/orgs/{org.id}/invoices", json={"month": "2026-04"}), 409)
    assert refused["type"] == "conflict" and "ends at 2026-05-01T00:00:00+09:00" in refused["message"]
    clock.now = datetime(2026, 5, 3, tzinfo=UTC)
    issued = ok(client.post(f"/orgs/{org.id}/invoices", json={"month": "2026-04"}), 201)["items"]
    assert issued == [{"number": "INV-000001", "month": "2026-04", "due": "0.0025", "repeated": False}]
    again = ok(client.post(f"/orgs/{org.id}/invoices", json={"month": "2026-04"}))["items"]
    assert again[0]["repeated"] is True
    document = ok(client.get(f"/orgs/{org.id}/invoices/INV-000001"))
    assert document == ok(client.get(f"/orgs/{org.id}/invoices/2026-04"))
    assert document["status"] == "issued" and len(document["content_hash"]) == 64
    assert [(x["model"], x["quantity"], x["unit_price"], x["amount"]) for x in document["lines"]] == [
        ("gpt-4o", "1000", "0.0000025", "0.0025")
    ]
    body = {"reason": "duplicate", "line": 1, "quantity": "400"}
    note = ok(
        client.post(
            f"/orgs/{org.id}/invoices/INV-000001/credit-notes", json=body, headers={"Idempotency-Key": "n1"}
        ),
        201,
    )
    assert (note["number"], note["amount"], note["repeated"]) == ("CN-000001", "0.001", False)
    repeat = ok(
        client.post(
            f"/orgs/{org.id}/invoices/INV-000001/credit-notes", json=body, headers={"Idempotency-Key": "n1"}
        )
    )
    assert repeat["repeated"] is True and repeat["number"] == "CN-000001"
    too_much = {"reason": "more", "amount": "1"}
    assert (
        "left to credit"
        in error_of(client.post(f"/orgs/{org.id}/invoices/INV-000001/credit-notes", json=too_much), 422)[
            "message"
        ]
    )
    error_of(client.post(f"/orgs/{org.id}/invoices/INV-000009/credit-notes", json=too_much), 404)
    assert [n["number"] for n in ok(client.get(f"/orgs/{org.id}/credit-notes"))["items"]] == ["CN-000001"]
    assert ok(client.get(f"/orgs/{org.id}/invoices/INV-000001")) == document  # the invoice stands

"""The whole path a custom integration takes, through HTTP, on SQLite and PostgreSQL:
organisation → project → key → grant → reserve → settle → balance, entries and usage."""

from __future__ import annotations

from decimal import Decimal

from fastapi.testclient import TestClient

from kakin.ledger import Ledger

from .helpers import grant, ok, tenant


def test_org_to_usage(client: TestClient, ledger: Ledger) -> None:
    t = tenant(client, currency="JPY", timezone="Asia/Tokyo")
    assert t.org["currency"] == "JPY" and t.org["timezone"] == "Asia/Tokyo"
    assert t.plaintext.startswith("kk-") and ledger.verify_key(t.plaintext).id == t.key["id"]
    assert t.key["status"] == "active" and "plaintext" not in t.key

    granted = grant(client, t.org["id"], "10", "g-1")
    assert granted["amount"] == "10" and granted["remaining"] == "10" and granted["kind"] == "prepaid"

    held = ok(
        client.post(
            "/reservations",
            json={
                "project_id": t.project["id"],
                "key_id": t.key["id"],
                "model": "gpt-4o-mini",
                "amount": "0.5",
                "tokens": 2000,
            },
            headers={"Idempotency-Key": "req-1"},
        ),
        201,
    )
    assert held["status"] == "held" and held["amount"] == "0.5"
    during = ok(client.get(f"/orgs/{t.org['id']}/balance"))
    assert (during["held"], during["available"]) == ("0.5", "9.5")

    settled = ok(
        client.post(
            f"/reservations/{held['id']}/settle",
            json={
                "amount": "0.000123456789",
                "provider": "openai",
                "input_tokens": 1000,
                "output_tokens": 200,
                "cached_tokens": 100,
                "request_id": "chatcmpl-1",
            },
        )
    )
    assert settled["charged"] == "0.000123456789" and settled["from_credit"] == "0.000123456789"
    assert settled["postpaid"] == "0"

    balance = ok(client.get(f"/orgs/{t.org['id']}/balance"))
    assert Decimal(balance["credit"]) == Decimal("10") - Decimal("0.000123456789")
    assert balance["held"] == "0" and balance["spent"] == "0.000123456789" and balance["paid"] == "10"
    assert [g["id"] for g in balance["grants"]] == [granted["id"]]
    assert balance["as_of"].endswith("Z")

    entries = ok(client.get(f"/orgs/{t.org['id']}/entries"))["items"]
    assert [(e["kind"], e["amount"]) for e in entries] == [("grant", "10"), ("charge", "-0.000123456789")]
    assert entries[1]["reservation_id"] == held["id"]

    usage = ok(client.get(f"/orgs/{t.org['id']}/usage", params={"key_id": t.key["id"]}))["items"]
    assert len(usage) == 1
    record = usage[0]
    assert (record["model"], record["input_tokens"], record["output_tokens"], record["cost"]) == (
        "gpt-4o-mini",
        1000,
        200,
        "0.000123456789",
    )
    assert ok(client.get(f"/orgs/{t.org['id']}/usage", params={"model": "other"}))["items"] == []

    assert ok(client.get(f"/orgs/{t.org['id']}/reconcile"))["ok"] is True
    assert ok(client.get(f"/reservations/{held['id']}"))["status"] == "settled"


def test_retried_reserve_and_settle_charge_once(client: TestClient) -> None:
    t = tenant(client)
    grant(client, t.org["id"], "1", "g-1")
    body = {"project_id": t.project["id"], "model": "m", "amount": "0.2", "idempotency_key": "req-7"}
    first = ok(client.post("/reservations", json=body), 201)
    again = ok(client.post("/reservations", json=body), 200)
    assert again["id"] == first["id"] and again["repeated"] is True
    settle = {"amount": "0.1", "provider": "openai", "input_tokens": 10}
    ok(client.post(f"/reservations/{first['id']}/settle", json=settle))
    repeat = ok(client.post(f"/reservations/{first['id']}/settle", json=settle))
    assert repeat["repeated"] is True
    assert ok(client.get(f"/orgs/{t.org['id']}/balance"))["spent"] == "0.1"


def test_void_releases_the_hold(client: TestClient) -> None:
    t = tenant(client)
    grant(client, t.org["id"], "1", "g-1")
    held = ok(
        client.post(
            "/reservations",
            json={"project_id": t.project["id"], "model": "m", "amount": "0.7"},
            headers={"Idempotency-Key": "r"},
        ),
        201,
    )
    voided = ok(client.post(f"/reservations/{held['id']}/void"))
    assert voided["status"] == "voided"
    balance = ok(client.get(f"/orgs/{t.org['id']}/balance"))
    assert (balance["held"], balance["available"], balance["spent"]) == ("0", "1", "0")


def test_postpaid_refund_and_payment(client: TestClient) -> None:
    t = tenant(client, payment_method="visa 4242")
    assert t.org["payment_method"] is True and t.org["payment_label"] == "visa 4242"
    prepaid = grant(client, t.org["id"], "2", "g-1")
    held = ok(
        client.post(
            "/reservations",
            json={"project_id": t.project["id"], "model": "m", "amount": "3"},
            headers={"Idempotency-Key": "r"},
        ),
        201,
    )
    settled = ok(
        client.post(f"/reservations/{held['id']}/settle", json={"amount": "3", "provider": "openai"})
    )
    assert (settled["from_credit"], settled["postpaid"]) == ("2", "1")
    paid = ok(client.post(f"/orgs/{t.org['id']}/payments", json={"amount": "1", "idempotency_key": "inv-1"}))
    assert (paid["kind"], paid["amount"]) == ("payment", "1")
    balance = ok(client.get(f"/orgs/{t.org['id']}/balance"))
    assert (balance["due"], balance["paid"]) == ("0", "3")

    second = grant(client, t.org["id"], "5", "g-2")
    refund = ok(client.post(f"/grants/{second['id']}/refund", json={"amount": "1.25"}))
    assert (refund["amount"], refund["remaining"]) == ("1.25", "3.75")
    grants = ok(client.get(f"/orgs/{t.org['id']}/grants"))["items"]
    assert {g["id"]: g["refunded"] for g in grants} == {prepaid["id"]: "0", second["id"]: "1.25"}


def test_budgets_and_tiers(client: TestClient) -> None:
    t = tenant(client, payment_method="card")
    budget = ok(
        client.post(
            f"/orgs/{t.org['id']}/budgets",
            json={"scope": "project", "scope_ref": t.project["id"], "limit": "1", "hard_cap": True},
        )
    )
    assert (budget["scope"], budget["limit"], budget["hard_cap"], budget["unit"]) == (
        "project",
        "1",
        True,
        "usd",
    )
    held = ok(
        client.post(
            "/reservations",
            json={"project_id": t.project["id"], "model": "m", "amount": "0.6"},
            headers={"Idempotency-Key": "r1"},
        ),
        201,
    )
    ok(client.post(f"/reservations/{held['id']}/settle", json={"amount": "0.6", "provider": "openai"}))
    status = ok(client.get(f"/budgets/{budget['id']}/status"))
    assert (status["spent"], status["remaining"], status["percent"], status["fired"]) == (
        "0.6",
        "0.4",
        "60",
        [50],
    )
    assert [s["budget"]["id"] for s in ok(client.get(f"/orgs/{t.org['id']}/budgets/status"))["items"]] == [
        budget["id"]
    ]
    assert [b["id"] for b in ok(client.get(f"/orgs/{t.org['id']}/budgets"))["items"]] == [budget["id"]]
    removed = ok(client.delete(f"/budgets/{budget['id']}"))
    assert removed["id"] == budget["id"]
    assert ok(client.get(f"/orgs/{t.org['id']}/budgets"))["items"] == []

    presets = {r["name"] for r in ok(client.get("/tier-rules"))["items"]}
    assert {"openai", "gemini"} <= presets
    tier = ok(client.put(f"/orgs/{t.org['id']}/tier", json={"rules": "openai"}))
    assert tier["rules"] == "openai" and tier["tier"]["name"] == "Free"
    assert tier["next_tier"]["name"] == "Tier 1" and tier["missing"]
    assert ok(client.get(f"/orgs/{t.org['id']}/tier"))["tier"]["name"] == "Free"
    ceiling = ok(client.get(f"/orgs/{t.org['id']}/budgets"))["items"]
    assert [(b["source"], b["limit"]) for b in ceiling] == [("tier", "100")]


def test_org_listing_update_and_payment_method(client: TestClient) -> None:
    t = tenant(client)
    names = [o["name"] for o in ok(client.get("/orgs"))["items"]]
    assert t.org["name"] in names
    assert ok(client.get(f"/orgs/{t.org['name']}"))["id"] == t.org["id"]
    updated = ok(
        client.patch(f"/orgs/{t.org['id']}", json={"timezone": "Europe/Paris", "phone": "+33 6 12 34 56 78"})
    )
    assert (updated["timezone"], updated["phone"], updated["currency"]) == (
        "Europe/Paris",
        "+33612345678",
        "USD",
    )
    cleared = ok(client.patch(f"/orgs/{t.org['id']}", json={"phone": None}))
    assert cleared["phone"] is None and cleared["timezone"] == "Europe/Paris"
    assert ok(client.put(f"/orgs/{t.org['id']}/payment-method", json={"label": "amex 1005"}))[
        "payment_method"
    ]
    removed = ok(client.delete(f"/orgs/{t.org['id']}/payment-method"))
    assert (removed["payment_method"], removed["payment_label"]) == (False, None)
    projects = ok(client.get(f"/orgs/{t.org['id']}/projects"))["items"]
    assert [p["id"] for p in projects] == [t.project["id"]]


def test_payment_keys_are_per_organisation(client: TestClient) -> None:
    """Two organisations may number their invoices alike."""
    for _ in range(2):
        t = tenant(client, payment_method="card")
        held = ok(
            client.post(
                "/reservations",
                json={"project_id": t.project["id"], "model": "m", "amount": "1"},
                headers={"Idempotency-Key": "r"},
            ),
            201,
        )
        ok(client.post(f"/reservations/{held['id']}/settle", json={"amount": "1", "provider": "openai"}))
        paid = ok(
            client.post(
                f"/orgs/{t.org['id']}/payments", json={"amount": "0.4", "idempotency_key": "inv-2025-05"}
            )
        )
        assert (paid["org_id"], paid["amount"]) == (t.org["id"], "0.4")
        again = ok(
            client.post(
                f"/orgs/{t.org['id']}/payments", json={"amount": "0.4", "idempotency_key": "inv-2025-05"}
            )
        )
        assert again["id"] == paid["id"]
        assert ok(client.get(f"/orgs/{t.org['id']}/balance"))["due"] == "0.6"

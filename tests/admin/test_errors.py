"""Bad input gets its precise status and message in the shared error shape, and changes
nothing — checked through the API on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi.testclient import TestClient

from .conftest import unique
from .helpers import error_of, grant, ok, tenant


def _state(client: TestClient, org_id: str) -> tuple[Any, ...]:
    """Everything a refused call must leave as it was."""
    balance = ok(client.get(f"/orgs/{org_id}/balance"))
    balance.pop("as_of")
    return (
        balance,
        ok(client.get(f"/orgs/{org_id}/entries"))["items"],
        ok(client.get(f"/orgs/{org_id}/grants"))["items"],
        ok(client.get(f"/orgs/{org_id}/usage"))["items"],
        ok(client.get(f"/orgs/{org_id}/budgets"))["items"],
        ok(client.get(f"/orgs/{org_id}")),
    )


BAD_GRANTS = [
    ({"kind": "prepaid", "amount": "-5"}, 422, "must not be negative"),
    ({"kind": "prepaid", "amount": 5.5}, 422, "decimal string"),
    ({"kind": "prepaid", "amount": "0"}, 422, "greater than zero"),
    ({"kind": "prepaid", "amount": "2000000"}, 422, "above the $1,000,000"),
    ({"kind": "prepaid", "amount": "99999999999"}, 422, "at most 7 before the point"),
    ({"kind": "prepaid", "amount": "1e3"}, 422, "USD decimal string"),
    ({"kind": "prepaid", "amount": "0.0000000000001"}, 422, "12 after it"),
    ({"kind": "gift", "amount": "5"}, 422, "kind"),
    ({"kind": "prepaid", "amount": "5", "expires_at": "next tuesday"}, 422, "ISO 8601"),
    ({"kind": "prepaid", "amount": "5", "expires_at": "2030-01-01T00:00:00"}, 422, "no timezone"),
    ({"kind": "prepaid", "amount": "5", "expires_at": "2020-01-01T00:00:00Z"}, 422, "must be after"),
    ({"kind": "prepaid", "amount": "5", "surprise": 1}, 422, "surprise"),
    ({"kind": "free_trial", "amount": "5"}, 422, "phone number"),
    ({"kind": "prepaid"}, 422, "amount: is required"),
]


def test_bad_grants_are_refused_and_write_nothing(client: TestClient) -> None:
    t = tenant(client)
    grant(client, t.org["id"], "1", "first")
    before = _state(client, t.org["id"])
    for body, status, says in BAD_GRANTS:
        response = client.post(f"/orgs/{t.org['id']}/grants", json=body, headers={"Idempotency-Key": "k2"})
        error = error_of(response, status)
        assert error["type"] == "invalid_request", body
        assert says in error["message"], (body, error["message"])
    assert _state(client, t.org["id"]) == before


def test_idempotency_key_rules(client: TestClient) -> None:
    t = tenant(client)
    first = grant(client, t.org["id"], "5", "promo-1")
    before = _state(client, t.org["id"])
    same = client.post(
        f"/orgs/{t.org['id']}/grants", json={"kind": "prepaid", "amount": "5", "idempotency_key": "promo-1"}
    )
    assert same.status_code == 200 and same.json()["id"] == first["id"] and same.json()["repeated"] is True
    other = client.post(
        f"/orgs/{t.org['id']}/grants",
        json={"kind": "prepaid", "amount": "6"},
        headers={"Idempotency-Key": "promo-1"},
    )
    assert "other parameters" in error_of(other, 409)["message"]
    missing = client.post(f"/orgs/{t.org['id']}/grants", json={"kind": "prepaid", "amount": "6"})
    assert "Idempotency-Key" in error_of(missing, 422)["message"]
    clash = client.post(
        f"/orgs/{t.org['id']}/grants",
        json={"kind": "prepaid", "amount": "6", "idempotency_key": "a"},
        headers={"Idempotency-Key": "b"},
    )
    assert "differ" in error_of(clash, 422)["message"]
    assert _state(client, t.org["id"]) == before


BAD_ORGS = [
    ({"timezone": "Mars/Olympus"}, "IANA timezone"),
    ({"currency": "DOLLARS"}, "3-letter ISO 4217"),
    ({"phone": "12345"}, "country code"),
    ({"phone": "+81 00-0000-0000"}, "not a valid number"),
    ({"tier_rules": "platinum"}, "no tier rules named"),
    ({"name": "org_sneaky"}, "must not look like an id"),
    ({"name": "bad\u0000name"}, "control characters"),
    ({"name": ""}, "must not be empty"),
]


def test_bad_organisations_are_not_created(client: TestClient) -> None:
    before = ok(client.get("/orgs"))["items"]
    for fields, says in BAD_ORGS:
        response = client.post("/orgs", json={"name": unique("org"), **fields})
        status = 404 if "tier_rules" in fields else 422
        assert says in error_of(response, status)["message"], fields
    assert ok(client.get("/orgs"))["items"] == before


def test_bad_updates_change_nothing(client: TestClient) -> None:
    t = tenant(client)
    before = ok(client.get(f"/orgs/{t.org['id']}"))
    for body in ({"timezone": "Nowhere"}, {"currency": "12"}, {"phone": "not a phone"}, {"timezone": 5}):
        error_of(client.patch(f"/orgs/{t.org['id']}", json=body), 422)
    assert ok(client.get(f"/orgs/{t.org['id']}")) == before


def test_duplicates_conflict(client: TestClient) -> None:
    t = tenant(client)
    assert "already exists" in error_of(client.post("/orgs", json={"name": t.org["name"]}), 409)["message"]
    response = client.post(f"/orgs/{t.org['id']}/projects", json={"name": "chatbot"})
    assert "already has a project" in error_of(response, 409)["message"]


def test_unknown_ids_are_404(client: TestClient) -> None:
    for method, path, body in [
        ("get", "/orgs/no-such-org", None),
        ("get", "/orgs/no-such-org/balance", None),
        ("post", "/projects/prj_missing/keys", {"name": "k"}),
        ("post", "/keys/key_missing/revoke", None),
        ("post", "/grants/grt_missing/refund", {}),
        ("post", "/reservations/res_missing/void", None),
        ("get", "/budgets/bud_missing/status", None),
        ("delete", "/alerts/channels/ach_missing", None),
    ]:
        error = error_of(client.request(method, path, json=body), 404)
        assert error["type"] == "not_found", (path, error)


def test_entries_reject_malformed_dates(client: TestClient) -> None:
    t = tenant(client)
    for params in (
        {"since": "yesterday"},
        {"until": "2025-13-01T00:00:00Z"},
        {"since": "2025-05-01T00:00:00"},
    ):
        error = error_of(client.get(f"/orgs/{t.org['id']}/entries", params=params), 422)
        assert "query." in error["message"]
    error_of(client.get(f"/orgs/{t.org['id']}/entries", params={"limit": 0}), 422)
    inside = ok(client.get(f"/orgs/{t.org['id']}/entries", params={"since": "2000-01-01T09:00:00+09:00"}))
    assert inside["items"] == []


def test_spending_refusals(client: TestClient) -> None:
    t = tenant(client)
    grant(client, t.org["id"], "1", "g")
    before = _state(client, t.org["id"])

    def reserve(amount: str, key: str, **extra: Any) -> Any:
        body = {"project_id": t.project["id"], "model": "m", "amount": amount, **extra}
        return client.post("/reservations", json=body, headers={"Idempotency-Key": key})

    error = error_of(reserve("2", "r1"), 402)
    assert error["type"] == "insufficient_credit" and "no payment method" in error["message"]
    ok(
        client.post(
            f"/orgs/{t.org['id']}/budgets", json={"limit": "0.5", "hard_cap": True, "thresholds": [100]}
        )
    )
    before = _state(client, t.org["id"])
    assert error_of(reserve("0.6", "r2"), 402)["type"] == "budget_exceeded"
    ok(client.post(f"/keys/{t.key['id']}/suspend", json={"reason": "spend spike"}))
    error = error_of(reserve("0.1", "r3", key_id=t.key["id"]), 403)
    assert error["type"] == "api_key_suspended" and "spend spike" in error["message"]
    ok(client.post(f"/keys/{t.key['id']}/revoke"))
    assert error_of(reserve("0.1", "r4", key_id=t.key["id"]), 401)["type"] == "api_key_revoked"
    other = tenant(client)
    assert error_of(reserve("0.1", "r5", key_id=other.key["id"]), 403)["type"] == "permission_denied"
    assert _state(client, t.org["id"]) == before


def test_reservation_state_conflicts(client: TestClient) -> None:
    t = tenant(client)
    grant(client, t.org["id"], "1", "g")
    held = ok(
        client.post(
            "/reservations",
            json={"project_id": t.project["id"], "model": "m", "amount": "0.2"},
            headers={"Idempotency-Key": "r"},
        ),
        201,
    )
    other_params = client.post(
        "/reservations",
        json={"project_id": t.project["id"], "model": "m", "amount": "0.3"},
        headers={"Idempotency-Key": "r"},
    )
    assert error_of(other_params, 409)["type"] == "conflict"
    ok(client.post(f"/reservations/{held['id']}/void"))
    before = _state(client, t.org["id"])
    settle = client.post(f"/reservations/{held['id']}/settle", json={"amount": "0.1", "provider": "openai"})
    assert "voided" in error_of(settle, 409)["message"]
    bad_usage = client.post(
        f"/reservations/{held['id']}/settle",
        json={"amount": "0.1", "provider": "openai", "input_tokens": 1, "cached_tokens": 5},
    )
    assert "cannot exceed input_tokens" in error_of(bad_usage, 422)["message"]
    assert _state(client, t.org["id"]) == before


def test_refunds_only_for_prepaid(client: TestClient) -> None:
    t = tenant(client)
    promo = grant(client, t.org["id"], "3", "p", kind="promotional")
    before = _state(client, t.org["id"])
    assert (
        "only prepaid credit is refundable"
        in error_of(client.post(f"/grants/{promo['id']}/refund"), 422)["message"]
    )
    prepaid = grant(client, t.org["id"], "1", "q")
    before = _state(client, t.org["id"])
    too_much = client.post(f"/grants/{prepaid['id']}/refund", json={"amount": "2"})
    assert "more than the $1 left" in error_of(too_much, 422)["message"]
    assert _state(client, t.org["id"]) == before


def test_payment_beyond_due_and_tier_budget_delete(client: TestClient) -> None:
    t = tenant(client, tier_rules="openai")
    before = _state(client, t.org["id"])
    response = client.post(
        f"/orgs/{t.org['id']}/payments", json={"amount": "5"}, headers={"Idempotency-Key": "p"}
    )
    assert "more than the $0 due" in error_of(response, 422)["message"]
    [ceiling] = ok(client.get(f"/orgs/{t.org['id']}/budgets"))["items"]
    assert "tier" in error_of(client.delete(f"/budgets/{ceiling['id']}"), 422)["message"]
    assert _state(client, t.org["id"]) == before


def test_one_free_grant_per_phone_and_welcome_only_with_a_billing_account(client: TestClient) -> None:
    """The issue's sequence: a second organisation with the same phone is refused a free trial
    (409) and must then be refused welcome credit too (it has no billing account, and the
    phone already had its free grant)."""
    phone = f"+81 90-{secrets.randbelow(9000) + 1000}-{secrets.randbelow(9000) + 1000}"
    first = tenant(client, phone=phone)
    grant(client, first.org["id"], "5", "trial", kind="free_trial")
    second = tenant(client, phone=phone)
    before = _state(client, second.org["id"])
    trial = client.post(
        f"/orgs/{second.org['id']}/grants",
        json={"kind": "free_trial", "amount": "5"},
        headers={"Idempotency-Key": "trial"},
    )
    assert error_of(trial, 409)["type"] == "free_credit_refused"
    welcome = client.post(
        f"/orgs/{second.org['id']}/grants",
        json={"kind": "welcome", "amount": "5"},
        headers={"Idempotency-Key": "welcome"},
    )
    error = error_of(welcome, 409)
    assert error["type"] == "free_credit_refused"
    assert "already received free trial credit" in error["message"]
    assert "one free grant per verified identity" in error["message"]
    assert _state(client, second.org["id"]) == before
    # A new identity without a billing account: refused, and told what opens one.
    newcomer = tenant(client, phone=phone.replace("+81 90", "+81 80"))
    refused = client.post(
        f"/orgs/{newcomer.org['id']}/grants",
        json={"kind": "welcome", "amount": "5"},
        headers={"Idempotency-Key": "welcome"},
    )
    assert "only for new billing accounts" in error_of(refused, 409)["message"]
    assert "no payment method on file, no prepayment" in refused.json()["error"]["message"]

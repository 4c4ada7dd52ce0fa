"""Keys through the admin API: plaintext shown once, never listed, rotation with grace,
revocation and suspension that take effect at once and tell the gateway (on_change)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from kakin.ledger import KeyRevoked, KeySuspended, Ledger

from .helpers import error_of, ok, tenant


def test_plaintext_is_shown_once_and_never_listed(client: TestClient, ledger: Ledger) -> None:
    t = tenant(client)
    created = ok(
        client.post(
            f"/projects/{t.project['id']}/keys",
            json={
                "name": "batch",
                "models": ["gpt-4o-mini"],
                "rpm": 60,
                "expires_at": "2100-01-01T09:00:00+09:00",
            },
        ),
        201,
    )
    key, plaintext = created["key"], created["plaintext"]
    assert (key["models"], key["rpm"], key["tpm"]) == (["gpt-4o-mini"], 60, None)
    assert key["expires_at"] == "2100-01-01T00:00:00Z"
    assert ledger.verify_key(plaintext).id == key["id"]
    listed = client.get(f"/orgs/{t.org['id']}/keys").text + client.get(f"/keys/{key['id']}").text
    secret = plaintext.split("-", 2)[2]
    assert secret not in listed and "hash" not in listed
    assert key["prefix"] in listed
    ids = [
        k["id"]
        for k in ok(client.get(f"/orgs/{t.org['id']}/keys", params={"project_id": t.project["id"]}))["items"]
    ]
    assert ids == [t.key["id"], key["id"]]


def test_revoke_is_immediate_and_notifies(client: TestClient, ledger: Ledger, changes: list) -> None:
    t = tenant(client)
    changes.clear()
    revoked = ok(client.post(f"/keys/{t.key['id']}/revoke"))
    assert revoked["status"] == "revoked" and revoked["revoked_at"] is not None
    assert changes == [("key", t.key["id"])]
    with pytest.raises(KeyRevoked):
        ledger.verify_key(t.plaintext)
    error = error_of(client.post(f"/keys/{t.key['id']}/rotate", json={}), 409)
    assert "revoked" in error["message"]


def test_suspend_and_unsuspend(client: TestClient, ledger: Ledger, changes: list) -> None:
    t = tenant(client)
    changes.clear()
    suspended = ok(client.post(f"/keys/{t.key['id']}/suspend", json={"reason": "leak suspected"}))
    assert (suspended["status"], suspended["suspend_reason"]) == ("suspended", "leak suspected")
    with pytest.raises(KeySuspended):
        ledger.verify_key(t.plaintext)
    assert ok(client.post(f"/keys/{t.key['id']}/unsuspend"))["status"] == "active"
    assert ledger.verify_key(t.plaintext).id == t.key["id"]
    assert changes == [("key", t.key["id"]), ("key", t.key["id"])]
    error_of(client.post(f"/keys/{t.key['id']}/suspend", json={}), 422)


def test_rotation_keeps_the_old_key_for_the_grace_period(
    client: TestClient, ledger: Ledger, changes: list
) -> None:
    t = tenant(client)
    changes.clear()
    rotated = ok(client.post(f"/keys/{t.key['id']}/rotate", json={"grace_seconds": 3600}), 201)
    new, previous = rotated["key"], rotated["previous"]
    assert new["rotated_from"] == t.key["id"] and previous["replaced_by"] == new["id"]
    assert previous["expires_at"] is not None and previous["status"] == "active"
    assert ledger.verify_key(rotated["plaintext"]).id == new["id"]
    assert ledger.verify_key(t.plaintext).id == t.key["id"]  # still inside the grace period
    assert changes == [("key", t.key["id"]), ("key", new["id"])]
    again = client.post(f"/keys/{t.key['id']}/rotate")
    assert "already rotated" in error_of(again, 409)["message"]
    error_of(client.post(f"/keys/{new['id']}/rotate", json={"grace_seconds": 31 * 86400}), 422)


def test_bad_key_requests(client: TestClient) -> None:
    t = tenant(client)
    before = ok(client.get(f"/orgs/{t.org['id']}/keys"))
    for body in (
        {"name": "k", "expires_at": "2001-01-01T00:00:00Z"},
        {"name": "k", "rpm": 0},
        {"name": "k", "models": []},
        {"name": "k", "tpm": 1.5},
        {"name": ""},
    ):
        error_of(client.post(f"/projects/{t.project['id']}/keys", json=body), 422)
    assert ok(client.get(f"/orgs/{t.org['id']}/keys")) == before

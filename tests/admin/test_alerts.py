"""Alert channels, rules and the delivery log through the admin API."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from kakin.alerts import Alert, AlertStore
from kakin.ledger import Ledger

from .helpers import error_of, ok, tenant


def test_channels(client: TestClient, changes: list) -> None:
    t = tenant(client)
    changes.clear()
    hook = ok(
        client.post(
            f"/orgs/{t.org['name']}/alerts/channels",
            json={
                "kind": "webhook",
                "name": "ops",
                "target": "https://hooks.example.com/k",
                "kinds": ["runaway"],
            },
        ),
        201,
    )
    assert hook["secret"] and hook["kinds"] == ["runaway"] and hook["smtp"] is None
    mail = ok(
        client.post(
            f"/orgs/{t.org['id']}/alerts/channels",
            json={
                "kind": "email",
                "name": "finance",
                "target": "a@example.com, b@example.com",
                "smtp": {"host": "127.0.0.1", "port": 2525, "password_env": "SMTP_PASSWORD"},
            },
        ),
        201,
    )
    assert mail["secret"] is None and mail["smtp"]["port"] == 2525 and "password" not in mail["smtp"]
    assert changes == [("alerts", t.org["id"])] * 2
    listed = client.get(f"/orgs/{t.org['id']}/alerts/channels")
    assert [c["name"] for c in listed.json()["items"]] == ["ops", "finance"]
    assert hook["secret"] not in listed.text

    duplicate = client.post(
        f"/orgs/{t.org['id']}/alerts/channels",
        json={"kind": "webhook", "name": "ops", "target": "http://x.test/"},
    )
    assert "already has an alert channel" in error_of(duplicate, 409)["message"]
    for body in (
        {"kind": "webhook", "name": "n", "target": "ftp://x"},
        {"kind": "email", "name": "n", "target": "not-an-address"},
        {"kind": "webhook", "name": "n", "target": "http://x.test/", "smtp": {"port": 25}},
        {"kind": "email", "name": "n", "target": "a@b.c", "smtp": {"port": 70000}},
        {"kind": "sms", "name": "n", "target": "+81"},
    ):
        error_of(client.post(f"/orgs/{t.org['id']}/alerts/channels", json=body), 422)
    assert len(ok(client.get(f"/orgs/{t.org['id']}/alerts/channels"))["items"]) == 2

    ok(client.delete(f"/alerts/channels/{hook['id']}"))
    assert [c["name"] for c in ok(client.get(f"/orgs/{t.org['id']}/alerts/channels"))["items"]] == ["finance"]


def test_rules(client: TestClient, changes: list) -> None:
    t = tenant(client)
    changes.clear()
    rule = ok(
        client.post(
            f"/orgs/{t.org['id']}/alerts/rules",
            json={
                "kind": "runaway",
                "scope": "key",
                "params": {"factor": "30", "window_minutes": 10},
                "auto_suspend": True,
            },
        ),
        201,
    )
    assert rule["params"] == {"factor": "30", "window_minutes": 10} and rule["auto_suspend"] is True
    low = ok(
        client.post(
            f"/orgs/{t.org['id']}/alerts/rules", json={"kind": "credit_low", "params": {"min_usd": "2"}}
        ),
        201,
    )
    assert [r["id"] for r in ok(client.get(f"/orgs/{t.org['id']}/alerts/rules"))["items"]] == [
        rule["id"],
        low["id"],
    ]
    assert changes == [("alerts", t.org["id"])] * 2
    for body, says in (
        ({"kind": "runaway", "params": {"factor": "1"}}, "factor must be above 1"),
        ({"kind": "credit_low", "params": {"factor": "3"}}, "do not apply to credit_low"),
        ({"kind": "credit_low", "scope": "key"}, "use scope 'org'"),
        ({"kind": "credit_expiring", "params": {"within_days": 0}}, "greater than or equal to 1"),
        ({"kind": "credit_low", "auto_suspend": True}, "auto_suspend"),
    ):
        assert says in error_of(client.post(f"/orgs/{t.org['id']}/alerts/rules", json=body), 422)["message"]
    assert len(ok(client.get(f"/orgs/{t.org['id']}/alerts/rules"))["items"]) == 2


def test_fired_alerts_and_deliveries(client: TestClient, ledger: Ledger) -> None:
    t = tenant(client)
    hook = ok(
        client.post(
            f"/orgs/{t.org['id']}/alerts/channels",
            json={"kind": "webhook", "name": "ops", "target": "http://127.0.0.1:9/hook"},
        ),
        201,
    )
    store = AlertStore(ledger.engine)
    alert = Alert(
        kind="test",
        org_id=t.org["id"],
        scope="org",
        scope_ref="",
        dedupe_key="test:1",
        title="test alert",
        message="hello",
        occurred_at=datetime(2025, 5, 1, 9, 0, tzinfo=UTC),
        severity="info",
    )
    alert_id = store.record_fired(alert)
    assert alert_id is not None
    store.create_deliveries(alert_id, [store.channel(hook["id"])])
    fired = ok(client.get(f"/orgs/{t.org['id']}/alerts"))["items"]
    assert [(a["id"], a["kind"], a["occurred_at"]) for a in fired] == [
        (alert_id, "test", "2025-05-01T09:00:00Z")
    ]
    deliveries = ok(client.get(f"/orgs/{t.org['id']}/alerts/deliveries", params={"status": "pending"}))[
        "items"
    ]
    assert [(d["alert_id"], d["channel_name"], d["attempts"]) for d in deliveries] == [(alert_id, "ops", 0)]
    assert (
        ok(client.get(f"/orgs/{t.org['id']}/alerts/deliveries", params={"status": "failed"}))["items"] == []
    )
    error_of(client.get(f"/orgs/{t.org['id']}/alerts/deliveries", params={"status": "lost"}), 422)

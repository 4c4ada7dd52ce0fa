"""The report routes: the same figures as :mod:`kakin.reports` (the CLI's and the dashboard's),
as JSON with exact decimal strings, in the organisation's own days; the request log pages by
keyset and finds a request by id; bad input is refused in the admin error shape."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kakin.admin import create_admin_app
from kakin.ledger import Ledger, Scope, UsageDetail
from kakin.reports import Reports
from kakin.reports.forecast import month_forecast

from .conftest import ADMIN_KEY, AUTH, open_ledger, unique
from .helpers import error_of, ok

NOW = datetime(2026, 3, 15, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def item(component: str, quantity: int, amount: str) -> dict[str, str | None]:
    unit_price = str(Decimal(amount) / quantity)
    return {"component": component, "quantity": str(quantity), "unit": "token", "unit_price": unit_price,
            "amount": amount, "tier": None, "effective_from": "2026-01-01", "source": "test prices",
            "direction": "input" if component == "input" else "output"}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, Ledger, str]]:
    """An Asia/Tokyo organisation with two charges: 3/14 23:30 UTC is already 3/15 in Tokyo."""
    clock = Clock()
    with open_ledger(request.param, request, tmp_path) as plain:
        url = str(plain.engine.url.render_as_string(hide_password=False))
    ledger = Ledger.open(url, clock=clock, migrate=False)
    org = ledger.create_org(unique("tokyo"), timezone="Asia/Tokyo", payment_label="card")
    project = ledger.create_project(org.id, "web")
    key, _ = ledger.create_key(project.id, "server")
    charges = [
        (datetime(2026, 3, 10, 1, 0, tzinfo=UTC), "gpt-4o", [item("input", 1000, "0.0025"), item("output", 200, "0.002")]),
        (datetime(2026, 3, 14, 23, 30, tzinfo=UTC), "gpt-4o-mini", [item("input", 2000, "0.0003"), item("output", 100, "0.00006")]),
    ]  # fmt: skip
    for n, (at, model, items) in enumerate(charges):
        clock.now = at
        usage = UsageDetail(
            provider="openai",
            input_tokens=int(items[0]["quantity"] or 0),
            output_tokens=int(items[1]["quantity"] or 0),
            cost_items=items,
            request_id=f"{org.name}-req-{n}",
        )
        cost = sum((Decimal(str(i["amount"])) for i in items), Decimal(0))
        ledger.post(Scope(org.id, project.id, key.id, model), cost, usage, idempotency_key=f"{org.name}-{n}")
    clock.now = NOW
    app = create_admin_app(ledger, admin_key=ADMIN_KEY)
    with TestClient(app, headers=AUTH, raise_server_exceptions=True) as client:
        yield client, ledger, org.name
    ledger.close()


def test_spend_by_local_day_model_and_unit(seeded: tuple[TestClient, Ledger, str]) -> None:
    client, ledger, org = seeded
    days = ok(client.get(f"/orgs/{org}/reports/spend", params={"by": "day"}))
    assert days["timezone"] == "Asia/Tokyo" and days["start"].startswith("2026-03-01T00:00:00+09:00")
    assert [(line["group"], line["spend"]["cost"]) for line in days["lines"]] == [
        ("2026-03-10", "0.0045"),
        ("2026-03-15", "0.00036"),
    ]
    assert days["total"]["cost"] == "0.00486" and days["total"]["requests"] == 2
    models = ok(
        client.get(
            f"/orgs/{org}/reports/spend", params={"by": "model", "from": "2026-03-15", "to": "2026-03-16"}
        )
    )
    assert [(line["group"], line["spend"]["cost"]) for line in models["lines"]] == [
        ("gpt-4o-mini", "0.00036")
    ]
    units = ok(client.get(f"/orgs/{org}/reports/spend", params={"by": "unit"}))
    assert {u["unit"]: u["cost"] for u in units["units"]} == {
        "input": "0.0028",
        "output": "0.00206",
        "requests": "0",
    }
    library = Reports(ledger).spend(org, by="key")
    keyed = ok(client.get(f"/orgs/{org}/reports/spend", params={"by": "key"}))
    assert [(line["label"], Decimal(line["spend"]["cost"])) for line in keyed["lines"]] == [
        (line.label, line.spend.cost) for line in library.lines
    ]


def test_request_log_pages_and_finds_by_id(seeded: tuple[TestClient, Ledger, str]) -> None:
    client, _, org = seeded
    first = ok(client.get(f"/orgs/{org}/reports/requests", params={"limit": 1}))
    assert [r["request_id"] for r in first["items"]] == [f"{org}-req-1"] and first["next"]
    second = ok(client.get(f"/orgs/{org}/reports/requests", params={"limit": 1, "after": first["next"]}))
    assert [r["request_id"] for r in second["items"]] == [f"{org}-req-0"] and second["next"] is None
    assert second["items"][0]["started_at"] == "2026-03-10T10:00:00+09:00"
    found = ok(client.get(f"/orgs/{org}/reports/requests", params={"request_id": f"{org}-req-0"}))
    assert [(r["request_id"], r["cost"]) for r in found["items"]] == [(f"{org}-req-0", "0.0045")]
    assert ok(client.get(f"/orgs/{org}/reports/requests", params={"request_id": "nothing"}))["items"] == []
    detail = ok(client.get(f"/orgs/{org}/reports/requests/{org}-req-0"))
    assert [(i["component"], i["amount"], i["effective_from"], i["source"]) for i in detail["items"]] == [
        ("input", "0.0025", "2026-01-01", "test prices"),
        ("output", "0.002", "2026-01-01", "test prices"),
    ]
    assert detail["key_label"].startswith("server (kk-") and detail["timezone"] == "Asia/Tokyo"
    error_of(client.get(f"/orgs/{org}/reports/requests/nothing"), 404)


def test_whatif_and_forecast_are_the_library_s(seeded: tuple[TestClient, Ledger, str]) -> None:
    client, ledger, org = seeded
    answer = ok(
        client.get(f"/orgs/{org}/reports/whatif", params=[("model", "gpt-4o-mini"), ("model", "gpt-4o")])
    )
    expected = Reports(ledger).whatif(org, ["gpt-4o-mini", "gpt-4o"])
    assert {m: Decimal(v) for m, v in answer["totals"].items()} == expected.totals
    assert answer["cost"] == "0.00486" and answer["targets"] == ["gpt-4o-mini", "gpt-4o"]
    forecast = ok(client.get(f"/orgs/{org}/reports/forecast"))
    library = month_forecast(Reports(ledger), org)
    assert Decimal(forecast["projected"]) == library.projected and forecast["as_of"] == "2026-03-15"
    assert Decimal(forecast["low"]) == library.low and Decimal(forecast["high"]) == library.high


def test_bad_report_input_is_refused(seeded: tuple[TestClient, Ledger, str]) -> None:
    client, _, org = seeded
    assert (
        "YYYY-MM-DD"
        in error_of(client.get(f"/orgs/{org}/reports/spend", params={"from": "soon"}), 422)["message"]
    )
    error_of(client.get(f"/orgs/{org}/reports/spend", params={"by": "planet"}), 422)
    error_of(client.get(f"/orgs/{org}/reports/requests", params={"after": "not-a-cursor"}), 422)
    error_of(client.get(f"/orgs/{org}/reports/whatif", params={"model": "no-such-model-x"}), 404)
    error_of(client.get("/orgs/nowhere/reports/spend"), 404)

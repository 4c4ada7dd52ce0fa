"""What the gateway metered, as the reports show it: a reasoning model's request, called with
the official OpenAI SDK, appears with its reasoning tokens and their share of the output
cost, in `kakin usage show`, in the day's rollup and in the admin API's usage records, request
log, request detail and spend report."""

from __future__ import annotations

import json
from decimal import Decimal

from typer.testing import CliRunner

from kakin.cli import app
from kakin.pricing import price
from kakin.reports import Reports

from . import expected
from .conftest import Tenant


def test_a_reasoning_request_shows_its_reasoning_tokens_and_their_cost(tenant: Tenant) -> None:
    raw = tenant.openai().chat.completions.with_raw_response.create(
        model="o4-mini",
        messages=[{"role": "user", "content": "think about the invoice"}],
        max_completion_tokens=300,
        reasoning_effort="high",
    )
    usage = raw.parse().usage
    reasoning = usage.completion_tokens_details.reasoning_tokens
    assert reasoning > 0
    request_id = raw.headers["x-kakin-request-id"]
    record = tenant.record(request_id)
    assert record.reasoning_tokens == reasoning

    cost = price(expected.openai_chat(usage), "o4-mini", provider="openai", at=record.occurred_at)
    rate = next(item.unit_price for item in cost.items if item.component == "output")
    units = {u.unit: u for u in Reports(tenant.ledger).request(request_id).units}
    assert units["reasoning"].quantity == reasoning
    assert units["reasoning"].cost == rate * reasoning
    assert units["output"].quantity == usage.completion_tokens - reasoning
    assert units["reasoning"].cost + units["output"].cost == next(
        item.amount for item in cost.items if item.component == "output"
    )

    url = str(tenant.ledger.engine.url)
    shown = CliRunner().invoke(app, ["usage", "show", request_id, "--format", "json", "--database-url", url])
    assert shown.exit_code == 0, shown.output
    rows = {row["unit"]: row for row in json.loads(shown.stdout)[1]["rows"]}
    assert Decimal(rows["reasoning"]["quantity"]) == reasoning
    day = Reports(tenant.ledger).spend(tenant.org.id, by="unit")
    assert {u.unit: u.quantity for u in day.units}["reasoning"] == reasoning
    assert day.total.cost == record.cost


def test_the_admin_api_shows_a_metered_request_as_the_cli_does(tenant: Tenant) -> None:
    from fastapi.testclient import TestClient

    from kakin.admin import create_admin_app

    raw = tenant.openai().chat.completions.with_raw_response.create(
        model="o4-mini",
        messages=[{"role": "user", "content": "reason about the bill"}],
        max_completion_tokens=300,
        reasoning_effort="high",
    )
    usage = raw.parse().usage
    reasoning = usage.completion_tokens_details.reasoning_tokens
    assert reasoning > 0
    request_id = raw.headers["x-kakin-request-id"]
    admin = TestClient(create_admin_app(tenant.ledger, admin_key="k"), headers={"Authorization": "Bearer k"})
    org = tenant.org.id

    records = admin.get(f"/orgs/{org}/usage").json()["items"]
    assert [(r["request_id"], r["output_tokens"], r["reasoning_tokens"]) for r in records] == [
        (request_id, usage.completion_tokens, reasoning)
    ]
    logged = admin.get(f"/orgs/{org}/requests", params={"request_id": request_id}).json()
    assert [line["request_id"] for line in logged["items"]] == [request_id]
    assert logged["timezone"] == tenant.org.timezone

    detail = admin.get(f"/orgs/{org}/requests/{request_id}").json()
    url = str(tenant.ledger.engine.url)
    shown = CliRunner().invoke(app, ["usage", "show", request_id, "--format", "json", "--database-url", url])
    assert shown.exit_code == 0, shown.output
    summary, units, items = json.loads(shown.stdout)
    assert detail["cost"] == summary["cost"] == logged["items"][0]["cost"]
    assert {u["unit"]: u["quantity"] for u in detail["units"]}["reasoning"] == str(reasoning)
    assert [(u["unit"], u["cost"]) for u in detail["units"]] == [
        (r["unit"], r["cost"]) for r in units["rows"]
    ]
    assert [(i["component"], i["amount"], i["source"]) for i in detail["items"]] == [
        (r["component"], r["amount"], r["source"]) for r in items["rows"]
    ]
    assert all(i["source"] and {"tier", "effective_from", "unit_price"} <= set(i) for i in detail["items"])

    spent = admin.get(f"/orgs/{org}/reports/spend", params={"by": "model"}).json()
    assert [(line["group"], line["reasoning_tokens"], line["cost"]) for line in spent["lines"]] == [
        ("o4-mini", reasoning, detail["cost"])
    ]

"""The admin API's provider-bill routes over the seeded ledger and the sample bills."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from kakin.admin import create_admin_app
from kakin.ledger import Ledger

from .conftest import sample

ADMIN_KEY = "reconcile-admin-key"


@pytest.fixture()
def client(ledger: Ledger) -> Iterator[TestClient]:
    app = create_admin_app(ledger, admin_key=ADMIN_KEY)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as test_client:
        yield test_client


def test_import_then_reconcile(client: TestClient, acme: str) -> None:
    url = f"/orgs/{acme}/provider-bills/anthropic"
    for name in ("anthropic_cost_report.json", "anthropic_usage_report.json"):
        answer = client.post(url, params={"filename": name}, content=sample(name))
        assert answer.status_code == 200, answer.text
        assert answer.json()["new"] is True
    again = client.post(url, content=sample("anthropic_cost_report.json"))
    assert again.json()["new"] is False and again.json()["filename"] == "anthropic_cost_report.json"
    listed = client.get("/orgs/acme/provider-bills").json()["items"]
    assert [(i["format"], i["first_day"], i["last_day"]) for i in listed] == [
        ("anthropic.cost_report", "2026-03-01", "2026-03-07"),
        ("anthropic.usage_report", "2026-03-01", "2026-03-07"),
    ]

    result = client.get(f"{url}/reconciliation").json()
    assert (result["flagged"], result["kakin_cost"], result["provider_cost"]) == (4, "16.605", "15.525")
    assert [u["unit"] for u in result["units"]][:2] == ["cached_input", "cache_write"]
    flagged = [(x["day"], x["unit"], x["verdict"], x["difference"]) for x in result["lines"] if x["flagged"]]
    assert flagged == [
        ("2026-03-02", "cached_input", "provider_higher", "0.06"),
        ("2026-03-02", "input", "kakin_higher", "-0.6"),
        ("2026-03-03", "cached_input", "provider_higher", "0.06"),
        ("2026-03-03", "input", "kakin_higher", "-0.6"),
    ]
    # Within 45 % the undercount passes unseen: the tolerance is the caller's to state.
    wide = client.get(f"{url}/reconciliation", params={"tolerance": "0.10", "relative": "0.45"}).json()
    assert (wide["flagged"], wide["tolerance_usd"], wide["tolerance_relative"]) == (0, "0.1", "0.45")
    one_day = client.get(f"{url}/reconciliation", params={"from": "2026-03-05", "to": "2026-03-06"}).json()
    assert {x["day"] for x in one_day["lines"]} == {"2026-03-05"}


def test_bad_input_is_refused_and_changes_nothing(client: TestClient, acme: str) -> None:
    url = f"/orgs/{acme}/provider-bills/openai"
    bad = client.post(
        url, content=b'{"data": [{"start_time": 1772323200, "end_time": 1772409600, "results": [7]}]}'
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["message"] == "export: page 1, data[0].results[0] is not a result"
    assert client.get(f"/orgs/{acme}/provider-bills").json()["items"] == []
    assert client.get(f"{url}/reconciliation").status_code == 404
    assert client.post(f"/orgs/{acme}/provider-bills/azure", content=b"{}").status_code == 422
    assert (
        client.post("/orgs/nobody/provider-bills/openai", content=sample("openai_costs.json")).status_code
        == 404
    )
    client.post(url, content=sample("openai_costs.json"))
    refused = client.get(f"{url}/reconciliation", params={"tolerance": "1e999x"})
    assert refused.status_code == 422 and "tolerance" in refused.json()["error"]["message"]
    assert client.get(f"{url}/reconciliation", params={"relative": "2"}).status_code == 422

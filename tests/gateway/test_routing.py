"""Aliases and "cheapest of" rules: the upstream gets the routed model, the ledger records
where the request was routed from and what the routing saved."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from kakin.config import load_settings
from kakin.ledger import Ledger
from kakin.pricing import Usage, price
from kakin.server import start_in_thread


def test_alias_and_cheapest_of_route(tmp_path) -> None:
    config = tmp_path / "kakin.toml"
    config.write_text(
        '[gateway.aliases]\nfast = "gpt-4o-mini"\n\n'
        '[[gateway.routes]]\nalias = "cheap-chat"\ncheapest_of = ["gpt-4o", "gpt-4.1-mini", "gpt-4o-mini"]\n',
        encoding="utf-8",
    )
    database = f"sqlite:///{tmp_path / 'kakin.db'}"
    settings = load_settings(config, env={"KAKIN_DATABASE_URL": database})
    ledger = Ledger.open(database)
    org = ledger.create_org("route-co", payment_method=True)
    project = ledger.create_project(org.id, "p")
    _, key = ledger.create_key(project.id, "k")
    ledger.grant(org.id, "prepaid", Decimal("5"), idempotency_key="p")
    running = start_in_thread(settings, ledger)
    try:
        client = openai.OpenAI(base_url=running.url + "/v1", api_key=key, max_retries=0)
        message = [{"role": "user", "content": "route me"}]
        fast = client.chat.completions.with_raw_response.create(model="fast", messages=message, max_tokens=30)
        cheap = client.chat.completions.with_raw_response.create(
            model="cheap-chat", messages=message, max_tokens=30
        )
        assert fast.headers["x-kakin-routed-to"] == "gpt-4o-mini"
        assert cheap.headers["x-kakin-routed-to"] == "gpt-4o-mini"  # the cheapest of the three
        running.gateway.settled()  # local accounting posts journaled charges just after answering
        records = {r.request_id: r for r in ledger.usage(org.id)}
        alias = records[fast.headers["x-kakin-request-id"]]
        rule = records[cheap.headers["x-kakin-request-id"]]
        assert (alias.model, alias.routed_from, alias.routing_saved) == ("gpt-4o-mini", "fast", 0)
        assert (rule.model, rule.routed_from) == ("gpt-4o-mini", "cheap-chat")
        usage = Usage(input_tokens=rule.input_tokens, output_tokens=rule.output_tokens)
        dearest = price(usage, "gpt-4o").total  # the saving is measured against the dearest candidate
        assert rule.routing_saved == dearest - rule.cost > 0
    finally:
        running.stop()
        ledger.close()


def _budget_gateway(tmp_path, config: Path | None) -> tuple[Ledger, Any, str, Any, httpx.Client]:  # type: ignore[no-untyped-def]
    """(ledger, org, key, running gateway, admin client) of a gateway on a new SQLite ledger."""
    database = f"sqlite:///{tmp_path / 'kakin.db'}"
    env = {"KAKIN_DATABASE_URL": database, "KAKIN_ADMIN_KEY": "routing-admin-key"}
    ledger = Ledger.open(database)
    org = ledger.create_org("budget-co", payment_method=True)
    project = ledger.create_project(org.id, "p")
    _, key = ledger.create_key(project.id, "k")
    running = start_in_thread(load_settings(config, env=env), ledger)
    headers = {"Authorization": "Bearer routing-admin-key"}
    return ledger, org, key, running, httpx.Client(base_url=running.url + "/admin", headers=headers)


def test_model_budgets_name_models_the_gateway_serves(tmp_path) -> None:
    """The admin API refuses a budget no request could count under, and sets one on an alias on
    the model the alias sends to, where that alias's requests are counted."""
    config = tmp_path / "kakin.toml"
    config.write_text(
        '[gateway.aliases]\nfast = "gpt-4o-mini"\n\n'
        '[[gateway.routes]]\nalias = "cheap-chat"\ncheapest_of = ["gpt-4o-mini", "gpt-4.1-mini"]\n',
        encoding="utf-8",
    )
    ledger, org, key, running, admin = _budget_gateway(tmp_path, config)
    try:

        def budget(model: str) -> httpx.Response:
            body = {"scope": "model", "scope_ref": model, "limit": "5"}
            return admin.post(f"/orgs/{org.id}/budgets", json=body)

        unknown = budget("gpt-4oo")
        assert unknown.status_code == 404
        error = unknown.json()["error"]
        assert error["type"] == "model_not_found"
        assert "unknown model 'gpt-4oo'" in error["message"] and "closest known: gpt-4o" in error["message"]
        assert "closest known: fast" in budget("fsat").json()["error"]["message"]
        rule = budget("cheap-chat")
        assert rule.status_code == 422 and "routing rule" in rule.json()["error"]["message"]
        assert ledger.list_budgets(org.id) == []

        assert budget("gpt-4o-2024-08-06").json()["scope_ref"] == "gpt-4o"  # the catalog's name
        alias = budget("fast").json()
        assert alias["scope_ref"] == "gpt-4o-mini"
        client = openai.OpenAI(base_url=running.url + "/v1", api_key=key, max_retries=0)
        client.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "count me"}], max_tokens=30
        )
        running.gateway.settled()
        spent = Decimal(admin.get(f"/budgets/{alias['id']}/status").json()["spent"])
        assert spent == sum(record.cost for record in ledger.usage(org.id)) > 0
    finally:
        running.stop()
        ledger.close()


def test_a_model_budget_counts_every_name_the_catalog_prices_as_that_model(tmp_path) -> None:
    """A hard cap on ``gpt-4o`` is not escaped by asking for a dated snapshot the catalog
    prices as ``gpt-4o`` (nor the other way round): both count, and the cap refuses both."""
    ledger, org, key, running, admin = _budget_gateway(tmp_path, None)
    try:
        client = openai.OpenAI(base_url=running.url + "/v1", api_key=key, max_retries=0)

        def ask(model: str) -> None:
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "count me"}], max_tokens=20
            )

        ask("gpt-4o-2024-08-06")
        ask("gpt-4o")
        running.gateway.settled()
        records = ledger.usage(org.id)
        assert [r.model for r in records] == ["gpt-4o", "gpt-4o"]
        body = {"scope": "model", "scope_ref": "gpt-4o", "limit": str(sum(r.cost for r in records))}
        budget = admin.post(f"/orgs/{org.id}/budgets", json=body | {"hard_cap": True}).json()
        for model in ("gpt-4o-2024-08-06", "gpt-4o"):
            with pytest.raises(openai.APIStatusError) as refused:
                ask(model)
            assert refused.value.status_code == 402
        ask("gpt-4o-mini")  # another model: not this budget's
        running.gateway.settled()
        assert ledger.budget_status(budget["id"]).spent == sum(r.cost for r in records)
    finally:
        running.stop()
        ledger.close()

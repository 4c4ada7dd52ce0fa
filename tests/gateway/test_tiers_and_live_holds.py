"""Usage tiers and holds as a running gateway (with its admin API mounted, as ``kakin serve``
runs it) applies them: a tier promotion takes effect at once — made through the admin API,
on the very next request; earned by spending, as soon as the gateway verifies the key again —
and the admin API's balances and budget gauges count the holds of requests in flight, which
the ledger never sees (in local accounting they live in the gateway's memory, in shared
accounting with holds in Redis, there); each answer tells the credit left after its charge."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import redis_keys
from kakin.ledger import Ledger
from kakin.server import RunningGateway

from .conftest import MakeTenant, gateway_running, tenant_factory

ADMIN_KEY = "admin-key-for-tests-7d41"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 500}


@pytest.fixture(scope="module", params=["memory", "redis", "redis-holds"])
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Ledger, RunningGateway]]:
    """A gateway with its admin API: in local accounting, its rate limits in memory or Redis;
    or in shared accounting with its holds (and rate limits) in Redis."""
    env = {"KAKIN_ADMIN_KEY": ADMIN_KEY, "KAKIN_GATEWAY__ACCOUNTING": "local"}
    if request.param.startswith("redis"):
        url, prefix = request.getfixturevalue("module_redis")
        env |= {"KAKIN_REDIS_URL": url, "KAKIN_REDIS__PREFIX": prefix}
    if request.param == "redis-holds":
        env |= {"KAKIN_GATEWAY__ACCOUNTING": "shared", "KAKIN_GATEWAY__SHARED_HOLDS": "redis"}
    path: Path = tmp_path_factory.mktemp("admin-in-gateway") / "kakin.db"
    with gateway_running(f"sqlite:///{path}", **env) as running:
        yield running


@pytest.fixture(scope="module")
def module_redis(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(redis_url, key_prefix) for the module's gateway; its keys are deleted afterwards."""
    yield from redis_keys(request.module.__name__)


@pytest.fixture()
def make_tenant(running: tuple[Ledger, RunningGateway]) -> MakeTenant:
    return tenant_factory(*running)


def admin(gateway_url: str) -> httpx.Client:
    return httpx.Client(
        base_url=gateway_url + "/admin", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
    )


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def test_a_tier_promotion_takes_effect_at_once(make_tenant: MakeTenant) -> None:
    """From 3 to 500 requests/min: five back-to-back requests right after the promotion all
    pass (they used to answer 200, 200, 429, 429, 429 "exceeded 500 requests/min")."""
    tenant = make_tenant()
    rules = f"steps-{uuid.uuid4().hex[:8]}"
    toml = (
        '[[tiers]]\nname = "Starter"\nrequests_per_minute = 3\n'
        '[[tiers]]\nname = "Pro"\nrequests_per_minute = 500\nrequires = { billing_account = true }\n'
    )
    with admin(tenant.url) as api:
        ok(api.post("/tier-rules", json={"name": rules, "toml": toml}), 201)
        assert ok(api.put(f"/orgs/{tenant.org.id}/tier", json={"rules": rules}))["tier"]["name"] == "Starter"
        client = tenant.openai()
        for _ in range(3):
            client.chat.completions.create(**CHAT)
        with pytest.raises(openai.RateLimitError, match="exceeded 3 requests/min"):
            client.chat.completions.create(**CHAT)
        promoted = ok(api.put(f"/orgs/{tenant.org.id}/payment-method", json={"label": "visa 4242"}))
        assert promoted["payment_method"] is True
        assert ok(api.get(f"/orgs/{tenant.org.id}/tier"))["tier"]["name"] == "Pro"
    statuses = []
    for _ in range(5):
        response = client.chat.completions.with_raw_response.create(**CHAT)
        statuses.append(response.status_code)
    assert statuses == [200] * 5


def test_a_promotion_earned_by_spending_lifts_the_old_tiers_ceiling_at_once(make_tenant: MakeTenant) -> None:
    """Starter's monthly ceiling is $0.0005; spending anything earns Pro, which has none. The
    first charge promotes the organisation in the ledger; the gateway sees it when it verifies
    the key again (its cache keeps a key 2 s) and must then drop Starter's ceiling too, not
    keep enforcing it from its account view for up to a minute."""
    tenant = make_tenant(credit="5")
    rules = f"earned-{uuid.uuid4().hex[:8]}"
    toml = (
        '[[tiers]]\nname = "Starter"\nmonthly_limit_usd = "0.0005"\n'
        '[[tiers]]\nname = "Pro"\nrequires = { spent_usd = "0.000001" }\n'
    )
    big = {**CHAT, "max_tokens": 4000}  # holds more than Starter's whole ceiling
    client = tenant.openai()
    with admin(tenant.url) as api:
        ok(api.post("/tier-rules", json={"name": rules, "toml": toml}), 201)
        assert ok(api.put(f"/orgs/{tenant.org.id}/tier", json={"rules": rules}))["tier"]["name"] == "Starter"
        with pytest.raises(openai.APIStatusError, match="Starter") as refused:
            client.chat.completions.create(**big)
        assert refused.value.status_code == 402
        client.chat.completions.create(**{**CHAT, "max_tokens": 20})  # spends: earns Pro
        assert ok(api.get(f"/orgs/{tenant.org.id}/tier"))["tier"]["name"] == "Pro"  # (reads change nothing)
    deadline = time.monotonic() + 5
    while True:
        try:
            client.chat.completions.create(**big)
            break
        except openai.APIStatusError as error:
            assert error.status_code == 402 and time.monotonic() < deadline, error
            time.sleep(0.25)


def test_balance_and_budget_gauges_count_requests_in_flight(make_tenant: MakeTenant) -> None:
    tenant = make_tenant(credit="5")
    in_flight = 4
    with admin(tenant.url) as api:
        budget = ok(api.post(f"/orgs/{tenant.org.id}/budgets", json={"limit": "20", "hard_cap": True}))
        tokens = ok(
            api.post(
                f"/orgs/{tenant.org.id}/budgets",
                json={"scope": "model", "scope_ref": "gpt-4o-mini", "limit_tokens": 1_000_000},
            )
        )
        before = ok(api.get(f"/orgs/{tenant.org.id}/balance"))
        assert Decimal(before["held"]) == 0 and Decimal(before["available"]) == 5

        def request(simulate: str = "") -> Decimal:
            headers = {"x-kakin-simulate": simulate} if simulate else {}
            response = tenant.openai().chat.completions.with_raw_response.create(
                **CHAT, extra_headers=headers
            )
            return Decimal(response.headers["x-kakin-reserved-usd"])

        one = request()  # what each of these identical requests holds while it runs
        assert one > 0
        with ThreadPoolExecutor(in_flight) as pool:
            futures = [pool.submit(request, "latency=3s") for _ in range(in_flight)]
            deadline = time.monotonic() + 2.5
            balance = ok(api.get(f"/orgs/{tenant.org.id}/balance"))
            while Decimal(balance["held"]) < one * in_flight and time.monotonic() < deadline:
                time.sleep(0.02)
                balance = ok(api.get(f"/orgs/{tenant.org.id}/balance"))
            gauges = ok(api.get(f"/orgs/{tenant.org.id}/budgets/status"))["items"]
            gauge = ok(api.get(f"/budgets/{budget['id']}/status"))
            assert [future.result() for future in futures] == [one] * in_flight
        held = Decimal(balance["held"])
        assert held == one * in_flight
        assert Decimal(balance["available"]) == Decimal(balance["credit"]) - held
        by_id = {g["budget"]["id"]: g for g in gauges}
        for shown in (by_id[budget["id"]], gauge):
            assert Decimal(shown["held"]) == held
            assert Decimal(shown["remaining"]) == 20 - Decimal(shown["spent"]) - held
        token_gauge = by_id[tokens["id"]]  # held in tokens: the input bound plus max_tokens each
        assert int(token_gauge["held"]) >= 500 * held / one
        assert int(token_gauge["remaining"]) == 1_000_000 - int(token_gauge["spent"]) - int(
            token_gauge["held"]
        )
        after = ok(api.get(f"/orgs/{tenant.org.id}/balance"))
        assert Decimal(after["held"]) == 0
        assert Decimal(after["available"]) == Decimal(after["credit"]) == 5 - Decimal(after["spent"])
        settled_gauge = ok(api.get(f"/budgets/{budget['id']}/status"))
        assert Decimal(settled_gauge["held"]) == 0
        assert Decimal(settled_gauge["remaining"]) == 20 - Decimal(settled_gauge["spent"])


def test_an_answer_tells_the_credit_left_after_its_charge(make_tenant: MakeTenant) -> None:
    """``x-kakin-credit-remaining-usd``: credit neither spent nor held once the request is
    charged — what the balance then says is available, with no other request in flight."""
    tenant = make_tenant(credit="5")
    client = tenant.openai()
    with admin(tenant.url) as api:
        for _ in range(2):
            response = client.chat.completions.with_raw_response.create(**CHAT)
            left = Decimal(response.headers["x-kakin-credit-remaining-usd"])
            cost = Decimal(response.headers["x-kakin-cost-usd"])
            balance = ok(api.get(f"/orgs/{tenant.org.id}/balance"))
            assert cost > 0 and Decimal(balance["held"]) == 0
            assert left == Decimal(balance["available"]) == 5 - Decimal(balance["spent"])

"""/metrics: counters move by what the traffic did, cost equals the ledger's to the
picodollar, no key material in any label, and the endpoint is protected."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kakin.ledger import Ledger
from kakin.money import to_pico
from kakin.server import RunningGateway

from .conftest import MakeTenant, Tenant, gateway_running, start_gateway, tenant_factory

ADMIN_KEY = "metrics-admin-" + uuid.uuid4().hex


@pytest.fixture(scope="module", params=["local", "shared"])
def metered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Ledger, RunningGateway]]:
    """A gateway of this module's own, so every charge its metrics count is in its ledger."""
    path: Path = tmp_path_factory.mktemp("metrics") / "kakin.db"
    with gateway_running(
        f"sqlite:///{path}", KAKIN_GATEWAY__ACCOUNTING=request.param, KAKIN_ADMIN_KEY=ADMIN_KEY
    ) as running:
        yield running


@pytest.fixture()
def make_metered_tenant(metered: tuple[Ledger, RunningGateway]) -> MakeTenant:
    return tenant_factory(*metered)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> tuple[str, Samples]:
    response = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def every_sdk(tenant: Tenant) -> dict[str, int]:
    """One request of each kind through every SDK (streamed and not), plus a Gemini key sent
    as ``?key=`` and an Azure ``api-key``; returns how many answers each endpoint gave."""
    chat = tenant.openai()
    chat.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "count me"}], max_tokens=30
    )
    for _ in chat.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream me"}],
        max_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
    ):
        pass
    chat.responses.create(model="gpt-4o-mini", input="respond", max_output_tokens=30)

    async def concurrently() -> None:
        client = tenant.async_openai()
        await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"c{i}"}], max_tokens=20
                )
                for i in range(5)
            )
        )
        await client.close()

    asyncio.run(concurrently())
    claude = tenant.anthropic()
    claude.messages.create(
        model="claude-haiku-4-5", max_tokens=30, messages=[{"role": "user", "content": "hi"}]
    )
    with claude.messages.stream(
        model="claude-haiku-4-5", max_tokens=30, messages=[{"role": "user", "content": "stream"}]
    ) as stream:
        stream.get_final_message()
    gemini = tenant.genai()
    gemini.models.generate_content(model="gemini-2.5-flash", contents="hello")
    for _ in gemini.models.generate_content_stream(model="gemini-2.5-flash", contents="stream"):
        pass
    in_query = httpx.post(
        f"{tenant.url}/v1beta/models/gemini-2.5-flash:generateContent",
        params={"key": tenant.plaintext},
        json={"contents": [{"parts": [{"text": "key in the query"}]}]},
        timeout=10,
    )
    assert in_query.status_code == 200, in_query.text
    azure = openai.AzureOpenAI(
        azure_endpoint=tenant.url, api_key=tenant.plaintext, api_version="2024-10-21", max_retries=0
    )
    azure.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "az"}], max_tokens=20)
    return {
        "openai.chat": 7,
        "openai.responses": 1,
        "anthropic.messages": 2,
        "google.generate": 2,
        "google.stream_generate": 1,
        "azure.chat": 1,
    }


def test_counters_move_by_the_traffic_and_cost_equals_the_ledger(
    make_metered_tenant: MakeTenant, metered: tuple[Ledger, RunningGateway]
) -> None:
    ledger, running = metered
    tenant = make_metered_tenant(credit="5")
    _, before = scrape(running.url)
    answered = every_sdk(tenant)
    refused = httpx.post(
        running.url + "/v1/chat/completions",
        headers={"Authorization": "Bearer sk-kakin-not-a-key"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
        timeout=10,
    )
    assert refused.status_code == 401
    running.gateway.settled()
    _, after = scrape(running.url)

    for endpoint in {"openai.chat", "openai.responses", "anthropic.messages", "azure.chat"}:
        assert (
            moved(
                before, after, "kakin_requests_total", provider="simulator", endpoint=endpoint, status="2xx"
            )
            == answered[endpoint]
        ), endpoint
    gemini = sum(
        moved(before, after, "kakin_requests_total", provider="simulator", endpoint=name, status="2xx")
        for name in ("google.generate", "google.stream_generate")
    )
    assert gemini == 3
    assert (
        moved(before, after, "kakin_requests_total", provider="none", endpoint="openai.chat", status="4xx")
        == 1
    )
    assert moved(before, after, "kakin_errors_total", api="openai", code=_code(refused)) == 1

    records = tenant.usage()
    assert len(records) == sum(answered.values())  # each answer billed once
    for kind, total in (
        ("input", sum(r.input_tokens for r in records)),
        ("output", sum(r.output_tokens for r in records)),
        ("cached", sum(r.cached_tokens for r in records)),
    ):
        assert moved(before, after, "kakin_tokens_total", provider="simulator", kind=kind) == total, kind
    forwarded = len(records)
    assert moved(before, after, "kakin_upstream_seconds_count", provider="simulator") == forwarded
    mode = running.settings.gateway.accounting
    assert moved(before, after, "kakin_ledger_write_seconds_count", op="charge", mode=mode) == forwarded
    holds = forwarded if mode == "shared" else 0  # a local hold is in memory, not a write
    assert moved(before, after, "kakin_ledger_write_seconds_count", op="hold", mode=mode) == holds
    assert value(after, "kakin_holds_in_flight") == 0

    # Cost: the exact total equals the ledger's to the picodollar; the exported float is it, rounded once.
    ledger_pico = sum(to_pico(record.cost) for org in ledger.list_orgs() for record in ledger.usage(org.id))
    assert sum(running.gateway.metrics.cost.totals().values()) == ledger_pico
    assert value(after, "kakin_cost_usd_total", provider="simulator") == float(
        Decimal(ledger_pico).scaleb(-12)
    )
    assert ledger_pico > 0


def _code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


def test_no_key_material_in_any_label(
    make_metered_tenant: MakeTenant, metered: tuple[Ledger, RunningGateway]
) -> None:
    _, running = metered
    tenant = make_metered_tenant(credit="5")
    every_sdk(tenant)
    # Wrong keys too: an unknown one in each place a key travels.
    wrong = "sk-kakin-" + uuid.uuid4().hex
    for headers, params in (
        ({"Authorization": f"Bearer {wrong}"}, {}),
        ({"x-api-key": wrong}, {}),
        ({"x-goog-api-key": wrong}, {}),
        ({}, {"key": wrong}),
    ):
        httpx.post(running.url + "/v1/chat/completions", headers=headers, params=params, json={}, timeout=10)
    text, _ = scrape(running.url)
    secrets = {
        tenant.plaintext,
        wrong,
        tenant.key.id,
        tenant.key.prefix,
        tenant.org.id,
        tenant.project.id,
        ADMIN_KEY,
    }
    for secret in secrets:
        # No fragment either: any 8 characters of a key's secret part.
        body = secret.split("-")[-1] if secret.startswith("sk-") else secret
        fragments = {body[i : i + 8] for i in range(0, max(1, len(body) - 7))}
        leaked = [f for f in fragments if f in text]
        assert not leaked, f"{secret!r}: {leaked}"


def test_metrics_need_the_admin_key(metered: tuple[Ledger, RunningGateway]) -> None:
    _, running = metered
    assert httpx.get(running.url + "/metrics", timeout=10).status_code == 401
    wrong = httpx.get(running.url + "/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401 and "KAKIN_ADMIN_KEY" in wrong.json()["error"]
    assert httpx.post(running.url + "/metrics", timeout=10).status_code == 405


@pytest.mark.parametrize(
    ("env", "status"),
    [
        ({}, 503),  # no admin key configured: closed, saying how to open it
        ({"KAKIN_METRICS__PUBLIC": "true"}, 200),
        ({"KAKIN_ADMIN_KEY": ADMIN_KEY, "KAKIN_METRICS__ENABLED": "false"}, 404),  # not served at all
    ],
)
def test_metrics_settings(tmp_path: Path, env: dict[str, str], status: int) -> None:
    ledger, running = start_gateway(f"sqlite:///{tmp_path / 'kakin.db'}", **env)
    try:
        response = httpx.get(running.url + "/metrics", timeout=10)
        assert response.status_code == status, response.text
        if status == 200:
            assert "kakin_requests_total" in response.text or "kakin_requests" in response.text
            assert value(_parse(response.text), "kakin_shared_state", state="healthy") == 0  # no Redis
    finally:
        running.stop()
        ledger.close()


def _parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_shared_state_follows_redis(tmp_path: Path, redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    for redis_url, state in ((url, "healthy"), ("redis://127.0.0.1:1/0", "failing_closed")):
        ledger, running = start_gateway(
            f"sqlite:///{tmp_path / (state + '.db')}",
            KAKIN_REDIS_URL=redis_url,
            KAKIN_REDIS__PREFIX=prefix,
            KAKIN_GATEWAY__ACCOUNTING="shared",
            KAKIN_METRICS__PUBLIC="true",
        )
        try:
            samples: Samples = {}
            for _ in range(100):  # the first probe runs as the gateway starts
                samples = _parse(httpx.get(running.url + "/metrics", timeout=10).text)
                if value(samples, "kakin_shared_state", state=state) == 1:
                    break
                asyncio.run(asyncio.sleep(0.05))
            assert value(samples, "kakin_shared_state", state=state) == 1
            others = [s for s in ("healthy", "rebuilding", "failing_closed", "failing_open") if s != state]
            assert all(value(samples, "kakin_shared_state", state=s) == 0 for s in others)
        finally:
            running.stop()
            ledger.close()

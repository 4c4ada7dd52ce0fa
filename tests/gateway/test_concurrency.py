"""No overspend under concurrency: 50 requests at once against a hard cap, on SQLite in both
accounting modes and on PostgreSQL. What is posted never passes the cap, every served
request is recorded once, no hold is left, and the ledger reconciles."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import openai
import pytest

from .conftest import MakeTenant, gateway_running, start_gateway, tenant_factory


@pytest.fixture(
    scope="module",
    params=[
        "sqlite-shared",
        "sqlite-local",
        pytest.param("postgresql-shared", marks=pytest.mark.postgres),
    ],
)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeTenant]:
    """A gateway per ledger backend and accounting mode, shared by this module's tests."""
    database, mode = request.param.split("-")
    if database == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp(mode) / 'kakin.db'}"
    else:
        url = request.getfixturevalue("gateway_pg_url")
    with gateway_running(url, KAKIN_GATEWAY__ACCOUNTING=mode) as running:
        yield tenant_factory(*running)


async def fire(client: openai.AsyncOpenAI, count: int, **request: object) -> list[object]:
    async def one(i: int) -> object:
        try:
            return await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"request {i}"}],
                extra_headers={"x-kakin-simulate": "latency=30ms"},
                **request,  # type: ignore[arg-type]
            )
        except openai.APIStatusError as refused:
            return refused

    return await asyncio.gather(*(one(i) for i in range(count)))


async def test_fifty_concurrent_requests_never_pass_a_hard_cap(backend: MakeTenant) -> None:
    tenant = backend(credit="5")
    cap = Decimal("0.0004")
    tenant.ledger.set_budget(tenant.org.id, period="month", limit=cap, hard_cap=True)
    client = tenant.async_openai(timeout=30)
    results = await fire(client, 50, max_tokens=100)
    refused = [r for r in results if isinstance(r, openai.APIStatusError)]
    served = [r for r in results if not isinstance(r, openai.APIStatusError)]
    assert served and refused, "the cap should let some requests through and stop others"
    assert {r.status_code for r in refused} == {402}
    assert all("has no room" in r.message for r in refused)
    records = tenant.usage()
    assert len(records) == len(served)
    balance = tenant.balance()
    assert balance.spent == sum(r.cost for r in records) <= cap
    assert balance.held == 0
    assert tenant.ledger.reconcile(tenant.org.id).ok


async def test_fifty_concurrent_requests_never_overdraw_credit(backend: MakeTenant) -> None:
    credit = Decimal("0.0004")
    tenant = backend(credit=str(credit))
    results = await fire(tenant.async_openai(timeout=30), 50, max_tokens=100)
    served = [r for r in results if not isinstance(r, openai.APIStatusError)]
    refused = [r for r in results if isinstance(r, openai.APIStatusError)]
    assert served and {r.status_code for r in refused} == {402}
    balance = tenant.balance()
    assert len(tenant.usage()) == len(served)
    assert balance.spent <= credit and balance.credit >= 0 and balance.due == 0 and balance.held == 0
    assert tenant.ledger.reconcile(tenant.org.id).ok


async def test_concurrent_tenants_are_billed_separately(backend: MakeTenant) -> None:
    tenants = [backend(credit="1") for _ in range(3)]
    await asyncio.gather(*(fire(t.async_openai(timeout=30), 15, max_tokens=40) for t in tenants))
    for tenant in tenants:
        records = tenant.usage()
        assert len(records) == 15 and {r.project_id for r in records} == {tenant.project.id}
        assert tenant.balance().spent == sum(r.cost for r in records)
        assert tenant.ledger.reconcile(tenant.org.id).ok


@pytest.mark.postgres
async def test_two_gateway_processes_share_one_hard_cap(gateway_pg_url: str) -> None:
    """Two gateways over one PostgreSQL ledger (shared accounting): together they stay under the cap."""
    first_ledger, first = start_gateway(gateway_pg_url, KAKIN_GATEWAY__ACCOUNTING="shared")
    second_ledger, second = start_gateway(gateway_pg_url, KAKIN_GATEWAY__ACCOUNTING="shared")
    try:
        tenant = tenant_factory(first_ledger, first)(credit="5")
        cap = Decimal("0.0004")
        tenant.ledger.set_budget(tenant.org.id, period="month", limit=cap, hard_cap=True)
        other = openai.AsyncOpenAI(base_url=second.url + "/v1", api_key=tenant.plaintext, max_retries=0)
        results = await asyncio.gather(
            fire(tenant.async_openai(timeout=30), 25, max_tokens=100), fire(other, 25, max_tokens=100)
        )
        served = [r for batch in results for r in batch if not isinstance(r, openai.APIStatusError)]
        refused = [r for batch in results for r in batch if isinstance(r, openai.APIStatusError)]
        assert served and refused and {r.status_code for r in refused} == {402}
        records = tenant.usage()
        assert len(records) == len(served)
        assert tenant.balance().spent <= cap and tenant.balance().held == 0
        assert tenant.ledger.reconcile(tenant.org.id).ok
    finally:
        for gateway, ledger in ((first, first_ledger), (second, second_ledger)):
            gateway.stop()
            ledger.close()

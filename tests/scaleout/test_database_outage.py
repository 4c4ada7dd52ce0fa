"""PostgreSQL unreachable for a while under two gateways: requests are refused as documented
(503 ``ledger_unavailable`` in the provider's error format, never billed), nothing a client
received is lost, and service resumes by itself when the database returns.

The PostgreSQL server is the test's own (initdb into a temporary directory, its own port),
stopped and started by the test; the shared one is never touched."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import openai
import pytest

from kakin.ledger import Ledger

from .cluster import Cluster
from .conftest import need_databases, start_cluster
from .postgres import OwnPostgres, why_not_available
from .tenants import Tenant, make_tenant

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

HOLD_SECONDS = 4
PROBE_MARGIN = Decimal("0.0001")  # less than one request's hold (max_tokens=200: $0.00012)


@pytest.fixture()
def own_postgres() -> object:
    need_databases()
    reason = why_not_available()
    if reason:
        pytest.skip(reason)
    server = OwnPostgres()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture()
def outage_cluster(
    own_postgres: OwnPostgres, redis_key_prefix: str, tmp_path: Path
) -> tuple[OwnPostgres, Ledger, Cluster]:
    ledger = Ledger.open(own_postgres.url)
    try:
        cluster = start_cluster(
            tmp_path,
            own_postgres.url,
            redis_key_prefix + "outage:",
            size=2,
            gateway={"hold_seconds": HOLD_SECONDS},
        )
        try:
            yield own_postgres, ledger, cluster
        finally:
            cluster.close()
    finally:
        ledger.close()


@dataclass
class Outcome:
    """What a client got: a complete answer (its request id and the cost it was told), or a
    refusal (its status and error)."""

    request_id: str = ""
    cost: Decimal = Decimal(0)
    status: int = 200
    error: dict | None = None

    @property
    def served(self) -> bool:
        return bool(self.request_id)


async def ask(tenant: Tenant, gateway: int, latency: str = "", stream: bool = False) -> Outcome:
    async with tenant.client(gateway, timeout=20) as client:
        request = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "during the outage"}],
            "max_tokens": 200,
            "extra_headers": {"x-kakin-simulate": latency} if latency else {},
        }
        try:
            if not stream:
                raw = await client.chat.completions.with_raw_response.create(**request)
                raw.parse()
                return Outcome(raw.headers["x-kakin-request-id"], Decimal(raw.headers["x-kakin-cost-usd"]))
            chunks = await client.chat.completions.create(
                **request, stream=True, stream_options={"include_usage": True}
            )
            final = [chunk async for chunk in chunks][-1]  # ends at `data: [DONE]`
            kakin = final.model_extra["kakin"]
            return Outcome(kakin["request_id"], Decimal(kakin["cost_usd"]))
        except openai.APIStatusError as refused:
            return Outcome(status=refused.status_code, error=refused.body)
        except openai.APIError as broken:  # an error event ending a stream
            return Outcome(status=0, error=broken.body)


def assert_refused_as_documented(outcome: Outcome) -> None:
    """503 ``ledger_unavailable`` in OpenAI's error format (for a stream already started: an
    error event in that format ending it)."""
    assert outcome.status in (503, 0), outcome
    assert outcome.error is not None and outcome.error.get("code") == "ledger_unavailable", outcome


async def test_postgresql_unreachable_requests_are_refused_and_nothing_is_lost(
    outage_cluster: tuple[OwnPostgres, Ledger, Cluster],
) -> None:
    server, ledger, cluster = outage_cluster
    tenant = make_tenant(ledger, cluster, credit="1")  # no payment method: the probe needs it
    outcomes: list[Outcome] = []

    before = await asyncio.gather(*(ask(tenant, g, stream=bool(g)) for g in (0, 1, 0, 1)))
    assert all(o.served for o in before), before
    outcomes += before

    # Requests upstream for 1.5 s when the database goes (plain and streamed): they were held
    # before, and settle while it is away. Then more requests arrive while it is away.
    in_flight = [
        asyncio.ensure_future(ask(tenant, g, "latency=1500ms", stream=i % 2 == 1))
        for i, g in enumerate((0, 1, 0, 1))
    ]
    await asyncio.sleep(0.5)
    await asyncio.to_thread(server.stop)
    during = [await ask(tenant, g, stream=g == 1) for g in (0, 1, 0, 1, 0, 1)]
    outcomes += during + list(await asyncio.gather(*in_flight))
    for outcome in outcomes:
        if not outcome.served:
            assert_refused_as_documented(outcome)

    await asyncio.to_thread(server.start)
    # Service resumes by itself: each gateway serves again within a few seconds.
    for gateway in (0, 1):
        deadline = time.monotonic() + 20
        while not (outcome := await ask(tenant, gateway)).served and time.monotonic() < deadline:
            assert_refused_as_documented(outcome)
            outcomes.append(outcome)
            await asyncio.sleep(0.2)
        assert outcome.served, f"gateway {gateway} still refuses after the database returned"
        outcomes.append(outcome)

    # Nothing lost: every answer a client received is charged once, at the cost it was told;
    # nothing refused is. (Were a refused request charged, or a served one dropped, the records
    # would not be exactly the served answers.)
    served = {o.request_id: o.cost for o in outcomes if o.served}
    ledger.engine.dispose()  # the test's own connections died with the server
    records = await asyncio.to_thread(tenant.recorded, served)
    assert {r.request_id: r.cost for r in records} == served
    assert len(records) == len(served)
    tenant.assert_reconciles()

    # Holds taken before the outage and not released during it lapse at their expiry.
    await asyncio.sleep(HOLD_SECONDS + 1)
    assert tenant.balance().held == 0
    for gateway in (0, 1):
        answer = await asyncio.to_thread(tenant.probe, gateway, PROBE_MARGIN)
        assert answer.headers["x-kakin-request-id"]
    tenant.assert_reconciles()

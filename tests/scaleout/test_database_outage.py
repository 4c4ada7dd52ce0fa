"""PostgreSQL unreachable for a while under two gateways, in both places shared accounting
keeps its holds (docs/gateway.md, "When the ledger database cannot be reached"):

- holds in the ledger: requests that need it are refused (503 ``ledger_unavailable`` in the
  provider's error format, never billed);
- holds in Redis: requests are served, their charges wait in each gateway's journal and are
  posted once the database is back, and hard caps hold meanwhile (Redis counts the holds and
  the charges not yet posted).

Either way nothing a client received is lost or billed twice, and service resumes by itself.
The PostgreSQL server is this module's own (initdb into a temporary directory, its own port),
stopped and started by each test; the shared one is never touched."""

from __future__ import annotations

import asyncio
import time
import uuid
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


@pytest.fixture(scope="module")
def own_postgres() -> object:
    """One server for both tests (each makes tenants of its own): initdb once."""
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


@pytest.fixture(params=["ledger", "redis"])
def outage_cluster(
    request: pytest.FixtureRequest, own_postgres: OwnPostgres, redis_key_prefix: str, tmp_path: Path
) -> tuple[OwnPostgres, Ledger, Cluster]:
    """Two gateways with their holds in the ledger, or in Redis (``cluster.holds``)."""
    if not own_postgres.running():  # a test that failed during its outage left it stopped
        own_postgres.start()
    ledger = Ledger.open(own_postgres.url)
    try:
        cluster = start_cluster(
            tmp_path,
            own_postgres.url,
            redis_key_prefix + "outage:",
            size=2,
            gateway={"hold_seconds": HOLD_SECONDS, "shared_holds": request.param},
        )
        cluster.holds = request.param  # type: ignore[attr-defined]
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


async def ask(
    tenant: Tenant, gateway: int, simulate: str = "", stream: bool = False, idempotency_key: str = ""
) -> Outcome:
    async with tenant.client(gateway, timeout=20) as client:
        headers = {"x-kakin-simulate": simulate} if simulate else {}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        request = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "during the outage"}],
            "max_tokens": 200,
            "extra_headers": headers,
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


def assert_refused_by_the_cap(outcome: Outcome) -> None:
    """402 ``budget_exceeded`` (or 503, when the refusal waited for a rebuild from the ledger)."""
    assert outcome.error is not None, outcome
    assert (outcome.status, outcome.error.get("code")) in (
        (402, "budget_exceeded"),
        (503, "ledger_unavailable"),
    )


async def test_postgresql_unreachable_nothing_is_lost_and_service_resumes(
    outage_cluster: tuple[OwnPostgres, Ledger, Cluster],
) -> None:
    server, ledger, cluster = outage_cluster
    in_redis = cluster.holds == "redis"  # type: ignore[attr-defined]
    tenant = make_tenant(ledger, cluster, credit="1")  # no payment method: the probe needs it
    # A tenant with a hard cap of $0.0005: requests of 200 output tokens (about $0.000122 each)
    # fit four at most — two before the outage, two during it.
    capped = make_tenant(ledger, cluster, credit="1")
    cap = Decimal("0.0005")
    ledger.set_budget(capped.org.id, period="month", limit=cap, hard_cap=True)
    outcomes: list[Outcome] = []
    capped_outcomes: list[Outcome] = []

    before = await asyncio.gather(*(ask(tenant, g, stream=bool(g)) for g in (0, 1, 0, 1)))
    assert all(o.served for o in before), before
    outcomes += before
    capped_outcomes += [await ask(capped, g, "tokens=200") for g in (0, 1)]  # both know its key
    assert all(o.served for o in capped_outcomes), capped_outcomes

    # Requests upstream for 1.5 s when the database goes (plain and streamed): they were held
    # before, and settle while it is away. Then more requests arrive while it is away.
    in_flight = [
        asyncio.ensure_future(ask(tenant, g, "latency=1500ms", stream=i % 2 == 1))
        for i, g in enumerate((0, 1, 0, 1))
    ]
    await asyncio.sleep(0.5)
    await asyncio.to_thread(server.stop)
    during = [await ask(tenant, g, stream=g == 1) for g in (0, 1, 0, 1, 0, 1)]
    # With holds in Redis, an Idempotency-Key is decided by its claim there while the ledger
    # (which keeps every charged key) cannot be asked: such a request is served too.
    during.append(await ask(tenant, 0, idempotency_key="outage-" + uuid.uuid4().hex))
    settled_during = list(await asyncio.gather(*in_flight))
    outcomes += during + settled_during
    # Six at once for the capped tenant: two at most fit under its cap.
    at_once = await asyncio.gather(*(ask(capped, g % 2, "tokens=200") for g in range(6)))
    capped_outcomes += at_once
    for outcome in outcomes:
        if not outcome.served:
            assert_refused_as_documented(outcome)
    if in_redis:
        # Holds are decided in Redis and charges journaled: every request is served, the cap
        # is honoured all the same (Redis counts the charges the ledger does not hold yet).
        assert all(o.served for o in during + settled_during), during + settled_during
        assert 1 <= sum(o.served for o in at_once) <= 2, at_once
        for outcome in at_once:
            if not outcome.served:
                assert_refused_by_the_cap(outcome)
    else:
        # Every hold is a ledger reservation: none can be taken.
        assert not any(o.served for o in during + at_once), during + at_once
        for outcome in at_once:
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
    # would not be exactly the served answers.) Charges journaled during the outage are posted
    # once the database is back: the writers retry within 5 s, so 30 s is ample.
    ledger.engine.dispose()  # the test's own connections died with the server
    for who, said in ((tenant, outcomes), (capped, capped_outcomes)):
        served = {o.request_id: o.cost for o in said if o.served}
        records = await asyncio.to_thread(who.recorded, served, 30)
        assert {r.request_id: r.cost for r in records} == served
        assert len(records) == len(served)  # none posted twice
        assert who.balance().spent == sum(served.values())
        who.assert_reconciles()
    assert capped.balance().spent <= cap

    # Holds taken before the outage and not released during it lapse at their expiry.
    await asyncio.sleep(HOLD_SECONDS + 1)
    assert tenant.balance().held == 0
    for gateway in (0, 1):
        answer = await asyncio.to_thread(tenant.probe, gateway, PROBE_MARGIN)
        assert answer.headers["x-kakin-request-id"]
    tenant.assert_reconciles()

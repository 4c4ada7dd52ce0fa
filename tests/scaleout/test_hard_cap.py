"""No overspend across processes: 200 requests at once, spread over four ``kakin serve``
processes, against one project's hard cap. With max_tokens the posted spend never passes the
cap; without it (``output_limit = "hold_only"``) by at most one request's actual cost: such
requests run one at a time across the four processes, the others answered 429 (Retry-After)
and sent again until the cap refuses them for good."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import openai
import pytest

from .conftest import HELD_OUTPUT, MakeTenant
from .tenants import Tenant

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

REQUESTS = 200
# Every request is upstream for 300 ms, so the 200 are in flight together: each gateway
# must take its holds while the other three are holding theirs.
SLOW = "latency=300ms"


async def two_hundred_at_once(
    tenant: Tenant, busy: list[openai.RateLimitError] | None = None, **request: object
) -> list[object]:
    """200 chat requests at once, request i on gateway i mod 4; each result is the raw
    response or the APIStatusError that refused it. With ``busy`` a request answered 429 is
    sent again (to the same gateway) until it is served or refused, and each 429 is kept there."""
    clients = [tenant.client(i) for i in range(len(tenant.cluster))]

    async def one(i: int) -> object:
        client = clients[i % len(clients)]
        while True:
            try:
                return await client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"tell me everything, part {i}"}],
                    **request,  # type: ignore[arg-type]
                )
            except openai.RateLimitError as wait:
                if busy is None:
                    return wait
                busy.append(wait)
                await asyncio.sleep(0.05)
            except openai.APIStatusError as refused:
                return refused

    try:
        return await asyncio.gather(*(one(i) for i in range(REQUESTS)))
    finally:
        await asyncio.gather(*(client.close() for client in clients))


def split(results: list[object]) -> tuple[list, list[openai.APIStatusError]]:
    served = [r for r in results if not isinstance(r, openai.APIStatusError)]
    refused = [r for r in results if isinstance(r, openai.APIStatusError)]
    assert {r.status_code for r in refused} <= {402}, [r.message for r in refused if r.status_code != 402]
    return served, refused


def capped(tenant: Tenant, cap: Decimal) -> None:
    tenant.ledger.set_budget(
        tenant.org.id, scope="project", scope_ref=tenant.project.id, period="month", limit=cap, hard_cap=True
    )


async def test_with_max_tokens_four_processes_never_pass_a_hard_cap(tenant_of: MakeTenant) -> None:
    tenant = tenant_of(credit="5")
    # Each request holds about $0.000066 (100 output tokens at $0.60/M plus its input bound)
    # and, asking for a 400-word answer cut at 100 tokens, costs about $0.000062. The cap has
    # room for about 37 holds. Were holds not seen across processes, each gateway would admit
    # a cap's worth (~4 × cap posted); were they not taken at all, all 200 would be served
    # (~5 × cap). Either way ``spent <= cap`` fails.
    cap = Decimal("0.0025")
    capped(tenant, cap)
    results = await two_hundred_at_once(
        tenant, max_tokens=100, extra_headers={"x-kakin-simulate": f"{SLOW}; tokens=400"}
    )
    served, refused = split(results)
    assert served and refused, "the cap should let some requests through and stop others"

    request_ids = [r.headers["x-kakin-request-id"] for r in served]
    records = tenant.recorded(request_ids)
    assert sorted(r.request_id for r in records) == sorted(request_ids), "each served request once"
    assert {r.request_id: r.cost for r in records} == {
        r.headers["x-kakin-request-id"]: Decimal(r.headers["x-kakin-cost-usd"]) for r in served
    }
    spent = sum(r.cost for r in records)
    assert spent <= cap, f"posted {spent} against a hard cap of {cap}"
    assert spent > cap / 2, "the cap, not something else, should have stopped the refused requests"
    assert tenant.balance().spent == spent
    tenant.assert_reconciles()


async def test_without_max_tokens_four_processes_pass_a_hard_cap_by_at_most_one_request(
    tenant_of: MakeTenant,
) -> None:
    tenant = tenant_of(credit="5")
    # Without max_tokens each request holds HELD_OUTPUT (32) output tokens, about $0.00002,
    # and — forwarded unchanged — gets a ~200-token answer, about 6 × its hold. The cap has
    # room for about 25 such holds: if they were all admitted at once, ~6 × cap would be
    # posted, far more than cap + one request's cost. One at a time, ~4 are served.
    cap = Decimal("0.0005")
    capped(tenant, cap)
    busy: list[openai.RateLimitError] = []
    results = await two_hundred_at_once(
        tenant, busy, extra_headers={"x-kakin-simulate": f"{SLOW}; tokens=200"}
    )
    served, refused = split(results)
    assert served and refused, "the cap should let some requests through and stop others"
    assert busy and {(w.status_code, w.code) for w in busy} == {(429, "unbounded_output_in_flight")}
    assert {w.response.headers["retry-after"] for w in busy} == {"1"}
    assert all(r.parse().usage.completion_tokens > HELD_OUTPUT for r in served), "answers pass their hold"

    request_ids = [r.headers["x-kakin-request-id"] for r in served]
    records = tenant.recorded(request_ids)
    assert sorted(r.request_id for r in records) == sorted(request_ids), "each served request once"
    spent = sum(r.cost for r in records)
    largest = max(r.cost for r in records)
    assert spent <= cap + largest, f"posted {spent} against a hard cap of {cap} (one request: {largest})"
    tenant.assert_reconciles()

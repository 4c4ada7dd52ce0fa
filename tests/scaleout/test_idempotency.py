"""No double billing across processes: one Idempotency-Key sent to all four gateways at once
is billed once, and every client ends up with the same answer."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from .conftest import MakeTenant

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


async def test_one_idempotency_key_sent_to_four_processes_at_once_is_billed_once(
    tenant_of: MakeTenant,
) -> None:
    tenant = tenant_of(credit="5")
    key = "order-" + uuid.uuid4().hex
    # Two copies per gateway, all sent at once; the first is upstream for 500 ms, so the others
    # arrive while it is in flight. They use the SDK's own retries: a copy that arrives while
    # the first is in flight is answered 409 (which the SDK retries), never served again.
    clients = [tenant.client(i % 4, max_retries=8) for i in range(8)]

    async def send(client: object) -> object:
        return await client.chat.completions.with_raw_response.create(  # type: ignore[attr-defined]
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "charge my order once " + key}],
            max_tokens=50,
            extra_headers={"Idempotency-Key": key, "x-kakin-simulate": "latency=500ms"},
        )

    try:
        responses = await asyncio.gather(*(send(client) for client in clients))
    finally:
        await asyncio.gather(*(client.close() for client in clients))

    # Every client received the same bytes: one completion, one id, one kakin request id.
    bodies = {r.http_response.content for r in responses}
    assert len(bodies) == 1, f"{len(bodies)} different answers to one Idempotency-Key"
    assert len({r.parse().id for r in responses}) == 1
    originals = [r for r in responses if r.headers.get("x-kakin-idempotent-replay") != "true"]
    assert len(originals) == 1, f"{len(originals)} responses were served (not replayed)"
    # Billed once: one usage record, for the request id the original answered with, charged what
    # its header said; the replays say they cost nothing. Were two copies served (say, one per
    # process), the ledger would hold two records and twice the charge.
    first = originals[0]
    records = tenant.recorded([first.headers["x-kakin-request-id"]])
    assert [r.request_id for r in records] == [first.headers["x-kakin-request-id"]]
    assert records[0].cost == Decimal(first.headers["x-kakin-cost-usd"]) > 0
    assert all(r.headers["x-kakin-cost-usd"] == "0" for r in responses if r is not first)
    assert tenant.balance().spent == records[0].cost
    tenant.assert_reconciles()

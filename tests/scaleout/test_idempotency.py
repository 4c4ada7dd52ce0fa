"""No double billing across processes: one Idempotency-Key sent to all four gateways at once
is billed once, and every client ends up with the same answer."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import openai
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


async def test_a_key_in_flight_on_another_process_is_refused_as_in_progress_then_replayed(
    tenant_of: MakeTenant,
) -> None:
    """While the first request with a key is upstream on process 0, a copy on process 1 is
    told 409 *in progress, retry* (not "already served"); retried after it ends, the copy gets
    the first answer. (Were the copy forwarded, it would answer 200 with a body of its own.)"""
    tenant = tenant_of(credit="5")
    key = "job-" + uuid.uuid4().hex
    request = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "once " + key}],
        "max_tokens": 20,
        "extra_headers": {"Idempotency-Key": key, "x-kakin-simulate": "latency=1500ms"},
    }
    first_client, copy_client = tenant.client(0), tenant.client(1)
    try:
        first = asyncio.ensure_future(first_client.chat.completions.with_raw_response.create(**request))
        await asyncio.sleep(0.7)  # the first is held and upstream by now
        with pytest.raises(openai.ConflictError) as refused:
            await copy_client.chat.completions.create(**request)
        message = refused.value.body["message"]  # type: ignore[index]
        assert "still in progress" in message and "retry" in message, message
        original = await first
        replay = await copy_client.chat.completions.with_raw_response.create(**request)
    finally:
        await asyncio.gather(first_client.close(), copy_client.close())
    assert replay.headers["x-kakin-idempotent-replay"] == "true"
    assert replay.http_response.content == original.http_response.content
    records = tenant.recorded([original.headers["x-kakin-request-id"]])
    assert [r.request_id for r in records] == [original.headers["x-kakin-request-id"]]

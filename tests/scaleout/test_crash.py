"""No lost usage across processes: one of four gateways killed with SIGKILL (with its ledger
writer) in the middle of a load of plain and streamed requests on all four.

Afterwards — the killed gateway restarted in its place, on its own working directory, as a
service manager would — every response a client received in full is charged exactly once, at
the cost the client was told; the ledger balances; and no hold outlives its expiry: once the
killed process's holds have expired, a request needing all the organisation's credit but
less than one hold is served by every gateway."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import openai
import pytest

from .conftest import HOLD_SECONDS, MakeTenant
from .tenants import Tenant

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

VICTIM = 3
# Each load request holds its input bound plus 200 output tokens of gpt-4o-mini: at least
# $0.00012. The probe leaves $0.0001 of credit unclaimed, so one hold left behind is seen.
LOAD_MAX_TOKENS = 200
PROBE_MARGIN = Decimal("0.0001")


@dataclass
class Load:
    """Workers sending plain and streamed requests to every gateway until stopped. ``received``
    maps each response a client received in full to (gateway, the cost it was told)."""

    tenant: Tenant
    workers_per_gateway: int = 4
    received: dict[str, tuple[int, Decimal]] = field(default_factory=dict)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def from_gateway(self, index: int) -> int:
        return sum(1 for gateway, _ in self.received.values() if gateway == index)

    async def run(self) -> None:
        clients = [self.tenant.client(i, timeout=10) for i in range(len(self.tenant.cluster))]
        try:
            await asyncio.gather(
                *(
                    self._work(index, client, worker)
                    for index, client in enumerate(clients)
                    for worker in range(self.workers_per_gateway)
                )
            )
        finally:
            await asyncio.gather(*(client.close() for client in clients))

    async def _work(self, index: int, client: openai.AsyncOpenAI, worker: int) -> None:
        n = 0
        while not self.stopped.is_set():
            n += 1
            request = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"gateway {index} worker {worker} request {n}"}],
                "max_tokens": LOAD_MAX_TOKENS,
                "extra_headers": {"x-kakin-simulate": "latency=20ms; chunk-delay=2ms; tokens=30"},
            }
            try:
                if n % 2:
                    got = await self._plain(client, request)
                else:
                    got = await self._streamed(client, request)
            except (openai.APIError, httpx.HTTPError):
                await asyncio.sleep(0.05)  # refused, or the gateway died under us: not received
                continue
            if got is not None:
                self.received[got[0]] = (index, got[1])

    @staticmethod
    async def _plain(client: openai.AsyncOpenAI, request: dict) -> tuple[str, Decimal]:
        raw = await client.chat.completions.with_raw_response.create(**request)
        raw.parse()  # the whole body arrived and is a completion
        return raw.headers["x-kakin-request-id"], Decimal(raw.headers["x-kakin-cost-usd"])

    @staticmethod
    async def _streamed(client: openai.AsyncOpenAI, request: dict) -> tuple[str, Decimal] | None:
        stream = await client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        final = None
        async for chunk in stream:  # ends only at `data: [DONE]`; a cut stream raises
            if chunk.usage is not None:
                final = chunk
        if final is None:
            return None
        kakin = final.model_extra["kakin"]
        return kakin["request_id"], Decimal(kakin["cost_usd"])


async def test_a_gateway_killed_mid_load_loses_no_delivered_usage_and_leaves_no_hold(
    tenant_of: MakeTenant,
) -> None:
    tenant = tenant_of(credit="1")  # no payment method: credit is the limit the probe tests
    cluster = tenant.cluster
    load = Load(tenant)
    running = asyncio.ensure_future(load.run())
    try:
        deadline = time.monotonic() + 30
        while (len(load.received) < 120 or load.from_gateway(VICTIM) < 20) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert load.from_gateway(VICTIM) >= 20, "the victim should have answered some requests"
        cluster[VICTIM].kill()  # the gateway and its ledger writer, mid-load
        killed_at = time.monotonic()
        await asyncio.sleep(0.5)  # the others keep serving
    finally:
        load.stopped.set()
        await running
    received = dict(load.received)
    await asyncio.to_thread(cluster[VICTIM].start)  # in its place, on its own directory
    await asyncio.to_thread(cluster[VICTIM].wait_ready)

    records = await asyncio.to_thread(tenant.recorded, received)
    charged = {r.request_id: r.cost for r in records}
    assert len(charged) == len(records), "a request was charged twice"
    missing = set(received) - set(charged)
    assert not missing, f"{len(missing)} delivered responses were not charged: {sorted(missing)[:5]}"
    assert {rid: charged[rid] for rid in received} == {rid: cost for rid, (_, cost) in received.items()}
    tenant.assert_reconciles()

    # The killed process's holds lapse at their expiry: then nothing is held any more, and every
    # gateway (the restarted one included) can hold all the credit but the margin.
    await asyncio.sleep(max(0.0, killed_at + HOLD_SECONDS + 1 - time.monotonic()))
    assert tenant.balance().held == 0
    for gateway in range(len(cluster)):
        answer = await asyncio.to_thread(tenant.probe, gateway, PROBE_MARGIN)
        assert answer.headers["x-kakin-request-id"]
    tenant.assert_reconciles()

"""Requests that set no output limit: the gateway holds ``default_max_output_tokens`` for
each answer and, with ``gateway.output_limit = "enforce"`` (the default), sends that limit
upstream, so no answer costs more than its hold and a hard cap holds under concurrency —
on SQLite and with several gateway processes on one PostgreSQL ledger. With ``"hold_only"``
the request is forwarded unchanged and may cost more than its hold, so under a cap such
requests run one at a time per organisation (the others get a 429 with Retry-After), and a
cap is passed by at most one request's actual cost. The simulated provider is asked for
answers far longer than the limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest
from google.genai import errors as genai_errors
from google.genai import types

from kakin.ledger import Ledger
from kakin.server import RunningGateway

from .conftest import MakeTenant, Tenant, start_gateway, tenant_factory

HELD = 32  # gateway.default_max_output_tokens in this module
LONG = "tokens=400"  # the simulated answer, before any output limit: about 400 words
CAP = Decimal("0.0004")  # a hard cap with room for about a dozen holds of gpt-4o-mini


def limited_gateway(url: str, **env: str) -> tuple[Ledger, RunningGateway]:
    return start_gateway(url, KAKIN_GATEWAY__DEFAULT_MAX_OUTPUT_TOKENS=str(HELD), **env)


@pytest.fixture(scope="module")
def make(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeTenant]:
    """A gateway on SQLite in local accounting, enforcing output limits (the defaults)."""
    ledger, gateway = limited_gateway(f"sqlite:///{tmp_path_factory.mktemp('limit') / 'kakin.db'}")
    try:
        yield tenant_factory(ledger, gateway)
    finally:
        gateway.stop()
        ledger.close()


def reserved(raw: object) -> Decimal:
    return Decimal(raw.headers["x-kakin-reserved-usd"])  # type: ignore[attr-defined]


def test_open_ended_chat_is_cut_at_the_held_limit_for_every_choice(make: MakeTenant) -> None:
    tenant = make()
    raw = tenant.openai().chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "tell me everything"}],
        n=2,
        extra_headers={"x-kakin-simulate": LONG},
    )
    completion = raw.parse()
    assert [c.finish_reason for c in completion.choices] == ["length", "length"]
    assert HELD < completion.usage.completion_tokens <= 2 * HELD
    record = tenant.record(raw.headers["x-kakin-request-id"])
    assert 0 < record.cost <= reserved(raw)


def test_open_ended_chat_stream_is_cut_at_the_held_limit(make: MakeTenant) -> None:
    tenant = make()
    stream = tenant.openai().chat.completions.create(
        model="o4-mini",  # a reasoning model: the limit is sent as max_completion_tokens
        messages=[{"role": "user", "content": "tell me everything"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-kakin-simulate": LONG},
    )
    chunks = list(stream)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens <= HELD
    [record] = tenant.usage()
    assert record.output_tokens == chunks[-1].usage.completion_tokens


def test_open_ended_response_is_cut_at_the_held_limit(make: MakeTenant) -> None:
    tenant = make()
    raw = tenant.openai().responses.with_raw_response.create(
        model="gpt-5-mini", input="tell me everything", extra_headers={"x-kakin-simulate": LONG}
    )
    response = raw.parse()
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens <= HELD
    assert tenant.record(raw.headers["x-kakin-request-id"]).cost <= reserved(raw)


def test_open_ended_gemini_answer_is_cut_at_the_held_limit(make: MakeTenant) -> None:
    tenant = make()
    client = tenant.genai()
    config = types.GenerateContentConfig(
        http_options=types.HttpOptions(headers={"x-kakin-simulate": LONG}),
    )
    response = client.models.generate_content(
        model="gemini-2.5-flash", contents="tell me everything", config=config
    )
    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    meta = response.usage_metadata
    assert (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0) <= HELD
    headers = response.sdk_http_response.headers
    assert tenant.record(headers["x-kakin-request-id"]).cost <= Decimal(headers["x-kakin-reserved-usd"])


def test_a_request_that_sets_its_own_limit_gets_it(make: MakeTenant) -> None:
    tenant = make()
    completion = tenant.openai().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "tell me everything"}],
        max_tokens=10 * HELD,
        extra_headers={"x-kakin-simulate": LONG},
    )
    assert HELD < completion.usage.completion_tokens <= 10 * HELD


@pytest.fixture(scope="module")
def hold_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeTenant]:
    """A gateway on SQLite in local accounting (one process) with ``output_limit = "hold_only"``."""
    url = f"sqlite:///{tmp_path_factory.mktemp('hold_only') / 'kakin.db'}"
    ledger, gateway = limited_gateway(url, KAKIN_GATEWAY__OUTPUT_LIMIT="hold_only")
    try:
        yield tenant_factory(ledger, gateway)
    finally:
        gateway.stop()
        ledger.close()


def test_hold_only_forwards_the_request_unchanged(hold_only: MakeTenant) -> None:
    """The trade-off of ``output_limit = "hold_only"``: the answer is not cut, and costs more
    than was held for it."""
    tenant = hold_only()
    raw = tenant.openai().chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "tell me everything"}],
        extra_headers={"x-kakin-simulate": LONG},
    )
    completion = raw.parse()
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens > HELD
    assert tenant.record(raw.headers["x-kakin-request-id"]).cost > reserved(raw)


# ---------------------------------------------------------------- the hard cap under concurrency


async def open_ended(client: openai.AsyncOpenAI, count: int) -> list[object]:
    """``count`` chat requests at once, none setting max_tokens, each asking for a long answer."""

    async def one(i: int) -> object:
        try:
            return await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"tell me everything, part {i}"}],
                extra_headers={"x-kakin-simulate": f"latency=30ms;{LONG}"},
            )
        except openai.APIStatusError as refused:
            return refused

    return await asyncio.gather(*(one(i) for i in range(count)))


def assert_cap_held(tenant: Tenant, results: list[object]) -> None:
    """SPEC: without max_tokens a hard cap is passed by at most one request's actual cost."""
    served = [r for r in results if not isinstance(r, openai.APIStatusError)]
    refused = [r for r in results if isinstance(r, openai.APIStatusError)]
    assert served and refused, "the cap should let some requests through and stop others"
    assert {r.status_code for r in refused} == {402}
    records = tenant.usage()
    assert len(records) == len(served)
    balance = tenant.balance()
    assert balance.spent == sum(r.cost for r in records)
    assert balance.spent <= CAP + max(r.cost for r in records)
    assert balance.held == 0
    assert tenant.ledger.reconcile(tenant.org.id).ok


async def test_120_concurrent_open_ended_requests_keep_a_hard_cap(make: MakeTenant) -> None:
    tenant = make(credit="5")
    tenant.ledger.set_budget(tenant.org.id, period="month", limit=CAP, hard_cap=True)
    assert_cap_held(tenant, await open_ended(tenant.async_openai(timeout=30), 120))


@pytest.mark.postgres
@pytest.mark.parametrize("output_limit", ["enforce", "hold_only"])
async def test_four_gateways_on_one_postgresql_ledger_keep_a_hard_cap_on_open_ended_requests(
    gateway_pg_url: str, output_limit: str
) -> None:
    """Four gateways over one PostgreSQL ledger (shared accounting, holds as reservations), 30
    requests each at once. With hold_only a request told to wait (429) is sent again."""
    running = [
        limited_gateway(
            gateway_pg_url,
            KAKIN_GATEWAY__ACCOUNTING="shared",
            KAKIN_GATEWAY__SHARED_HOLDS="ledger",
            KAKIN_GATEWAY__OUTPUT_LIMIT=output_limit,
        )
        for _ in range(4)
    ]
    try:
        tenant = tenant_factory(*running[0])(credit="5")
        tenant.ledger.set_budget(tenant.org.id, period="month", limit=CAP, hard_cap=True)
        clients = [
            openai.AsyncOpenAI(
                base_url=gateway.url + "/v1", api_key=tenant.plaintext, max_retries=0, timeout=30
            )
            for _, gateway in running
        ]
        if output_limit == "enforce":
            batches = await asyncio.gather(*(open_ended(client, 30) for client in clients))
            assert_cap_held(tenant, [result for batch in batches for result in batch])
        else:
            answered = await asyncio.gather(*(open_ended_until_answered(client, 30) for client in clients))
            assert_cap_held(tenant, [result for results, _ in answered for result in results])
            assert_one_at_a_time([wait for _, busy in answered for wait in busy])
    finally:
        for ledger, gateway in running:
            gateway.stop()
            ledger.close()


# ------------------------------------------- hold_only: one open-ended request at a time under a cap


async def open_ended_until_answered(client: openai.AsyncOpenAI, count: int) -> tuple[list[object], list]:
    """``count`` open-ended requests at once, each sent again after a 429 (as an SDK with
    retries would, sooner) until it is served or refused for good; returns the final results
    and the 429s met on the way."""
    busy: list[openai.RateLimitError] = []

    async def one(i: int) -> object:
        while True:
            try:
                return await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"tell me everything, part {i}"}],
                    extra_headers={"x-kakin-simulate": f"latency=30ms;{LONG}"},
                )
            except openai.RateLimitError as wait:
                busy.append(wait)
                await asyncio.sleep(0.02)
            except openai.APIStatusError as refused:
                return refused

    return list(await asyncio.gather(*(one(i) for i in range(count)))), busy


def assert_one_at_a_time(busy: list[openai.RateLimitError]) -> None:
    assert busy, "open-ended requests under a cap should have waited for each other"
    for wait in busy:
        assert wait.status_code == 429
        assert wait.response.headers["retry-after"] == "1"
        assert wait.code == "unbounded_output_in_flight"
        assert "set an output limit (max_tokens" in wait.message


async def test_hold_only_admits_one_open_ended_request_at_a_time_under_a_hard_cap(
    hold_only: MakeTenant,
) -> None:
    """120 open-ended requests at once, each costing ~12 times its hold: were they admitted
    together (as their holds fit under the cap), the cap would be passed by many requests'
    cost; one at a time, by at most one's."""
    tenant = hold_only(credit="5")
    tenant.ledger.set_budget(tenant.org.id, period="month", limit=CAP, hard_cap=True)
    results, busy = await open_ended_until_answered(tenant.async_openai(timeout=30), 120)
    assert_cap_held(tenant, results)
    assert_one_at_a_time(busy)


async def test_hold_only_on_prepaid_credit_is_passed_by_at_most_one_request(hold_only: MakeTenant) -> None:
    """No payment method: credit is the cap, and it goes below zero by at most one request's cost."""
    tenant = hold_only(credit=str(CAP))
    results, busy = await open_ended_until_answered(tenant.async_openai(timeout=30), 60)
    served = [r for r in results if not isinstance(r, openai.APIStatusError)]
    refused = [r for r in results if isinstance(r, openai.APIStatusError)]
    assert served and refused and {r.status_code for r in refused} == {402}
    records = tenant.usage()
    assert len(records) == len(served)
    balance = tenant.balance()
    assert balance.spent <= CAP + max(r.cost for r in records)
    assert balance.held == 0
    assert tenant.ledger.reconcile(tenant.org.id).ok
    assert_one_at_a_time(busy)


async def test_hold_only_leaves_bounded_and_uncapped_requests_concurrent(hold_only: MakeTenant) -> None:
    """Requests with max_tokens are never made to wait; nor are open-ended ones of an
    organisation with a payment method and no hard cap (there is nothing to pass)."""
    capped = hold_only(credit="5")
    capped.ledger.set_budget(capped.org.id, period="month", limit=Decimal("1"), hard_cap=True)
    uncapped = hold_only(credit=None, payment_method=True)
    slow = {"x-kakin-simulate": f"latency=200ms;{LONG}"}

    async def ask(tenant: Tenant, **limit: object) -> list[object]:
        client = tenant.async_openai(timeout=30)
        return await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "tell me everything"}],
                    extra_headers=slow,
                    **limit,  # type: ignore[arg-type]
                )
                for _ in range(10)
            )
        )

    bounded, open_ended = await asyncio.gather(ask(capped, max_tokens=HELD), ask(uncapped))
    assert len(bounded) == len(open_ended) == 10  # none refused
    assert all(c.usage.completion_tokens > HELD for c in open_ended)  # forwarded unchanged


async def test_a_request_told_to_wait_spends_no_token_allowance(hold_only: MakeTenant) -> None:
    """A 429 for an open-ended request in flight gives the request's tokens back to the rate
    limiter: resending it while it waits never exhausts the key's token allowance."""
    tenant = hold_only(credit="5", tpm=300)  # each open-ended request here is bounded at ~60 tokens
    client = tenant.async_openai(timeout=30)

    def ask(simulate: str) -> Any:
        return client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "tell me everything"}],
            extra_headers={"x-kakin-simulate": simulate},
        )

    first = asyncio.ensure_future(ask("latency=1500ms;tokens=10"))
    await asyncio.sleep(0.3)
    for _ in range(10):  # ~600 tokens of bounds: past the allowance, were they kept
        with pytest.raises(openai.RateLimitError) as wait:
            await ask("tokens=10")
        assert wait.value.code == "unbounded_output_in_flight"
    await first
    assert (await ask("tokens=10")).choices  # served: the allowance is intact
    assert len(tenant.usage()) == 2


async def test_a_gemini_request_told_to_wait_gets_googles_error_and_passes_with_a_limit(
    hold_only: MakeTenant,
) -> None:
    tenant = hold_only(credit="5")
    first = asyncio.ensure_future(
        tenant.async_openai(timeout=30).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "tell me everything"}],
            extra_headers={"x-kakin-simulate": "latency=1500ms;tokens=10"},
        )
    )
    await asyncio.sleep(0.3)
    gemini = tenant.genai().aio.models
    with pytest.raises(genai_errors.ClientError) as wait:
        await gemini.generate_content(model="gemini-2.5-flash", contents="tell me everything")
    assert (wait.value.code, wait.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert "maxOutputTokens" in wait.value.message
    limited = types.GenerateContentConfig(max_output_tokens=HELD)
    answer = await gemini.generate_content(model="gemini-2.5-flash", contents="hi", config=limited)
    assert answer.candidates  # an output limit: admitted while the other is in flight
    assert not first.done()
    await first
    assert len(tenant.usage()) == 2

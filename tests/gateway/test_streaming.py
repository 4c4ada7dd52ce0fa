"""Streams through the gateway: billed exactly like their non-streamed twins, the usage chunk
shown only to clients that asked for it, abandoned and truncated streams still billed."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import httpx
import orjson
from google.genai import types

from kakin.money import to_pico

from . import expected
from .conftest import Tenant


def only_costs(tenant: Tenant) -> list[int]:
    return [to_pico(r.cost) for r in tenant.usage()]


def test_openai_reasoning_stream_costs_what_its_twin_costs(tenant: Tenant) -> None:
    client = tenant.openai()
    request = {
        "model": "o4-mini",
        "messages": [{"role": "user", "content": "plan the budget " + uuid.uuid4().hex}],
        "max_completion_tokens": 400,
        "reasoning_effort": "medium",
    }
    plain = client.chat.completions.create(**request)
    chunks = list(
        client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True})
    )
    streamed = chunks[-1].usage
    assert streamed.completion_tokens_details.reasoning_tokens > 0
    assert streamed.model_dump() == plain.usage.model_dump()
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == plain.choices[0].message.content
    )
    first, second = tenant.usage()
    assert to_pico(first.cost) == to_pico(second.cost) > 0
    expected.assert_billed(second, expected.openai_chat(streamed), "o4-mini", "openai")
    tenant.assert_nothing_held()


def test_usage_chunk_reaches_only_clients_that_asked(tenant: Tenant) -> None:
    client = tenant.openai()
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "count to five"}]}
    silent = list(client.chat.completions.create(**request, stream=True))
    assert silent and all(chunk.usage is None and chunk.choices for chunk in silent)
    asked = list(
        client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True})
    )
    assert asked[-1].choices == [] and asked[-1].usage.completion_tokens > 0
    assert all(chunk.usage is None for chunk in asked[:-1])
    # Both were billed, and for the same usage: kakin asked upstream for it either way.
    costs = only_costs(tenant)
    assert len(costs) == 2 and costs[0] == costs[1] > 0
    expected.assert_billed(tenant.usage()[0], expected.openai_chat(asked[-1].usage), "gpt-4o-mini", "openai")


async def test_async_openai_stream_and_responses_stream(tenant: Tenant) -> None:
    client = tenant.async_openai()
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "async stream"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    last = None
    async for chunk in stream:
        last = chunk
    [record] = tenant.usage()
    expected.assert_billed(record, expected.openai_chat(last.usage), "gpt-4o-mini", "openai")

    request = {
        "model": "gpt-5-mini",
        "input": "explain the bill " + uuid.uuid4().hex,
        "max_output_tokens": 300,
    }
    plain = await client.responses.create(**request)
    completed = None
    async for event in await client.responses.create(**request, stream=True):
        if event.type == "response.completed":
            completed = event.response
    assert completed.usage.model_dump() == plain.usage.model_dump()
    _, plain_record, stream_record = tenant.usage()
    assert to_pico(plain_record.cost) == to_pico(stream_record.cost)
    expected.assert_billed(stream_record, expected.openai_responses(completed.usage), "gpt-5-mini", "openai")


def test_anthropic_stream_with_cache_tokens_costs_what_its_twin_costs(tenant: Tenant) -> None:
    client = tenant.anthropic()

    def ask(prefix: str, question: str, stream: bool):  # type: ignore[no-untyped-def]
        request = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 80,
            "system": [{"type": "text", "text": prefix, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": question}],
        }
        if not stream:
            return client.messages.create(**request).usage
        with client.messages.stream(**request) as events:
            return events.get_final_message().usage

    filler = "Budgets stop spend before it happens. " * 300
    # A stream that writes the prompt cache is billed the cache-write rate.
    stream_write = ask(uuid.uuid4().hex + filler, "q", stream=True)
    assert stream_write.cache_creation_input_tokens >= 1024
    # A prefix written once, then read by a plain call and by its streamed twin.
    shared = uuid.uuid4().hex + filler
    ask(shared, "q", stream=False)
    plain_read = ask(shared, "again", stream=False)
    stream_read = ask(shared, "again", stream=True)
    assert stream_read.model_dump() == plain_read.model_dump() and stream_read.cache_read_input_tokens >= 1024
    records = tenant.usage()
    assert len(records) == 4
    assert to_pico(records[2].cost) == to_pico(records[3].cost) < to_pico(records[1].cost)
    expected.assert_billed(
        records[0], expected.anthropic_messages(stream_write), "claude-sonnet-4-6", "anthropic"
    )
    expected.assert_billed(
        records[3], expected.anthropic_messages(stream_read), "claude-sonnet-4-6", "anthropic"
    )


async def test_async_anthropic_stream(tenant: Tenant) -> None:
    async with tenant.async_anthropic().messages.stream(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "stream please"}]
    ) as events:
        message = await events.get_final_message()
    [record] = tenant.usage()
    expected.assert_billed(
        record, expected.anthropic_messages(message.usage), "claude-haiku-4-5", "anthropic"
    )


def test_gemini_stream_costs_what_its_twin_costs(tenant: Tenant) -> None:
    client = tenant.genai()
    config = types.GenerateContentConfig(max_output_tokens=300)
    prompt = "forecast the month " + uuid.uuid4().hex
    plain = client.models.generate_content(model="gemini-2.5-flash", contents=prompt, config=config)
    chunks = list(
        client.models.generate_content_stream(model="gemini-2.5-flash", contents=prompt, config=config)
    )
    meta = chunks[-1].usage_metadata
    assert meta.thoughts_token_count == plain.usage_metadata.thoughts_token_count > 0
    first, second = tenant.usage()
    assert to_pico(first.cost) == to_pico(second.cost)
    expected.assert_billed(second, expected.gemini(meta), "gemini-2.5-flash", "google")


def wait_until(condition, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_client_disconnect_mid_stream_bills_what_was_produced_and_leaves_no_hold(tenant: Tenant) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "a long story"}],
        "max_tokens": 2000,
        "stream": True,
    }
    headers = {**tenant.headers(), "x-kakin-simulate": "tokens=400; chunks=200; chunk-delay=20ms"}
    with (
        httpx.Client(timeout=10) as http,
        http.stream("POST", tenant.url + "/v1/chat/completions", json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        request_id = response.headers["x-kakin-request-id"]
        for line in response.iter_lines():
            if line.startswith("data: {"):
                break  # one event received; closing the connection abandons the stream
    assert wait_until(lambda: len(tenant.usage()) == 1 and tenant.balance().held == 0)
    record = tenant.record(request_id)
    assert record.cost > 0 and 0 < record.output_tokens < 400
    assert tenant.balance().spent == record.cost
    tenant.assert_nothing_held()


def test_stream_truncated_upstream_is_billed_from_kakins_count(tenant: Tenant) -> None:
    client = tenant.openai()
    request = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "cut me off"}],
        "stream": True,
    }
    raw = client.chat.completions.with_raw_response.create(
        **request, extra_headers={"x-kakin-simulate": "truncate=4"}
    )
    delivered = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    record = tenant.record(raw.headers["x-kakin-request-id"])
    assert record.cost > 0 and record.input_tokens > 0 and record.output_tokens > 0
    assert delivered and any("no usage" in str(item) for item in record.cost_items)
    tenant.assert_nothing_held()


def test_stream_without_usage_is_billed_like_its_twin(tenant: Tenant) -> None:
    client = tenant.openai()
    request = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "no usage " + uuid.uuid4().hex}],
    }
    plain = client.chat.completions.create(**request)
    list(
        client.chat.completions.create(**request, stream=True, extra_headers={"x-kakin-simulate": "no-usage"})
    )
    twin, counted = tenant.usage()
    # kakin counts OpenAI text exactly, so its own count equals what the provider would have said.
    assert (counted.input_tokens, counted.output_tokens) == (
        plain.usage.prompt_tokens,
        plain.usage.completion_tokens,
    )
    assert to_pico(counted.cost) == to_pico(twin.cost) > 0


def test_plain_answer_without_usage_is_billed_at_its_bound(tenant: Tenant) -> None:
    """Never a silent zero: the exact input count and the whole max_tokens. The hold may have
    been larger (taken on a bound found without counting), never smaller."""
    from kakin.pricing import Usage, price
    from kakin.tokens import count_messages

    messages = [{"role": "user", "content": "quiet"}]
    response = httpx.post(
        tenant.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": messages, "max_tokens": 30},
        headers={**tenant.headers(), "x-kakin-simulate": "no-usage"},
    )
    assert response.status_code == 200 and "usage" not in orjson.loads(response.content)
    record = tenant.record(response.headers["x-kakin-request-id"])
    counted = count_messages(messages, "gpt-4o-mini").tokens
    assert (record.input_tokens, record.output_tokens) == (counted, 30)
    assert record.cost == price(Usage(input_tokens=counted, output_tokens=30), "gpt-4o-mini").total > 0
    assert 0 < to_pico(record.cost) <= to_pico(Decimal(response.headers["x-kakin-reserved-usd"]))


def test_stream_stalled_upstream_ends_with_an_error_event_and_is_billed(tenant: Tenant) -> None:
    # The module's gateway gives up on an upstream silent for 1.5 s; this one pauses 2 s per event.
    response = httpx.post(
        tenant.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "stall"}], "stream": True},
        headers={**tenant.headers(), "x-kakin-simulate": "chunks=4; chunk-delay=2s"},
        timeout=10,
    )
    assert response.status_code == 200
    last = response.text.strip().rsplit("\n\n", 1)[-1]
    assert last.startswith("data: {") and "broke off the stream" in orjson.loads(last[6:])["error"]["message"]
    record = tenant.record(response.headers["x-kakin-request-id"])
    assert record.cost > 0 and record.input_tokens > 0  # what was consumed before the stall
    tenant.assert_nothing_held()

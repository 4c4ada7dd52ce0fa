"""Streams through the gateway: billed exactly like their non-streamed twins, the usage chunk
shown only to clients that asked for it, the cost carried in the final event, abandoned streams
stopped upstream at once and billed for what was produced, truncated streams still billed."""

from __future__ import annotations

import re
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from google.genai import types

from kakin.money import to_pico
from kakin.pricing import Usage
from kakin.tokens import count_messages, count_text

from . import expected
from .conftest import Tenant

# The module's gateway (the ``running`` fixture) takes an upstream silent for this long as timed
# out: well past the 1 s pause of the hang-up test below, so a loaded machine never turns that
# pause into a 504.
UPSTREAM_TIMEOUT_SECONDS = 2.5


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
    # The module's gateway gives up on an upstream silent for 2.5 s; this one pauses 4 s per event.
    response = httpx.post(
        tenant.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "stall"}], "stream": True},
        headers={**tenant.headers(), "x-kakin-simulate": "chunks=4; chunk-delay=4s"},
        timeout=10,
    )
    assert response.status_code == 200
    last = response.text.strip().rsplit("\n\n", 1)[-1]
    assert last.startswith("data: {") and "broke off the stream" in orjson.loads(last[6:])["error"]["message"]
    record = tenant.record(response.headers["x-kakin-request-id"])
    assert record.cost > 0 and record.input_tokens > 0  # what was consumed before the stall
    tenant.assert_nothing_held()


# ---------------------------------------------------------------------- the cost in the stream


def assert_receipt(tenant: Tenant, receipt: dict[str, Any]) -> Any:
    """kakin's fields in a stream's final event state exactly what the ledger charged."""
    record = tenant.record(receipt["request_id"])
    assert re.fullmatch(r"\d+\.\d+", receipt["cost_usd"]), receipt  # a plain decimal string
    assert Decimal(receipt["cost_usd"]) == record.cost > 0
    if "credit_remaining_usd" in receipt:  # local accounting knows it without a ledger read
        assert Decimal(receipt["credit_remaining_usd"]) == tenant.balance().available
    return record


def sse_events(body: bytes) -> list[bytes]:
    return [event for event in body.split(b"\n\n") if event.strip()]


def sse_data(event: bytes) -> Any:
    [line] = [line for line in event.split(b"\n") if line.startswith(b"data: ")]
    return orjson.loads(line[6:])


def test_openai_chat_stream_carries_its_cost_in_the_usage_chunk(tenant: Tenant) -> None:
    chunks = list(
        tenant.openai().chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "what did this cost " + uuid.uuid4().hex}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    final = chunks[-1]
    assert final.choices == [] and final.usage.completion_tokens > 0
    assert all("kakin" not in (chunk.model_extra or {}) for chunk in chunks[:-1])
    record = assert_receipt(tenant, final.model_extra["kakin"])
    expected.assert_billed(record, expected.openai_chat(final.usage), "gpt-4o-mini", "openai")


def test_openai_chat_stream_without_usage_carries_its_cost_in_a_comment(tenant: Tenant) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "quiet cost"}], "stream": True}
    response = httpx.post(tenant.url + "/v1/chat/completions", json=body, headers=tenant.headers())
    events = sse_events(response.content)
    # No usage chunk (the client did not ask for it): an SSE comment, which SDKs skip, before [DONE].
    assert events[-1] == b"data: [DONE]" and events[-2].startswith(b": kakin {")
    assert all(b'"usage":{' not in event and b'"kakin":' not in event for event in events[:-2])
    assert_receipt(tenant, orjson.loads(events[-2][len(b": kakin ") :]))
    chunks = list(tenant.openai().chat.completions.create(**body))  # the SDK reads it as before
    assert chunks and all(chunk.choices and chunk.usage is None for chunk in chunks)


def test_responses_stream_carries_its_cost_in_the_completed_response(tenant: Tenant) -> None:
    with tenant.openai().responses.stream(
        model="gpt-5-mini", input="receipt " + uuid.uuid4().hex, max_output_tokens=300
    ) as stream:
        [event] = [event for event in stream if event.type == "response.completed"]
        final = stream.get_final_response()
    receipt = event.response.model_extra["kakin"]
    assert final.model_extra["kakin"] == receipt  # the SDK's final response keeps it too
    record = assert_receipt(tenant, receipt)
    expected.assert_billed(record, expected.openai_responses(final.usage), "gpt-5-mini", "openai")


def test_anthropic_stream_carries_its_cost_in_the_message_delta(tenant: Tenant) -> None:
    with tenant.anthropic().messages.stream(
        model="claude-haiku-4-5", max_tokens=60, messages=[{"role": "user", "content": "the bill please"}]
    ) as stream:
        deltas = [event for event in stream if event.type == "message_delta"]
        message = stream.get_final_message()
    [delta] = deltas
    record = assert_receipt(tenant, delta.model_extra["kakin"])
    expected.assert_billed(
        record, expected.anthropic_messages(message.usage), "claude-haiku-4-5", "anthropic"
    )


@pytest.mark.parametrize("alt", ["sse", None])
def test_gemini_stream_carries_its_cost_in_the_last_chunk(tenant: Tenant, alt: str | None) -> None:
    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent" + ("?alt=sse" if alt else "")
    body = {"contents": [{"parts": [{"text": "the month's cost " + uuid.uuid4().hex}]}]}
    response = httpx.post(tenant.url + path, json=body, headers={"x-goog-api-key": tenant.plaintext})
    assert response.status_code == 200
    if alt:
        chunks = [sse_data(event) for event in sse_events(response.content)]
    else:
        chunks = orjson.loads(response.content)  # still one JSON array
    assert all("kakin" not in chunk for chunk in chunks[:-1])
    record = assert_receipt(tenant, chunks[-1]["kakin"])
    usage = chunks[-1]["usageMetadata"]
    meta = types.GenerateContentResponseUsageMetadata.model_validate(usage)
    expected.assert_billed(record, expected.gemini(meta), "gemini-2.5-flash", "google")
    # google-genai drops fields it does not know: the SDK reads the stamped stream as before.
    client = tenant.genai()
    sdk_chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="sdk"))
    assert sdk_chunks[-1].usage_metadata.candidates_token_count > 0


def test_a_replayed_stream_repeats_its_receipt_and_a_cache_hit_has_none(tenant: Tenant) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "once " + uuid.uuid4().hex}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    url = tenant.url + "/v1/chat/completions"
    headers = {**tenant.headers(), "Idempotency-Key": uuid.uuid4().hex}
    first = httpx.post(url, json=body, headers={**headers, "x-kakin-cache": "on"})
    # The retry gets the first answer as it was: its receipt names the one charge made.
    again = httpx.post(url, json=body, headers=headers)
    assert again.headers["x-kakin-idempotent-replay"] == "true"
    assert again.content == first.content and again.headers["x-kakin-cost-usd"] == "0"
    assert_receipt(tenant, sse_data(sse_events(first.content)[-2])["kakin"])
    # Another request answered from the cache costs nothing: no receipt in its stream.
    hit = httpx.post(url, json=body, headers={**tenant.headers(), "x-kakin-cache": "on"})
    assert hit.headers["x-kakin-cache"] == "hit" and hit.headers["x-kakin-cost-usd"] == "0"
    assert b'"kakin":' not in hit.content
    answer = [sse_data(event) for event in sse_events(first.content)[:-1]]
    del answer[-1]["kakin"]
    assert [sse_data(event) for event in sse_events(hit.content)[:-1]] == answer
    assert len([r for r in tenant.usage() if not r.cache_hit]) == 1


# ---------------------------------------------------------------------- abandoned streams


# 400 words in 200 deltas, one every 20 ms: about 4 s for the whole answer.
PACED = "tokens=400; chunks=200; chunk-delay=20ms"


def produced_text(tenant: Tenant, body: dict[str, Any], events: int) -> str:
    """The text of the first ``events`` events of the simulator's answer to ``body`` (the same
    prompt gets the same answer), asked of the simulator directly, unpaced."""
    response = httpx.post(
        tenant.gateway.simulator.url + "/v1/chat/completions",
        json=body,
        headers={"x-kakin-simulate": PACED.replace("; chunk-delay=20ms", "")},
    )
    chunks = [sse_data(event) for event in sse_events(response.content)[:events]]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def test_abandoned_stream_stops_the_provider_and_bills_what_it_produced(tenant: Tenant) -> None:
    messages = [{"role": "user", "content": "a long story " + uuid.uuid4().hex}]
    body = {"model": "gpt-4o-mini", "messages": messages, "max_tokens": 2000, "stream": True}
    simulator = tenant.gateway.simulator
    stream = tenant.openai().chat.completions.create(**body, extra_headers={"x-kakin-simulate": PACED})
    received = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)
            if len(received) == 3:
                break
    stream.close()  # the client goes away
    request_id = stream.response.headers["x-kakin-request-id"]
    upstream = simulator.streams[-1]
    # The provider stopped generating at once: it wrote a few events of about 200.
    assert wait_until(lambda: upstream.hung_up)
    assert upstream.sent < upstream.events // 4
    assert wait_until(lambda: tenant.balance().held == 0 and len(tenant.usage()) == 1)
    record = tenant.record(request_id)
    # Billed: the input and the output the provider produced (received by kakin), counted by kakin.
    assert record.input_tokens == count_messages(messages, "gpt-4o-mini").tokens
    low = count_text("".join(received), "gpt-4o-mini").tokens
    high = count_text(produced_text(tenant, body, upstream.sent), "gpt-4o-mini").tokens
    assert 0 < low <= record.output_tokens <= high < 400 // 4
    usage = Usage(input_tokens=record.input_tokens, output_tokens=record.output_tokens)
    expected.assert_billed(record, usage, "gpt-4o-mini", "openai")
    assert any("hung up" in str(item) for item in record.cost_items)
    tenant.assert_nothing_held()


def test_abandoned_anthropic_stream_bills_the_input_the_provider_reported(tenant: Tenant) -> None:
    simulator = tenant.gateway.simulator
    with tenant.anthropic().messages.stream(
        model="claude-haiku-4-5",
        max_tokens=2000,
        messages=[{"role": "user", "content": "a long answer " + uuid.uuid4().hex}],
        extra_headers={"x-kakin-simulate": PACED},
    ) as stream:
        for _ in zip(range(3), stream.text_stream, strict=False):
            pass
        reported_input = stream.current_message_snapshot.usage.input_tokens
        request_id = stream.response.headers["x-kakin-request-id"]
    upstream = simulator.streams[-1]
    assert wait_until(lambda: upstream.hung_up) and upstream.sent < upstream.events // 4
    assert wait_until(lambda: tenant.balance().held == 0 and len(tenant.usage()) == 1)
    record = tenant.record(request_id)
    assert record.input_tokens == reported_input and 0 < record.output_tokens < 100
    usage = Usage(input_tokens=record.input_tokens, output_tokens=record.output_tokens)
    expected.assert_billed(record, usage, "claude-haiku-4-5", "anthropic")
    tenant.assert_nothing_held()


def test_client_gone_before_the_answer_began_bills_the_input_at_once(tenant: Tenant) -> None:
    """The provider is silent (it holds the request until its client disconnects); the client
    gives up after 0.3 s. The gateway stops waiting at once, closes the upstream connection and
    bills the input it sent: not the gateway's upstream timeout (2.5 s) later, not nothing."""
    messages = [{"role": "user", "content": "never answered " + uuid.uuid4().hex}]
    body = {"model": "gpt-4o-mini", "messages": messages, "stream": True}
    headers = {**tenant.headers(), "x-kakin-simulate": "timeout"}
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(tenant.url + "/v1/chat/completions", json=body, headers=headers, timeout=0.3)
    assert wait_until(lambda: len(tenant.usage()) == 1)
    assert time.monotonic() - started < 1.5
    [record] = tenant.usage()
    assert record.input_tokens == count_messages(messages, "gpt-4o-mini").tokens
    assert record.output_tokens == 0
    expected.assert_billed(record, Usage(input_tokens=record.input_tokens), "gpt-4o-mini", "openai")
    tenant.assert_nothing_held()


def test_the_provider_hears_of_the_hang_up_at_once_not_at_its_next_event(tenant: Tenant) -> None:
    """A provider pausing 1 s between events (thinking, say): the client leaves after the first
    content event, and the upstream connection is closed then, not when the next event comes."""
    simulator = tenant.gateway.simulator
    stream = tenant.openai().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "slow thoughts " + uuid.uuid4().hex}],
        stream=True,
        extra_headers={"x-kakin-simulate": "chunks=4; chunk-delay=1s"},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    left = time.monotonic()
    upstream = simulator.streams[-1]
    assert wait_until(lambda: upstream.hung_up, timeout=3)
    assert time.monotonic() - left < 0.5
    assert wait_until(lambda: tenant.balance().held == 0 and len(tenant.usage()) == 1)
    [record] = tenant.usage()
    assert record.output_tokens > 0 and any("hung up" in str(item) for item in record.cost_items)

"""The official anthropic SDK against the simulator, caching and thinking included."""

from __future__ import annotations

import anthropic
import httpx
import orjson
import pytest

from kakin.providers import StreamMeter, match_endpoint, parse, upstream_request, usage_from_body


def parsed_for(doc: dict, path: str = "/v1/messages"):
    match = match_endpoint("POST", path)
    return parse(match.endpoint, orjson.dumps(doc), match.path_params, {})


@pytest.fixture()
def client(simulator) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=simulator.url, api_key="sk-ant-test", max_retries=0)


def test_messages_usage_equals_adapter_usage(client: anthropic.Anthropic) -> None:
    doc = {"model": "claude-sonnet-4-6", "max_tokens": 200, "system": "Be terse.",
           "messages": [{"role": "user", "content": "What is a budget?"}]}  # fmt: skip
    raw = client.messages.with_raw_response.create(**doc)
    message = raw.parse()
    assert message.content[0].text and message.stop_reason == "end_turn"
    parsed = parsed_for(doc)
    usage = usage_from_body(parsed, raw.http_response.content)
    assert usage.input_tokens == message.usage.input_tokens == parsed.input_tokens
    assert usage.output_tokens == message.usage.output_tokens
    assert parsed.input_tokens <= parsed.input_tokens_bound


def test_stream_twin_and_sdk_accumulation(client: anthropic.Anthropic, simulator, unique: str) -> None:
    doc = {
        "model": "claude-haiku-4-5",
        "max_tokens": 30,
        "messages": [{"role": "user", "content": f"twin {unique}"}],
    }
    plain = client.messages.create(**doc)
    with client.messages.stream(**doc) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == plain.content[0].text
    assert final.usage.output_tokens == plain.usage.output_tokens
    parsed = parsed_for({**doc, "stream": True})
    meter = StreamMeter(parsed)
    with httpx.stream(
        "POST", simulator.url + "/v1/messages", content=upstream_request(parsed).body
    ) as response:
        forwarded = b"".join(meter.feed(chunk) for chunk in response.iter_raw())
    assert b"event: message_delta" in forwarded
    assert meter.usage() == usage_from_body(parsed_for(doc), plain.model_dump())


def test_max_tokens_stop_reason(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=3, messages=[{"role": "user", "content": "long answer please"}]
    )
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens <= 3


def test_cache_control_writes_then_reads(client: anthropic.Anthropic, unique: str) -> None:
    system = [{"type": "text", "text": f"{unique} " + "Spend is recorded to the token. " * 300,
               "cache_control": {"type": "ephemeral"}}]  # fmt: skip
    doc = {"model": "claude-sonnet-4-6", "max_tokens": 50, "system": system,
           "messages": [{"role": "user", "content": "first"}]}  # fmt: skip
    first = client.messages.create(**doc)
    written = first.usage.cache_creation_input_tokens
    assert written >= 1024 and first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == written
    doc["messages"] = [{"role": "user", "content": "second"}]
    second = client.messages.create(**doc)
    assert second.usage.cache_read_input_tokens == written and second.usage.cache_creation_input_tokens == 0
    usage = usage_from_body(parsed_for(doc), second.model_dump())
    # kakin's input_tokens include the cached ones; Anthropic's do not.
    assert usage.input_tokens == second.usage.input_tokens + written
    assert usage.cache_read_tokens == written and usage.cache_write_tokens == 0
    assert usage.input_tokens == parsed_for(doc).input_tokens


def test_one_hour_cache_write(client: anthropic.Anthropic, unique: str) -> None:
    block = {"type": "text", "text": f"{unique} " + "Budgets stop spend early. " * 400,
             "cache_control": {"type": "ephemeral", "ttl": "1h"}}  # fmt: skip
    doc = {"model": "claude-opus-4-5", "max_tokens": 20,
           "messages": [{"role": "user", "content": [block, {"type": "text", "text": "question"}]}]}  # fmt: skip
    message = client.messages.create(**doc)
    usage = usage_from_body(parsed_for(doc), message.model_dump())
    assert usage.cache_write_1h_tokens == message.usage.cache_creation.ephemeral_1h_input_tokens > 1024
    assert usage.cache_write_tokens == 0


def test_short_prefixes_are_not_cached(client: anthropic.Anthropic, unique: str) -> None:
    system = [{"type": "text", "text": f"short {unique}", "cache_control": {"type": "ephemeral"}}]
    message = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=10, system=system, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.usage.cache_creation_input_tokens == 0


def test_extended_thinking_counts_as_output(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "think first"}],
    )
    kinds = [block.type for block in message.content]
    assert kinds == ["thinking", "text"]
    assert message.usage.output_tokens > 0
    with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "think first"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].thinking == message.content[0].thinking
    assert final.usage.output_tokens == message.usage.output_tokens


def test_count_tokens_is_free_and_matches(client: anthropic.Anthropic) -> None:
    doc = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "count me"}]}
    counted = client.messages.count_tokens(**doc)
    parsed = parsed_for(doc, "/v1/messages/count_tokens")
    assert not parsed.billable
    assert counted.input_tokens == parsed.input_tokens == parsed_for({**doc, "max_tokens": 5}).input_tokens


def test_bearer_auth_and_models(simulator) -> None:
    client = anthropic.Anthropic(base_url=simulator.url, auth_token="token-abc", max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.http_request.headers["authorization"] == "Bearer token-abc"
    assert {m.id for m in client.models.list()} >= {"claude-sonnet-4-6"}

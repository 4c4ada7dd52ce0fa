"""Every billed endpoint, called with the official SDK through the gateway: the recorded
cost is the catalog price of the usage the provider reported, to the picodollar."""

from __future__ import annotations

import io
import math
import struct
import uuid
import wave
from decimal import Decimal

import openai
import orjson
from google.genai import types

from kakin.money import to_pico
from kakin.pricing import Usage

from . import expected
from .conftest import Tenant


def wav(seconds: float, rate: int = 8000) -> bytes:
    frames = int(seconds * rate)
    samples = b"".join(struct.pack("<h", int(6000 * math.sin(i / 3))) for i in range(frames))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples)
    return buffer.getvalue()


def test_chat_completion_cost_is_catalog_price(tenant: Tenant) -> None:
    raw = tenant.openai().chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "こんにちは、今月の請求はいくら?"}],
        max_tokens=60,
    )
    completion = raw.parse()
    record = tenant.record(raw.headers["x-kakin-request-id"])
    usage = expected.openai_chat(completion.usage)
    expected.assert_billed(record, usage, "gpt-4o-mini", "openai")
    assert Decimal(raw.headers["x-kakin-cost-usd"]) == record.cost
    assert (record.input_tokens, record.output_tokens) == (usage.input_tokens, usage.output_tokens)
    assert [r.request_id for r in tenant.usage()] == [record.request_id]
    assert tenant.balance().spent == record.cost and tenant.balance().held == 0


async def test_async_chat_with_reasoning_tokens(tenant: Tenant) -> None:
    client = tenant.async_openai()
    raw = await client.chat.completions.with_raw_response.create(
        model="o4-mini",
        messages=[{"role": "user", "content": "think about the invoice"}],
        max_completion_tokens=300,
        reasoning_effort="high",
    )
    completion = raw.parse()
    assert completion.usage.completion_tokens_details.reasoning_tokens > 0
    record = tenant.record(raw.headers["x-kakin-request-id"])
    expected.assert_billed(record, expected.openai_chat(completion.usage), "o4-mini", "openai")


def test_responses_api_cost(tenant: Tenant) -> None:
    raw = tenant.openai().responses.with_raw_response.create(
        model="gpt-5-mini", input="Summarise this month's spend.", max_output_tokens=200
    )
    response = raw.parse()
    assert response.usage.output_tokens_details.reasoning_tokens > 0
    record = tenant.record(raw.headers["x-kakin-request-id"])
    expected.assert_billed(record, expected.openai_responses(response.usage), "gpt-5-mini", "openai")


def test_embeddings_cost(tenant: Tenant) -> None:
    raw = tenant.openai().embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["請求書", "invoice line items per model"]
    )
    result = raw.parse()
    record = tenant.record(raw.headers["x-kakin-request-id"])
    usage = Usage(input_tokens=result.usage.prompt_tokens)
    expected.assert_billed(record, usage, "text-embedding-3-small", "openai")


def test_images_billed_per_image_by_size_and_quality(tenant: Tenant) -> None:
    client = tenant.openai()
    costs = {}
    for size, quality in (("1024x1024", "standard"), ("1792x1024", "hd")):
        raw = client.images.with_raw_response.generate(
            model="dall-e-3", prompt="a fox reading an invoice", size=size, quality=quality
        )
        assert len(raw.parse().data) == 1
        record = tenant.record(raw.headers["x-kakin-request-id"])
        usage = Usage(images=1, image_size=size, image_quality=quality)
        expected.assert_billed(record, usage, "dall-e-3", "openai")
        costs[(size, quality)] = record.cost
    assert costs[("1792x1024", "hd")] > costs[("1024x1024", "standard")]
    raw = client.images.with_raw_response.generate(model="dall-e-2", prompt="two foxes", n=2, size="512x512")
    record = tenant.record(raw.headers["x-kakin-request-id"])
    expected.assert_billed(record, Usage(images=2, image_size="512x512"), "dall-e-2", "openai")


def test_transcription_billed_per_second(tenant: Tenant) -> None:
    raw = tenant.openai().audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("tone.wav", wav(2.5), "audio/wav"), response_format="json"
    )
    reported = orjson.loads(raw.http_response.content)["usage"]
    assert reported["type"] == "duration"
    record = tenant.record(raw.headers["x-kakin-request-id"])
    usage = Usage(audio_seconds=expected.seconds_billed(reported["seconds"]))
    assert usage.audio_seconds == 3
    expected.assert_billed(record, usage, "whisper-1", "openai")


def test_azure_deployment_through_the_simulator_is_billed(tenant: Tenant) -> None:
    # A simulator provider (here the built-in one) serves every API family, Azure's included.
    azure = openai.AzureOpenAI(
        azure_endpoint=tenant.url, api_key=tenant.plaintext, api_version="2024-10-21", max_retries=0
    )
    raw = azure.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi azure"}], max_tokens=40
    )
    record = tenant.record(raw.headers["x-kakin-request-id"])
    expected.assert_billed(record, expected.openai_chat(raw.parse().usage), "gpt-4o", "azure")
    assert Decimal(raw.headers["x-kakin-cost-usd"]) == record.cost > 0


def test_anthropic_prompt_cache_write_then_read(tenant: Tenant) -> None:
    client = tenant.anthropic()
    system = [
        {
            "type": "text",
            "text": uuid.uuid4().hex + " " + "Every token has a price. " * 300,
            "cache_control": {"type": "ephemeral"},
        }
    ]
    records = []
    for question in ("first", "second"):
        raw = client.messages.with_raw_response.create(
            model="claude-sonnet-4-6",
            max_tokens=64,
            system=system,
            messages=[{"role": "user", "content": question}],
        )
        message = raw.parse()
        usage = expected.anthropic_messages(message.usage)
        record = tenant.record(raw.headers["x-kakin-request-id"])
        expected.assert_billed(record, usage, "claude-sonnet-4-6", "anthropic")
        records.append((usage, record))
    (write, first), (read, second) = records
    assert write.cache_write_tokens >= 1024 and write.cache_read_tokens == 0
    assert read.cache_read_tokens == write.cache_write_tokens and read.cache_write_tokens == 0
    assert second.cached_tokens == read.cache_read_tokens
    assert second.cost < first.cost  # reading the cache is far cheaper than writing it


async def test_async_anthropic_message(tenant: Tenant) -> None:
    raw = await tenant.async_anthropic().messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=40, messages=[{"role": "user", "content": "一言で"}]
    )
    message = await raw.parse()
    record = tenant.record(raw.headers["x-kakin-request-id"])
    expected.assert_billed(
        record, expected.anthropic_messages(message.usage), "claude-haiku-4-5", "anthropic"
    )


def test_gemini_generate_content(tenant: Tenant) -> None:
    client = tenant.genai()
    config = types.GenerateContentConfig(max_output_tokens=300)
    response = client.models.generate_content(
        model="gemini-2.5-flash", contents="How much will this cost?", config=config
    )
    assert response.usage_metadata.thoughts_token_count > 0
    request_id = response.sdk_http_response.headers["x-kakin-request-id"]
    record = tenant.record(request_id)
    expected.assert_billed(record, expected.gemini(response.usage_metadata), "gemini-2.5-flash", "google")


def test_gemini_cached_content_billed_per_token_hour_and_count_tokens_free(tenant: Tenant) -> None:
    client = tenant.genai()
    counted = client.models.count_tokens(model="gemini-2.5-flash", contents="how many tokens?")
    assert counted.total_tokens > 0
    assert tenant.usage() == [] and tenant.balance().spent == 0  # countTokens is free and unrecorded

    text = uuid.uuid4().hex + " " + "Context shared by many requests. " * 200
    cache = client.caches.create(
        model="gemini-2.5-flash",
        config=types.CreateCachedContentConfig(
            contents=[types.Content(role="user", parts=[types.Part(text=text)])], ttl="7200s"
        ),
    )
    tokens = cache.usage_metadata.total_token_count
    [record] = tenant.usage()
    storage = Usage(input_tokens=0, cache_storage_token_hours=Decimal(tokens) * 2)
    expected.assert_billed(record, storage, "gemini-2.5-flash", "google")

    config = types.GenerateContentConfig(cached_content=cache.name, max_output_tokens=100)
    response = client.models.generate_content(model="gemini-2.5-flash", contents="question", config=config)
    assert response.usage_metadata.cached_content_token_count == tokens
    answer = tenant.record(response.sdk_http_response.headers["x-kakin-request-id"])
    expected.assert_billed(answer, expected.gemini(response.usage_metadata), "gemini-2.5-flash", "google")
    assert to_pico(tenant.balance().spent) == to_pico(record.cost + answer.cost)
    client.caches.delete(name=cache.name)
    assert len(tenant.usage()) == 2  # deleting a cache is not billed

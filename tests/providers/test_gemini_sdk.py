"""The official google-genai SDK against the simulator (base_url pointed at it)."""

from __future__ import annotations

from decimal import Decimal

import httpx
import orjson
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from kakin.providers import StreamMeter, match_endpoint, parse, upstream_request, usage_from_body


def parsed_for(path: str, doc: dict, query: dict | None = None):
    match = match_endpoint("POST", path)
    return parse(match.endpoint, orjson.dumps(doc), match.path_params, query or {})


@pytest.fixture(params=["v1beta", "v1"])
def client(simulator, request) -> genai.Client:
    options = types.HttpOptions(base_url=simulator.url, api_version=request.param)
    return genai.Client(api_key="goog-test", http_options=options)


def test_generate_content_usage(client: genai.Client, simulator) -> None:
    version = client._api_client._http_options.api_version
    response = client.models.generate_content(model="gemini-2.0-flash", contents="Price one request.")
    assert response.text
    meta = response.usage_metadata
    doc = {"contents": [{"parts": [{"text": "Price one request."}], "role": "user"}]}
    parsed = parsed_for(f"/{version}/models/gemini-2.0-flash:generateContent", doc)
    assert meta.prompt_token_count == parsed.input_tokens
    usage = usage_from_body(parsed, response.model_dump(by_alias=True, exclude_none=True))
    assert usage.input_tokens == meta.prompt_token_count
    assert usage.output_tokens == meta.candidates_token_count
    assert meta.total_token_count == meta.prompt_token_count + meta.candidates_token_count


def test_thinking_tokens_and_stream_twin(client: genai.Client, unique: str) -> None:
    config = types.GenerateContentConfig(max_output_tokens=400)
    plain = client.models.generate_content(
        model="gemini-2.5-flash", contents=f"think {unique}", config=config
    )
    thoughts = plain.usage_metadata.thoughts_token_count
    assert thoughts > 0
    chunks = list(
        client.models.generate_content_stream(
            model="gemini-2.5-flash", contents=f"think {unique}", config=config
        )
    )
    assert "".join(c.text or "" for c in chunks) == plain.text
    last = chunks[-1].usage_metadata
    assert (last.thoughts_token_count, last.candidates_token_count) == (
        thoughts,
        plain.usage_metadata.candidates_token_count,
    )
    off = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=0))
    assert client.models.generate_content(
        model="gemini-2.5-flash", contents="x", config=off
    ).usage_metadata.thoughts_token_count in (None, 0)


def test_max_output_tokens_caps_thoughts_and_text(client: genai.Client) -> None:
    config = types.GenerateContentConfig(max_output_tokens=20)
    response = client.models.generate_content(model="gemini-2.5-pro", contents="cap me", config=config)
    meta = response.usage_metadata
    assert (meta.thoughts_token_count or 0) + (meta.candidates_token_count or 0) <= 20
    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS


def test_count_tokens_is_free(client: genai.Client) -> None:
    counted = client.models.count_tokens(model="gemini-2.5-flash", contents="how many tokens?")
    parsed = parsed_for(
        "/v1beta/models/gemini-2.5-flash:countTokens",
        {"contents": [{"parts": [{"text": "how many tokens?"}], "role": "user"}]},
    )
    assert counted.total_tokens == parsed.input_tokens and not parsed.billable


@pytest.mark.parametrize("alt", ["sse", None])
def test_stream_meter_both_framings(simulator, alt: str | None) -> None:
    query = {"alt": alt} if alt else {}
    doc = {
        "contents": [{"role": "user", "parts": [{"text": "stream framing"}]}],
        "generationConfig": {"maxOutputTokens": 300},
    }
    parsed = parsed_for("/v1beta/models/gemini-2.5-flash:streamGenerateContent", doc, query)
    upstream = upstream_request(parsed)
    meter = StreamMeter(parsed)
    with httpx.stream("POST", simulator.url + upstream.path, content=upstream.body) as response:
        forwarded = b"".join(meter.feed(chunk) for chunk in response.iter_raw())
    plain = httpx.post(
        simulator.url + "/v1beta/models/gemini-2.5-flash:generateContent", content=upstream.body
    )
    plain_parsed = parsed_for("/v1beta/models/gemini-2.5-flash:generateContent", doc)
    assert meter.usage() == usage_from_body(plain_parsed, plain.content)
    assert meter.output_text() == plain.json()["candidates"][0]["content"]["parts"][0]["text"]
    if alt is None:
        assert isinstance(orjson.loads(forwarded), list)  # forwarded untouched: still one JSON array
        assert usage_from_body(parsed, forwarded) == meter.usage()


def test_cached_contents_lifecycle_and_storage_usage(client: genai.Client, simulator, unique: str) -> None:
    version = client._api_client._http_options.api_version
    text = f"{unique} " + "Context that many requests share. " * 200
    cache = client.caches.create(
        model="gemini-2.5-flash",
        config=types.CreateCachedContentConfig(
            contents=[types.Content(role="user", parts=[types.Part(text=text)])],
            ttl="7200s",
            display_name="shared",
        ),
    )
    assert cache.name.startswith("cachedContents/")
    tokens = cache.usage_metadata.total_token_count
    doc = {
        "model": "models/gemini-2.5-flash",
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        "ttl": "7200s",
    }
    parsed = parsed_for(f"/{version}/cachedContents", doc)
    assert parsed.input_tokens == tokens and parsed.cache_ttl_seconds == 7200
    assert parsed.bound_usage(1).cache_storage_token_hours == Decimal(parsed.input_tokens_bound) * 2
    created = httpx.get(f"{simulator.url}/{version}/{cache.name}").content
    assert usage_from_body(parsed, created).cache_storage_token_hours == Decimal(tokens) * 2

    config = types.GenerateContentConfig(cached_content=cache.name)
    response = client.models.generate_content(model="gemini-2.5-flash", contents="question", config=config)
    meta = response.usage_metadata
    assert meta.cached_content_token_count == tokens
    assert meta.prompt_token_count > tokens
    generated = parsed_for(f"/{version}/models/gemini-2.5-flash:generateContent",
                           {"contents": [{"role": "user", "parts": [{"text": "question"}]}], "cachedContent": cache.name})  # fmt: skip
    assert generated.cached_content == cache.name
    usage = usage_from_body(generated, response.model_dump(by_alias=True, exclude_none=True))
    assert usage.cache_read_tokens == tokens and usage.input_tokens == meta.prompt_token_count

    assert client.caches.get(name=cache.name).display_name == "shared"
    client.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="60s"))
    client.caches.delete(name=cache.name)
    with pytest.raises(genai_errors.ClientError) as missing:
        client.caches.get(name=cache.name)
    assert missing.value.code == 404


def test_key_in_query_is_dropped_upstream() -> None:
    parsed = parsed_for(
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
        {"contents": [{"parts": [{"text": "hi"}]}]},
        {"alt": "sse", "key": "kakin-secret"},
    )
    target = upstream_request(parsed, model="gemini-2.5-flash-lite")
    assert target.path == "/v1beta/models/gemini-2.5-flash-lite:streamGenerateContent?alt=sse"
    assert target.body == parsed.body

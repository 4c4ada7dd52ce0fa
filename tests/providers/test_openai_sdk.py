"""The official openai SDK against the simulator; kakin's adapters read the same usage."""

from __future__ import annotations

import base64
import re
import struct
from decimal import Decimal

import httpx
import openai
import orjson
import pytest

from kakin.pricing import Usage
from kakin.providers import StreamMeter, match_endpoint, parse, upstream_request, usage_from_body


def parsed_for(path: str, doc: dict, query: dict | None = None, **kwargs):
    match = match_endpoint("POST", path)
    assert match is not None
    return parse(match.endpoint, orjson.dumps(doc), match.path_params, query or {}, **kwargs)


def metered_stream(url: str, path: str, doc: dict, headers: dict | None = None):
    """Send a client request the way the gateway does and meter the upstream stream."""
    parsed = parsed_for(path, doc)
    upstream = upstream_request(parsed)
    meter = StreamMeter(parsed)
    forwarded = bytearray()
    with httpx.stream(
        "POST",
        url + upstream.path,
        content=upstream.body,
        headers={"content-type": "application/json", **(headers or {})},
    ) as response:
        for chunk in response.iter_raw():
            forwarded += meter.feed(chunk)
    forwarded += meter.finish()
    return parsed, meter, bytes(forwarded)


@pytest.fixture()
def client(simulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=simulator.url + "/v1", api_key="sk-test", max_retries=0)


def test_chat_sdk_usage_equals_adapter_usage(client: openai.OpenAI, simulator) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What does a token cost?"},
    ]
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    parsed = parsed_for("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": messages})
    usage = usage_from_body(parsed, raw.http_response.content)
    assert completion.service_tier == "default"
    assert usage == Usage(
        input_tokens=completion.usage.prompt_tokens,
        output_tokens=completion.usage.completion_tokens,
        mode="standard",
    )
    # The simulator's prompt count is kakin's exact count of the same request.
    assert parsed.input_tokens_exact and completion.usage.prompt_tokens == parsed.input_tokens


async def test_async_chat(simulator) -> None:
    client = openai.AsyncOpenAI(base_url=simulator.url + "/v1", api_key="sk-test", max_retries=0)
    completion = await client.chat.completions.create(
        model="gpt-4.1-mini", messages=[{"role": "user", "content": "hello async"}], max_completion_tokens=3
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens <= 3
    await client.close()


def test_streamed_and_plain_twins_report_identical_usage(
    client: openai.OpenAI, simulator, unique: str
) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"twin {unique}"}], "max_tokens": 40}
    plain = parsed_for("/v1/chat/completions", body)
    response = httpx.post(simulator.url + "/v1/chat/completions", json=body)
    stream_doc = {**body, "stream": True}
    _, meter, _ = metered_stream(simulator.url, "/v1/chat/completions", stream_doc)
    assert meter.usage() == usage_from_body(plain, response.content)
    assert meter.output_text() == response.json()["choices"][0]["message"]["content"]


def test_sdk_stream_with_include_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_meter_strips_the_usage_chunk_the_client_did_not_ask_for(simulator) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "strip it"}], "stream": True}
    parsed, meter, forwarded = metered_stream(simulator.url, "/v1/chat/completions", body)
    assert not parsed.client_wants_stream_usage
    assert b'"usage":{' not in forwarded and forwarded.endswith(b"data: [DONE]\n\n")
    assert meter.usage() is not None and meter.usage().output_tokens > 0
    # What the client got is what the provider sends without include_usage (modulo "usage":null
    # and the "created" second: the second request may be answered in the next second).
    direct = httpx.post(simulator.url + "/v1/chat/completions", json=body).content

    def unstamped(stream: bytes) -> bytes:
        return re.sub(rb'"created":\d+', b'"created":0', stream)

    assert unstamped(forwarded.replace(b'"usage":null,', b"")) == unstamped(direct)
    # And the SDK reads the forwarded stream as a normal one.
    events = [line[6:] for line in forwarded.split(b"\n") if line.startswith(b"data: {")]
    assert all(orjson.loads(e)["choices"] for e in events)


def test_meter_keeps_the_usage_chunk_when_asked(simulator) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "keep it"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    parsed, meter, forwarded = metered_stream(simulator.url, "/v1/chat/completions", body)
    assert upstream_request(parsed).body == orjson.dumps(body)  # nothing to change: bytes reused
    events = [orjson.loads(line[6:]) for line in forwarded.split(b"\n") if line.startswith(b"data: {")]
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] > 0
    assert meter.usage().input_tokens == parsed.input_tokens


def test_reasoning_model_reports_reasoning_tokens(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="o4-mini", messages=[{"role": "user", "content": "think"}]
    )
    details = completion.usage.completion_tokens_details
    assert details.reasoning_tokens > 0
    assert completion.usage.completion_tokens > details.reasoning_tokens
    capped = client.chat.completions.create(
        model="o4-mini", messages=[{"role": "user", "content": "think"}], max_completion_tokens=10
    )
    assert capped.usage.completion_tokens == 10 and capped.choices[0].finish_reason == "length"


def test_prompt_caching_reports_cached_tokens_in_128_steps(client: openai.OpenAI, unique: str) -> None:
    long_system = f"{unique} " + "Every token is priced before it is spent. " * 200
    messages = [{"role": "system", "content": long_system}, {"role": "user", "content": "first"}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert first.usage.prompt_tokens >= 1024
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    again = [messages[0], {"role": "user", "content": "second question"}]
    second = client.chat.completions.create(model="gpt-4o-mini", messages=again)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= 1024 and (cached - 1024) % 128 == 0 and cached <= second.usage.prompt_tokens
    parsed = parsed_for("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": again})
    usage = usage_from_body(parsed, second.model_dump())
    assert usage.cache_read_tokens == cached and usage.input_tokens == second.usage.prompt_tokens


def test_n_choices_multiply_the_output_bound(client: openai.OpenAI) -> None:
    doc = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "two"}], "n": 2, "max_tokens": 5}
    parsed = parsed_for("/v1/chat/completions", doc)
    assert parsed.max_output_tokens == 10
    completion = client.chat.completions.create(**doc)
    assert len(completion.choices) == 2
    assert completion.usage.completion_tokens <= parsed.bound_usage(4096).output_tokens


def test_responses_api_plain_and_streamed(client: openai.OpenAI, unique: str) -> None:
    doc = {"model": "gpt-5-mini", "input": f"explain budgets {unique}", "instructions": "short"}
    response = client.responses.create(**doc)
    assert response.output_text
    assert response.usage.output_tokens_details.reasoning_tokens > 0
    parsed = parsed_for("/v1/responses", doc)
    plain_usage = usage_from_body(parsed, response.model_dump())
    assert plain_usage.input_tokens == parsed.input_tokens == response.usage.input_tokens
    assert plain_usage.output_reasoning_tokens == response.usage.output_tokens_details.reasoning_tokens
    with client.responses.stream(**doc) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == response.output_text
    assert final.usage.output_tokens == response.usage.output_tokens


def test_responses_stream_meter_and_incomplete(simulator) -> None:
    doc = {"model": "gpt-4.1", "input": "meter me", "stream": True, "max_output_tokens": 4}
    parsed, meter, forwarded = metered_stream(simulator.url, "/v1/responses", doc)
    assert b"event: response.incomplete" in forwarded
    usage = meter.usage()
    assert usage is not None and usage.output_tokens <= 4 and usage.input_tokens == parsed.input_tokens


@pytest.mark.parametrize("encoding", ["float", "base64", None])
def test_embeddings(client: openai.OpenAI, simulator, encoding: str | None) -> None:
    kwargs = {"encoding_format": encoding} if encoding else {}
    result = client.embeddings.create(model="text-embedding-3-small", input=["one", "two three"], **kwargs)
    vector = result.data[0].embedding
    if encoding == "base64":  # asked for explicitly: the SDK hands the string over as sent
        vector = struct.unpack("<1536f", base64.b64decode(vector))
    assert len(result.data) == 2 and len(vector) == 1536
    assert abs(sum(v * v for v in vector) - 1) < 1e-3
    doc = {"model": "text-embedding-3-small", "input": ["one", "two three"]}
    parsed = parsed_for("/v1/embeddings", doc)
    assert result.usage.prompt_tokens == parsed.input_tokens == parsed.bound_usage(1).input_tokens
    assert usage_from_body(parsed, {"usage": result.usage.model_dump()}) == Usage(
        input_tokens=parsed.input_tokens
    )


def test_embeddings_dimensions_and_token_ids(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="text-embedding-3-large", input=[[1, 2, 3], [4]], dimensions=8)
    assert [len(d.embedding) for d in result.data] == [8, 8]
    assert result.usage.prompt_tokens == 4


def test_images_dall_e_and_gpt_image(client: openai.OpenAI) -> None:
    dalle = client.images.generate(model="dall-e-3", prompt="a fox", size="1792x1024", quality="hd")
    assert dalle.data[0].url.startswith("data:image/png;base64,")
    parsed = parsed_for(
        "/v1/images/generations",
        {"model": "dall-e-3", "prompt": "a fox", "size": "1792x1024", "quality": "hd"},
    )
    usage = usage_from_body(parsed, dalle.model_dump())
    assert (usage.images, usage.image_size, usage.image_quality) == (1, "1792x1024", "hd")

    doc = {"model": "gpt-image-1", "prompt": "a fox", "n": 2, "quality": "low"}
    image = client.images.generate(**doc)
    assert base64.b64decode(image.data[0].b64_json).startswith(b"\x89PNG")
    parsed = parsed_for("/v1/images/generations", doc)
    assert parsed.image_size == "1536x1024"  # "auto" is bounded at the dearest size
    usage = usage_from_body(parsed, image.model_dump())
    # Billed by the reported tokens, which count both images: no per-image count on top.
    assert (usage.images, usage.image_size, usage.image_quality) == (0, "1024x1024", "low")
    assert usage.output_tokens == usage.output_image_tokens == 2 * 272
    assert usage.input_tokens == parsed.input_tokens


@pytest.mark.parametrize("response_format", ["json", "verbose_json", "text"])
def test_transcription_duration(client: openai.OpenAI, make_wav, response_format: str) -> None:
    audio = make_wav(2.5)
    result = client.audio.transcriptions.create(
        model="whisper-1", file=("tone.wav", audio, "audio/wav"), response_format=response_format
    )
    request = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("tone.wav", audio, "audio/wav"), response_format=response_format
    )
    body = request.http_request.read()
    match = match_endpoint("POST", "/v1/audio/transcriptions")
    parsed = parse(match.endpoint, body)
    assert parsed.audio_seconds == Decimal("2.5") and parsed.audio_seconds_exact
    usage = usage_from_body(parsed, request.http_response.content)
    # Billed seconds (usage.seconds, rounded up) when reported; the exact WAV length otherwise.
    expected = {"json": Decimal(3), "verbose_json": Decimal(3), "text": Decimal("2.5")}[response_format]
    assert usage.audio_seconds == expected
    text = result if isinstance(result, str) else result.text
    assert text.strip()


def test_token_priced_transcription(client: openai.OpenAI, make_wav) -> None:
    raw = client.audio.transcriptions.with_raw_response.create(
        model="gpt-4o-transcribe", file=("a.wav", make_wav(1.0), "audio/wav")
    )
    parsed = parse(match_endpoint("POST", "/v1/audio/transcriptions").endpoint, raw.http_request.read())
    usage = usage_from_body(parsed, raw.http_response.content)
    assert usage.input_audio_tokens == usage.input_tokens == 10 and usage.output_tokens > 0


def test_models_list(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"gpt-4o-mini", "whisper-1", "text-embedding-3-small"} <= ids


def test_azure_deployment_paths(simulator) -> None:
    azure = openai.AzureOpenAI(
        azure_endpoint=simulator.url, api_key="azure-key", api_version="2024-10-21", max_retries=0
    )
    raw = azure.chat.completions.with_raw_response.create(
        model="prod-chat", messages=[{"role": "user", "content": "hi azure"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    request = raw.http_request
    assert request.headers["api-key"] == "azure-key"
    match = match_endpoint("POST", request.url.path)
    assert match.endpoint.name == "azure.chat" and match.path_params == {"deployment": "prod-chat"}
    query = dict(request.url.params)
    parsed = parse(
        match.endpoint, request.read(), match.path_params, query, model_map={"prod-chat": "gpt-4o-mini"}
    )
    assert (parsed.model, parsed.deployment) == ("gpt-4o-mini", "prod-chat")
    target = upstream_request(parsed, model="eu-chat", api_version="2025-01-01")
    assert target.path == "/openai/deployments/eu-chat/chat/completions?api-version=2025-01-01"
    assert (
        usage_from_body(parsed, raw.http_response.content).output_tokens == completion.usage.completion_tokens
    )
    embedded = azure.embeddings.create(model="prod-embed", input="hello")
    assert embedded.usage.prompt_tokens > 0


async def test_async_streaming_with_usage(simulator) -> None:
    client = openai.AsyncOpenAI(base_url=simulator.url + "/v1", api_key="sk-test", max_retries=0)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "async stream"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    plain = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "async stream"}]
    )
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == plain.choices[0].message.content
    )
    assert chunks[-1].usage.model_dump() == plain.usage.model_dump()
    await client.close()

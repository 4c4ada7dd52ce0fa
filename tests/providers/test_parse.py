"""Request parsing: malformed input is refused precisely; valid input is bounded."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from kakin.errors import InvalidInput
from kakin.providers import ENDPOINTS, extract_credential, match_endpoint, parse, upstream_request


def parse_doc(path: str, body: object, query: dict | None = None, method: str = "POST"):
    match = match_endpoint(method, path)
    assert match is not None, path
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse(match.endpoint, raw, match.path_params, query or {})


CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (CHAT, b"{not json", "request body is not valid JSON"),
        (CHAT, b"", "request body is empty"),
        (CHAT, b"[1, 2]", "must be a JSON object, got list"),
        (CHAT, {"messages": USER}, "model is required"),
        (CHAT, {"model": 42, "messages": USER}, "model must be a non-empty string"),
        (CHAT, {"model": "gpt-4o"}, "messages is required"),
        (CHAT, {"model": "gpt-4o", "messages": "hi"}, "messages must be an array"),
        (CHAT, {"model": "gpt-4o", "messages": [{"content": "x"}]}, "messages[0] must be an object with a role"),
        (CHAT, {"model": "gpt-4o", "messages": USER, "max_tokens": -5}, "max_tokens must be between 1 and 2000000, got -5"),
        (CHAT, {"model": "gpt-4o", "messages": USER, "max_tokens": 10**12}, "max_tokens must be between 1 and 2000000"),
        (CHAT, {"model": "gpt-4o", "messages": USER, "max_tokens": "100"}, "max_tokens must be an integer"),
        (CHAT, {"model": "gpt-4o", "messages": USER, "max_tokens": True}, "max_tokens must be an integer"),
        (CHAT, {"model": "gpt-4o", "messages": USER, "n": 1000}, "n must be between 1 and 128"),
        (CHAT, {"model": "gpt-4o", "messages": USER, "stream": "yes"}, "stream must be true or false"),
        ("/v1/messages", {"model": "claude-haiku-4-5", "messages": USER}, "max_tokens is required"),
        ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "system", "content": "x"}]},
         "messages[0] must be an object with role 'user' or 'assistant'"),
        ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": USER,
                          "thinking": {"type": "enabled", "budget_tokens": 200}}, "must be less than max_tokens"),
        ("/v1beta/models/gemini-2.5-flash:generateContent", {}, "contents is required"),
        ("/v1beta/models/gemini-2.5-flash:generateContent",
         {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"maxOutputTokens": -1}},
         "maxOutputTokens must be between 1"),
        ("/v1beta/cachedContents", {"model": "models/gemini-2.5-flash", "contents": [{"parts": [{"text": "x"}]}],
                                    "ttl": "forever"}, "ttl must be a duration in seconds"),
        ("/v1beta/cachedContents", {"model": "models/gemini-2.5-flash", "contents": [{"parts": [{"text": "x"}]}],
                                    "ttl": "99999999999s"}, "ttl must be between 1s and"),
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": [1.5]}, "input[0] must be a string or an array of token ids"),
        ("/v1/embeddings", {"model": "text-embedding-3-small"}, "input is required"),
        ("/v1/images/generations", {"model": "dall-e-3", "prompt": "x", "n": 2}, "n must be between 1 and 1"),
        ("/v1/images/generations", {"model": "dall-e-3", "prompt": "x", "size": "512x512"}, "size '512x512' is not offered"),
        ("/v1/images/generations", {"model": "gpt-image-1"}, "prompt is required"),
        ("/v1/responses", {"model": "gpt-4.1"}, "input is required"),
        ("/v1/audio/transcriptions", b'{"model": "whisper-1"}', "must be multipart/form-data"),
    ],
)  # fmt: skip
def test_malformed_requests_are_refused_precisely(path: str, body: object, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_doc(path, body)
    assert message in refused.value.message


def test_transcription_without_file() -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--b--\r\n'
    with pytest.raises(InvalidInput, match="file is required"):
        parse_doc("/v1/audio/transcriptions", body)


def test_bounds_use_the_requested_caps() -> None:
    chat = parse_doc(
        CHAT, {"model": "gpt-4o", "messages": USER, "max_tokens": 300, "max_completion_tokens": 200}
    )
    assert chat.max_output_tokens == 200
    assert chat.bound_usage(4096).output_tokens == 200
    open_ended = parse_doc(CHAT, {"model": "gpt-4o", "messages": USER})
    assert open_ended.max_output_tokens is None and open_ended.bound_usage(4096).output_tokens == 4096
    gemini = parse_doc(
        "/v1beta/models/gemini-2.5-flash:generateContent",
        {
            "contents": [{"parts": [{"text": "x"}]}],
            "generation_config": {"thinking_config": {"thinking_budget": 512}},
        },
    )
    assert (
        gemini.bound_usage(1000).output_tokens == 1512
    )  # snake_case accepted; thoughts on top of the default
    claude = parse_doc("/v1/messages", {"model": "claude-opus-4-5", "max_tokens": 64, "messages": USER})
    bound = claude.bound_usage(4096)
    assert (
        bound.output_tokens == 64 and bound.input_tokens == claude.input_tokens_bound >= claude.input_tokens
    )


def test_image_and_audio_bounds() -> None:
    image = parse_doc(
        "/v1/images/generations", {"model": "dall-e-2", "prompt": "cat", "n": 3, "size": "512x512"}
    )
    bound = image.bound_usage(0)
    assert (bound.images, bound.image_size, bound.image_quality) == (3, "512x512", "standard")
    default = parse_doc("/v1/images/generations", {"prompt": "cat"})
    assert default.model == "dall-e-2"
    mp3 = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n\r\n' + b"\xff" * 5000
    mp3 += b'\r\n--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--b--\r\n'
    audio = parse_doc("/v1/audio/transcriptions", mp3)
    assert audio.audio_seconds == Decimal(5) and not audio.audio_seconds_exact  # 5000 bytes at ≥ 1 kB/s


def test_cache_key_ignores_the_callers_credential_only() -> None:
    doc = {"contents": [{"parts": [{"text": "same"}]}]}
    path = "/v1beta/models/gemini-2.0-flash:generateContent"
    a = parse_doc(path, doc, {"key": "one"})
    b = parse_doc(path, doc, {"key": "two"})
    c = parse_doc("/v1beta/models/gemini-2.5-flash:generateContent", doc)
    assert a.cache_key == b.cache_key != c.cache_key


def test_routing_rewrites_only_what_changes() -> None:
    parsed = parse_doc(CHAT, {"model": "gpt-4o", "messages": USER})
    assert upstream_request(parsed).body == parsed.body
    routed = orjson.loads(upstream_request(parsed, model="gpt-4o-mini").body)
    assert routed["model"] == "gpt-4o-mini" and "stream_options" not in routed


def test_open_ended_requests_hold_the_default_for_every_answer() -> None:
    chat = parse_doc(CHAT, {"model": "gpt-4o", "messages": USER, "n": 3})
    assert chat.output_limit(100) == 100 and chat.bound_usage(100).output_tokens == 300
    gemini = parse_doc(
        "/v1beta/models/gemini-2.5-flash:generateContent",
        {
            "contents": [{"parts": [{"text": "x"}]}],
            "generationConfig": {"candidateCount": 2, "thinkingConfig": {"thinkingBudget": 50}},
        },
    )
    assert gemini.output_limit(100) == 150 and gemini.bound_usage(100).output_tokens == 300


GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"
TEXT = [{"parts": [{"text": "x"}]}]


@pytest.mark.parametrize(
    ("path", "doc", "sent"),
    [
        (CHAT, {"model": "o3", "messages": USER, "stream": True}, {"max_completion_tokens": 64}),
        ("/v1/responses", {"model": "gpt-5", "input": "hi"}, {"max_output_tokens": 64}),
        (GEMINI, {"contents": TEXT}, {"generationConfig": {"maxOutputTokens": 64}}),
        (
            GEMINI,
            {"contents": TEXT, "generation_config": {"temperature": 0.5, "maxOutputTokens": None}},
            {"generation_config": {"temperature": 0.5, "max_output_tokens": 64}},
        ),
    ],
)
def test_an_output_limit_is_sent_only_when_the_request_sets_none(path: str, doc: dict, sent: dict) -> None:
    parsed = parse_doc(path, doc)
    limited = orjson.loads(upstream_request(parsed, output_limit=64).body)
    assert limited == {**orjson.loads(upstream_request(parsed).body), **sent}
    assert parsed.doc == doc  # the client's request, its cache key included, stays as sent


@pytest.mark.parametrize(
    ("path", "doc"),
    [
        (CHAT, {"model": "gpt-4o", "messages": USER, "max_tokens": 5000}),
        ("/v1/responses", {"model": "gpt-5", "input": "hi", "max_output_tokens": 5000}),
        (GEMINI, {"contents": TEXT, "generationConfig": {"maxOutputTokens": 5000}}),
        ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 5000, "messages": USER}),
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"}),
    ],
)
def test_a_request_with_its_own_limit_is_forwarded_as_sent(path: str, doc: dict) -> None:
    parsed = parse_doc(path, doc)
    assert upstream_request(parsed, output_limit=64).body == parsed.body


def test_every_endpoint_is_routable() -> None:
    for endpoint in ENDPOINTS:
        path = endpoint.pattern.format(model="gemini-2.5-flash", deployment="dep", name="abc")
        match = match_endpoint(endpoint.method, path)
        assert match is not None
        if endpoint.name != "google.models" or path != "/v1/models":
            assert match.endpoint.pattern == endpoint.pattern
    assert match_endpoint("POST", "/v1/unknown") is None
    assert match_endpoint("GET", "/v1/chat/completions") is None


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        ({"Authorization": "Bearer sk-1"}, {}, ("sk-1", "authorization")),
        ({"x-api-key": "ant-1"}, {}, ("ant-1", "x-api-key")),
        ({"api-key": "az-1"}, {}, ("az-1", "api-key")),
        ({"X-Goog-Api-Key": "g-1"}, {}, ("g-1", "x-goog-api-key")),
        ({}, {"key": "g-2"}, ("g-2", "query:key")),
        ({"authorization": "Basic abc"}, {}, None),
        ({}, {}, None),
    ],
)
def test_extract_credential(headers: dict, query: dict, expected: tuple | None) -> None:
    found = extract_credential(headers, query)
    assert (None if found is None else (found.value, found.source)) == expected

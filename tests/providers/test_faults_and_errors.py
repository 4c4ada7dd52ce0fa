"""Fault injection and provider-shaped errors, as each official SDK sees them."""

from __future__ import annotations

import time

import anthropic
import httpx
import openai
import orjson
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from kakin.errors import InvalidInput, NotFound
from kakin.providers import error_for, error_response, stream_error_event
from kakin.providers.simulator import SimulatorConfig, parse_faults, start_in_thread

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "fault"}]}


def openai_client(url: str, fault: str = "", timeout: float = 10) -> openai.OpenAI:
    headers = {"x-kakin-simulate": fault} if fault else {}
    return openai.OpenAI(
        base_url=url + "/v1", api_key="k", max_retries=0, default_headers=headers, timeout=timeout
    )


@pytest.mark.parametrize(
    ("status", "exc"),
    [(400, openai.BadRequestError), (401, openai.AuthenticationError), (404, openai.NotFoundError),
     (429, openai.RateLimitError), (500, openai.InternalServerError)],
)  # fmt: skip
def test_status_fault_raises_openai_typed_errors(simulator, status: int, exc: type) -> None:
    with pytest.raises(exc) as raised:
        openai_client(simulator.url, f"status={status}").chat.completions.create(**CHAT)
    assert raised.value.status_code == status and "simulated failure" in raised.value.message


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (401, anthropic.AuthenticationError),
        (429, anthropic.RateLimitError),
        (529, anthropic.InternalServerError),
    ],
)
def test_status_fault_raises_anthropic_typed_errors(simulator, status: int, exc: type) -> None:
    client = anthropic.Anthropic(
        base_url=simulator.url,
        api_key="k",
        max_retries=0,
        default_headers={"x-kakin-simulate": f"status={status}"},
    )
    with pytest.raises(exc) as raised:
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert raised.value.status_code == status
    assert raised.value.body["type"] == "error"


def test_status_fault_raises_gemini_errors(simulator) -> None:
    options = types.HttpOptions(base_url=simulator.url, headers={"x-kakin-simulate": "status=429"})
    client = genai.Client(api_key="k", http_options=options)
    with pytest.raises(genai_errors.ClientError) as raised:
        client.models.generate_content(model="gemini-2.0-flash", contents="x")
    assert raised.value.code == 429 and raised.value.status == "RESOURCE_EXHAUSTED"


def test_invalid_input_reaches_the_sdk_as_a_400(simulator) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client(simulator.url).chat.completions.create(
            model="gpt-4o", messages=CHAT["messages"], max_tokens=-1
        )
    assert "max_tokens must be between 1" in raised.value.message
    client = anthropic.Anthropic(base_url=simulator.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=0, messages=[{"role": "user", "content": "x"}]
        )
    assert refused.value.body["error"]["type"] == "invalid_request_error"


def test_error_helpers_shapes() -> None:
    status, body = error_for("openai", InvalidInput("model is required"))
    assert status == 400 and b'"type":"invalid_request_error"' in body
    status, body = error_for("google", NotFound("no such cache"))
    assert status == 404 and b'"status":"NOT_FOUND"' in body
    assert error_response("anthropic", 413, "too big").startswith(
        b'{"type":"error","error":{"type":"request_too_large"'
    )
    assert stream_error_event("anthropic", 529, "busy").startswith(b"event: error\ndata: ")


def test_latency_and_chunk_delay(simulator) -> None:
    client = openai_client(simulator.url, "latency=150ms")
    started = time.perf_counter()
    client.chat.completions.create(**CHAT)
    assert time.perf_counter() - started >= 0.15
    slow = openai_client(simulator.url, "chunks=5; chunk-delay=40ms; tokens=20")
    started = time.perf_counter()
    deltas = [
        c
        for c in slow.chat.completions.create(**CHAT, stream=True)
        if c.choices and c.choices[0].delta.content
    ]
    assert len(deltas) == 5 and time.perf_counter() - started >= 0.2


def test_timeout_fault_holds_until_the_client_gives_up(simulator) -> None:
    client = openai_client(simulator.url, "timeout", timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(**CHAT)
    response = httpx.post(
        simulator.url + "/v1/chat/completions", json=CHAT, headers={"x-kakin-simulate": "timeout=50ms"}
    )
    assert response.status_code == 504


def test_no_usage_and_tokens(simulator) -> None:
    plain = openai_client(simulator.url, "no-usage; tokens=30").chat.completions.create(**CHAT)
    assert plain.usage is None and len(plain.choices[0].message.content.split()) == 30
    stream = openai_client(simulator.url, "no-usage").chat.completions.create(
        **CHAT, stream=True, stream_options={"include_usage": True}
    )
    assert all(chunk.usage is None for chunk in stream)


def test_truncate_cuts_the_stream(simulator) -> None:
    response = httpx.post(
        simulator.url + "/v1/chat/completions",
        json={**CHAT, "stream": True},
        headers={"x-kakin-simulate": "truncate=2"},
    )
    assert response.content.count(b"data: ") == 2 and b"[DONE]" not in response.content


def test_error_rate_from_config_and_bad_grammar() -> None:
    config = SimulatorConfig.from_spec("error-rate=0.5; error-status=503", seed=7)
    with start_in_thread(config) as sim:
        statuses = [httpx.post(sim.url + "/v1/chat/completions", json=CHAT).status_code for _ in range(40)]
        assert set(statuses) == {200, 503} and 8 <= statuses.count(503) <= 32
        header_wins = httpx.post(
            sim.url + "/v1/chat/completions", json=CHAT, headers={"x-kakin-simulate": "error-rate=0"}
        )
        assert header_wins.status_code == 200
        bad = httpx.post(sim.url + "/v1/messages", json={}, headers={"x-kakin-simulate": "explode=1"})
        assert (
            bad.status_code == 400
            and "unknown or incomplete item 'explode=1'" in bad.json()["error"]["message"]
        )
    with pytest.raises(InvalidInput, match="latency takes a duration"):
        parse_faults("latency=soon")


def test_required_key() -> None:
    with start_in_thread(SimulatorConfig(required_key="right")) as sim:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=sim.url + "/v1", api_key="wrong", max_retries=0).chat.completions.create(
                **CHAT
            )
        assert (
            openai.OpenAI(base_url=sim.url + "/v1", api_key="right").chat.completions.create(**CHAT).choices
        )
        gemini = httpx.post(
            sim.url + "/v1beta/models/gemini-2.0-flash:generateContent?key=right",
            json={"contents": [{"parts": [{"text": "x"}]}]},
        )
        assert gemini.status_code == 200


def test_unknown_path_answers_in_the_provider_shape(simulator) -> None:
    response = httpx.post(simulator.url + "/v1beta/models/x:explode", json={})
    assert response.status_code == 404 and response.json()["error"]["status"] == "NOT_FOUND"


def test_kakin_codes_do_not_leak_into_anthropic_or_gemini_types() -> None:
    anthropic_body = orjson.loads(error_response("anthropic", 429, "slow", code="rate_limited"))
    assert anthropic_body["error"]["type"] == "rate_limit_error"
    assert (
        orjson.loads(error_response("anthropic", 400, "x", code="billing_error"))["error"]["type"]
        == "billing_error"
    )
    assert orjson.loads(error_response("google", 402, "no credit", code="insufficient_credit"))["error"][
        "status"
    ] == ("FAILED_PRECONDITION")
    openai_body = orjson.loads(error_response("openai", 402, "no credit", code="insufficient_credit"))
    assert openai_body["error"]["code"] == "insufficient_credit"

"""Requests that fail upstream are free but still count toward rate limits; rate limits answer
429 with Retry-After, which the SDKs know as RateLimitError."""

from __future__ import annotations

import time

import anthropic
import openai
import pytest

from .conftest import MakeTenant, Tenant

# Its worst case (500 output tokens) is held while it runs: large enough for
# Tenant.assert_nothing_held to notice if the hold were left behind.
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 500}


def settled(tenant: Tenant, timeout: float = 5.0) -> bool:
    """True once the ledger shows no hold (a voided hold is released without waiting for its commit)."""
    deadline = time.monotonic() + timeout
    while tenant.balance().held != 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    return tenant.balance().held == 0


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("status=500", openai.InternalServerError),
        ("status=503", openai.InternalServerError),
        ("status=429", openai.RateLimitError),
        ("status=400", openai.BadRequestError),
    ],
)
def test_failed_upstream_calls_are_free(tenant: Tenant, fault: str, error: type[Exception]) -> None:
    with pytest.raises(error) as failed:
        tenant.openai().chat.completions.create(**CHAT, extra_headers={"x-kakin-simulate": fault})
    assert failed.value.response.headers["x-kakin-request-id"]
    assert settled(tenant)
    assert tenant.usage() == [] and tenant.balance().spent == 0
    assert tenant.ledger.reconcile(tenant.org.id).ok
    tenant.assert_nothing_held()


def test_failed_anthropic_stream_is_free(tenant: Tenant) -> None:
    with (
        pytest.raises(anthropic.InternalServerError),
        tenant.anthropic().messages.stream(
            model="claude-haiku-4-5",
            max_tokens=4000,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-kakin-simulate": "status=500"},
        ) as events,
    ):
        events.get_final_message()
    assert settled(tenant) and tenant.usage() == []
    tenant.assert_nothing_held()


def test_upstream_timeout_is_a_free_504(tenant: Tenant) -> None:
    # The module's gateway gives up on an upstream silent for 1.5 s.
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as timed_out:
        tenant.openai().chat.completions.create(**CHAT, extra_headers={"x-kakin-simulate": "timeout"})
    assert time.monotonic() - started < 10
    assert timed_out.value.status_code == 504
    assert "did not answer in time; the request was not billed" in timed_out.value.message
    assert settled(tenant) and tenant.usage() == []
    tenant.assert_nothing_held()


def test_rate_limit_answers_429_with_retry_after(make_tenant: MakeTenant) -> None:
    tenant = make_tenant(rpm=2)
    client = tenant.openai()
    client.chat.completions.create(**CHAT)
    client.chat.completions.create(**CHAT)
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(**CHAT)
    response = limited.value.response
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert "exceeded" in limited.value.message and "retry after" in limited.value.message
    # the key named as in every other message (and in `kakin keys list`)
    assert f"key kk-{tenant.key.prefix}-… exceeded 2 requests/min" in limited.value.message
    assert limited.value.type == "requests"  # OpenAI's own label for a request-rate 429
    assert len(tenant.usage()) == 2  # the refused request changed nothing


def test_failed_calls_count_toward_rate_limits(make_tenant: MakeTenant) -> None:
    tenant = make_tenant(rpm=2)
    client = tenant.openai()
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(**CHAT, extra_headers={"x-kakin-simulate": "status=500"})
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(**CHAT)
    assert limited.value.response.headers["retry-after"]
    assert tenant.usage() == [] and settled(tenant)


def test_rate_limit_in_anthropic_shape(make_tenant: MakeTenant) -> None:
    tenant = make_tenant(rpm=2)
    client = tenant.anthropic()
    request = {"model": "claude-haiku-4-5", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    client.messages.create(**request)
    client.messages.create(**request)
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(**request)
    assert limited.value.body["type"] == "error"
    assert limited.value.body["error"]["type"] == "rate_limit_error"
    assert limited.value.response.headers["retry-after"]


def test_request_larger_than_the_token_limit_is_not_told_to_wait(make_tenant: MakeTenant) -> None:
    tenant = make_tenant(tpm=200)
    with pytest.raises(openai.RateLimitError) as limited:
        tenant.openai().chat.completions.create(**CHAT)  # its bound alone is over 200 tokens
    assert "lower max_tokens" in limited.value.message
    assert limited.value.type == "tokens" and limited.value.code == "rate_limit_exceeded"
    # Waiting never helps, so no Retry-After invites the SDK to sleep and resend it.
    assert "retry-after" not in limited.value.response.headers
    assert tenant.usage() == []
    tenant.openai().chat.completions.create(**{**CHAT, "max_tokens": 50})

"""Bad input gets a clear 4xx in the provider's own error format and changes nothing: no
usage, no ledger entry, no hold."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest

from .conftest import Tenant

OPENAI = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"
GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"


@pytest.fixture()
def http(tenant: Tenant) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tenant.url, timeout=10) as client:
        yield client


@pytest.fixture()
def unchanged(tenant: Tenant) -> Iterator[None]:
    """The test's requests must leave this tenant's ledger exactly as it was."""
    before = (tenant.ledger.entries(tenant.org.id), tenant.balance().credit)
    yield
    assert tenant.usage() == []
    assert (tenant.ledger.entries(tenant.org.id), tenant.balance().credit) == before
    assert tenant.balance().held == 0


def auth(tenant: Tenant, api: str) -> dict[str, str]:
    if api == "anthropic":
        return {"x-api-key": tenant.plaintext, "anthropic-version": "2023-06-01"}
    if api == "google":
        return {"x-goog-api-key": tenant.plaintext}
    return {"Authorization": f"Bearer {tenant.plaintext}"}


def error_message(api: str, response: httpx.Response) -> str:
    """The message, after checking the body has exactly the provider's error shape."""
    body = orjson.loads(response.content)
    if api == "openai":
        assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"])
        return body["error"]["message"]
    if api == "anthropic":
        assert body["type"] == "error" and set(body["error"]) >= {"type", "message"}
        return body["error"]["message"]
    assert (
        set(body["error"]) >= {"code", "message", "status"} and body["error"]["code"] == response.status_code
    )
    return body["error"]["message"]


SHAPES = [
    ("openai", OPENAI),
    ("anthropic", ANTHROPIC),
    ("google", GEMINI),
]


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(("api", "path"), SHAPES)
def test_malformed_json(tenant: Tenant, http: httpx.Client, api: str, path: str) -> None:
    response = http.post(path, content=b'{"model": "gpt-4o-mini", "messages": [', headers=auth(tenant, api))
    assert response.status_code == 400
    assert "JSON" in error_message(api, response)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(("api", "path", "body"), [
    ("openai", OPENAI, {"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}),
    ("anthropic", ANTHROPIC, {"model": "claude-sonet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}),
    ("google", "/v1beta/models/gemini-2.5-flsh:generateContent", {"contents": [{"parts": [{"text": "x"}]}]}),
])  # fmt: skip
def test_unknown_model_is_404_with_suggestions(
    tenant: Tenant, http: httpx.Client, api: str, path: str, body: dict
) -> None:
    response = http.post(path, json=body, headers=auth(tenant, api))
    assert response.status_code == 404
    message = error_message(api, response)
    assert "unknown model" in message and "closest known:" in message
    assert message.count("kakin.toml") == 1, message  # how to add its price, said once


def test_unknown_model_suggestions_name_real_models(tenant: Tenant, http: httpx.Client) -> None:
    response = http.post(
        OPENAI,
        json={"model": "gpt-4o-mni", "messages": [{"role": "user", "content": "x"}]},
        headers=auth(tenant, "openai"),
    )
    assert response.status_code == 404 and "gpt-4o-mini" in error_message("openai", response)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("max_tokens", [-1, 0, 10**12, "many", 1.5])
def test_bad_max_tokens(tenant: Tenant, http: httpx.Client, max_tokens: object) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": max_tokens}
    response = http.post(OPENAI, json=body, headers=auth(tenant, "openai"))
    assert response.status_code == 400
    assert "max_tokens" in error_message("openai", response)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("max_tokens", [-5, 10**9])
def test_bad_max_tokens_in_anthropic_and_gemini(tenant: Tenant, http: httpx.Client, max_tokens: int) -> None:
    anthropic_body = {"model": "claude-haiku-4-5", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "x"}]}  # fmt: skip
    response = http.post(ANTHROPIC, json=anthropic_body, headers=auth(tenant, "anthropic"))
    assert response.status_code == 400 and "max_tokens" in error_message("anthropic", response)
    gemini_body = {
        "contents": [{"parts": [{"text": "x"}]}],
        "generationConfig": {"maxOutputTokens": max_tokens},
    }
    response = http.post(GEMINI, json=gemini_body, headers=auth(tenant, "google"))
    assert response.status_code == 400 and "maxOutputTokens" in error_message("google", response)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(("api", "path"), SHAPES)
def test_body_over_the_limit_is_413(tenant: Tenant, http: httpx.Client, api: str, path: str) -> None:
    # The module's gateway runs with server.max_body_bytes = 64 KiB.
    huge = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 70_000}]}
    response = http.post(path, json=huge, headers=auth(tenant, api))
    assert response.status_code == 413
    assert "65,536 bytes" in error_message(api, response) and "max_body_bytes" in error_message(api, response)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(("api", "path"), SHAPES)
def test_missing_key_is_401(http: httpx.Client, api: str, path: str) -> None:
    body = {"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    response = http.post(path, json=body)
    assert response.status_code == 401
    assert "no kakin key presented" in error_message(api, response)


@pytest.mark.usefixtures("unchanged")
def test_wrong_types_and_missing_fields(tenant: Tenant, http: httpx.Client) -> None:
    for body in (
        {"model": "gpt-4o-mini"},
        {"model": "gpt-4o-mini", "messages": "hello"},
        {"messages": [{"role": "user", "content": "x"}]},
        [1, 2, 3],
    ):
        response = http.post(OPENAI, json=body, headers=auth(tenant, "openai"))
        assert response.status_code == 400, body
        assert error_message("openai", response)


def test_unserved_path_is_404_in_provider_shape(tenant: Tenant, http: httpx.Client) -> None:
    response = http.post("/v1/fine_tuning/jobs", json={}, headers=auth(tenant, "openai"))
    assert response.status_code == 404 and "does not serve" in error_message("openai", response)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(("api", "path"), SHAPES)
def test_an_idempotency_key_too_long_is_400(tenant: Tenant, http: httpx.Client, api: str, path: str) -> None:
    body = {"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    if api == "google":
        body = {"contents": [{"parts": [{"text": "x"}]}]}
    headers = auth(tenant, api) | {"Idempotency-Key": "k" * 256}
    response = http.post(path, json=body, headers=headers)
    assert response.status_code == 400
    assert "Idempotency-Key must be at most 255 characters" in error_message(api, response)

"""The endpoint registry: which (method, path) is which provider API.

The gateway and the simulator route with the same table, so a path the gateway meters is
a path the simulator answers. Exact paths are a dict lookup; the few templated ones
(Gemini's ``models/{model}:verb``, Azure deployments, cached-content names) are matched
by one precompiled regex each, tried only when the exact lookup misses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Api = Literal["openai", "azure", "anthropic", "google"]
Streaming = Literal["never", "optional", "always"]
BodyKind = Literal["json", "multipart", "none"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One provider API operation.

    ``name`` is stable and unique ("openai.chat", "google.generate" …); ``kind`` is the
    operation without the provider ("chat", "responses", "embeddings", "images",
    "transcriptions", "models", "messages", "count_tokens", "generate", "cache_create",
    "cache_get", "cache_list", "cache_delete", "cache_update"). ``billable`` is False for
    operations the provider does not charge for (listing models, counting tokens, reading
    or deleting a cache entry)."""

    name: str
    api: Api
    kind: str
    method: str
    pattern: str
    billable: bool
    streaming: Streaming = "never"
    body: BodyKind = "json"
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class EndpointMatch:
    endpoint: Endpoint
    path_params: dict[str, str]


def _ep(
    name: str,
    api: Api,
    kind: str,
    method: str,
    pattern: str,
    billable: bool,
    streaming: Streaming = "never",
    body: BodyKind = "json",
) -> Endpoint:
    regex = None
    if "{" in pattern:
        # {model} and {deployment} never contain "/" or ":"; {name} is a stored object's id.
        source = re.escape(pattern).replace(r"\{", "{").replace(r"\}", "}")
        source = re.sub(r"{(\w+)}", r"(?P<\1>[^/:?]+)", source)
        regex = re.compile("^" + source + "$")
    return Endpoint(name, api, kind, method, pattern, billable, streaming, body, regex)


def _google(version: str) -> list[Endpoint]:
    base = f"/{version}"
    return [
        _ep("google.generate", "google", "generate", "POST", base + "/models/{model}:generateContent", True),
        _ep(
            "google.stream_generate",
            "google",
            "generate",
            "POST",
            base + "/models/{model}:streamGenerateContent",
            True,
            "always",
        ),
        _ep(
            "google.count_tokens",
            "google",
            "count_tokens",
            "POST",
            base + "/models/{model}:countTokens",
            False,
        ),
        _ep("google.cache_create", "google", "cache_create", "POST", base + "/cachedContents", True),
        _ep("google.cache_list", "google", "cache_list", "GET", base + "/cachedContents", False, body="none"),
        _ep(
            "google.cache_get",
            "google",
            "cache_get",
            "GET",
            base + "/cachedContents/{name}",
            False,
            body="none",
        ),
        _ep(
            "google.cache_delete",
            "google",
            "cache_delete",
            "DELETE",
            base + "/cachedContents/{name}",
            False,
            body="none",
        ),
        # Extending a cache's TTL buys more storage time: billable like a create.
        _ep("google.cache_update", "google", "cache_update", "PATCH", base + "/cachedContents/{name}", True),
        _ep("google.models", "google", "models", "GET", base + "/models", False, body="none"),
    ]


_AZURE = "/openai/deployments/{deployment}"

ENDPOINTS: tuple[Endpoint, ...] = (
    _ep("openai.chat", "openai", "chat", "POST", "/v1/chat/completions", True, "optional"),
    _ep("openai.responses", "openai", "responses", "POST", "/v1/responses", True, "optional"),
    # Stored responses: free to read or delete, and only by the project that created them.
    _ep("openai.response_get", "openai", "response_get", "GET", "/v1/responses/{name}", False, body="none"),
    _ep(
        "openai.response_delete",
        "openai",
        "response_delete",
        "DELETE",
        "/v1/responses/{name}",
        False,
        body="none",
    ),
    _ep(
        "openai.response_input_items",
        "openai",
        "response_input_items",
        "GET",
        "/v1/responses/{name}/input_items",
        False,
        body="none",
    ),
    _ep("openai.embeddings", "openai", "embeddings", "POST", "/v1/embeddings", True),
    _ep("openai.images", "openai", "images", "POST", "/v1/images/generations", True),
    _ep(
        "openai.transcriptions",
        "openai",
        "transcriptions",
        "POST",
        "/v1/audio/transcriptions",
        True,
        body="multipart",
    ),
    _ep("openai.models", "openai", "models", "GET", "/v1/models", False, body="none"),
    _ep("azure.chat", "azure", "chat", "POST", _AZURE + "/chat/completions", True, "optional"),
    _ep("azure.embeddings", "azure", "embeddings", "POST", _AZURE + "/embeddings", True),
    _ep("azure.images", "azure", "images", "POST", _AZURE + "/images/generations", True),
    _ep(
        "azure.transcriptions",
        "azure",
        "transcriptions",
        "POST",
        _AZURE + "/audio/transcriptions",
        True,
        body="multipart",
    ),
    _ep("anthropic.messages", "anthropic", "messages", "POST", "/v1/messages", True, "optional"),
    _ep("anthropic.count_tokens", "anthropic", "count_tokens", "POST", "/v1/messages/count_tokens", False),
    *_google("v1beta"),
    *_google("v1"),
)

# Gemini's v1 and v1beta share names; the registry keeps both, distinguished by pattern.
# GET /v1/models is both OpenAI's and Gemini v1's model list: the first registered (OpenAI)
# wins; the simulator answers in Gemini's shape when the caller sends x-goog-api-key.
_EXACT: dict[tuple[str, str], Endpoint] = {}
for _endpoint in ENDPOINTS:
    if _endpoint._regex is None:
        _EXACT.setdefault((_endpoint.method, _endpoint.pattern), _endpoint)
_TEMPLATED: tuple[Endpoint, ...] = tuple(e for e in ENDPOINTS if e._regex is not None)


def match_endpoint(method: str, path: str) -> EndpointMatch | None:
    """The endpoint serving ``method path`` (path without query string), or None."""
    method = method.upper()
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/")
    exact = _EXACT.get((method, path))
    if exact is not None:
        return EndpointMatch(exact, {})
    for endpoint in _TEMPLATED:
        if endpoint.method != method:
            continue
        assert endpoint._regex is not None
        found = endpoint._regex.match(path)
        if found:
            return EndpointMatch(endpoint, found.groupdict())
    return None


def endpoint_named(name: str) -> Endpoint:
    """Look an endpoint up by name (the v1beta variant for Gemini names)."""
    for endpoint in ENDPOINTS:
        if endpoint.name == name:
            return endpoint
    raise KeyError(name)

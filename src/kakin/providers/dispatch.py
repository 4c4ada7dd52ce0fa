"""The four calls the gateway makes per request, routed to the right adapter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from kakin.pricing import Usage
from kakin.providers import (
    anthropic_messages,
    gemini,
    gemini_cache,
    openai_audio,
    openai_chat,
    openai_embeddings,
    openai_images,
    openai_responses,
    passthrough,
)
from kakin.providers.adapter import Adapter
from kakin.providers.endpoints import Endpoint
from kakin.providers.request import ParsedRequest, UpstreamRequest

_BY_KIND: dict[tuple[str, str], Adapter] = {
    ("openai", "chat"): openai_chat.ADAPTER,
    ("azure", "chat"): openai_chat.ADAPTER,
    ("openai", "responses"): openai_responses.ADAPTER,
    ("openai", "embeddings"): openai_embeddings.ADAPTER,
    ("azure", "embeddings"): openai_embeddings.ADAPTER,
    ("openai", "images"): openai_images.ADAPTER,
    ("azure", "images"): openai_images.ADAPTER,
    ("openai", "transcriptions"): openai_audio.ADAPTER,
    ("azure", "transcriptions"): openai_audio.ADAPTER,
    ("anthropic", "messages"): anthropic_messages.ADAPTER,
    ("anthropic", "count_tokens"): anthropic_messages.ADAPTER,
    ("google", "generate"): gemini.ADAPTER,
    ("google", "count_tokens"): gemini.ADAPTER,
    ("google", "cache_create"): gemini_cache.ADAPTER,
    ("google", "cache_update"): gemini_cache.ADAPTER,
}

_EMPTY: Mapping[str, str] = {}


def adapter_for(endpoint: Endpoint) -> Adapter:
    return _BY_KIND.get((endpoint.api, endpoint.kind), passthrough.ADAPTER)


def parse(
    endpoint: Endpoint,
    body: bytes,
    path_params: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    *,
    model_map: Mapping[str, str] | None = None,
) -> ParsedRequest:
    """Validate and read a client request. Raises ``InvalidInput`` on anything malformed.

    ``model_map`` maps Azure deployment names to catalog models (``[providers] deployments``)."""
    return adapter_for(endpoint).parse(
        endpoint, body, path_params or _EMPTY, query or _EMPTY, model_map or _EMPTY
    )


def upstream_request(
    parsed: ParsedRequest,
    *,
    model: str | None = None,
    api_version: str | None = None,
    output_limit: int | None = None,
) -> UpstreamRequest:
    """The request to send upstream: the client's bytes unless something must change.

    ``model`` replaces the requested model (routing; for Azure it names the deployment);
    ``api_version`` replaces Azure's ``api-version``; ``output_limit`` becomes the output
    limit of each answer of a request that sets none (the limit the gateway held). The
    caller's credential (``?key=``) never travels upstream; the gateway adds the provider's
    own key (``auth_headers``)."""
    endpoint = parsed.endpoint
    params = dict(parsed.path_params)
    if model is not None and "model" in params:
        params["model"] = model
    if model is not None and "deployment" in params:
        params["deployment"] = model
    path = endpoint.pattern
    for name, value in params.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    query = {k: v for k, v in parsed.query.items() if k != "key"}
    if endpoint.api == "azure" and api_version:
        query["api-version"] = api_version
    if query:
        path += "?" + urlencode(query)
    adapter = adapter_for(endpoint)
    rewritten = adapter.rewrite(parsed, model)
    if output_limit is not None and adapter.limit_output and output_unlimited(parsed):
        rewritten = adapter.limit_output(rewritten or parsed.doc or {}, output_limit)
    if rewritten is None:
        return UpstreamRequest(path, parsed.body, {})
    return UpstreamRequest(path, orjson.dumps(rewritten), {"content-type": "application/json"})


def output_unlimited(parsed: ParsedRequest) -> bool:
    """Whether the request leaves its output unlimited: it sets no output limit, on an API
    whose requests may (Anthropic's always set one). Such a request can cost more than its
    bound unless the gateway sends the limit it held (``upstream_request``'s ``output_limit``)."""
    return parsed.max_output_tokens is None and adapter_for(parsed.endpoint).limit_output is not None


def usage_from_body(parsed: ParsedRequest, body: bytes | Any) -> Usage | None:
    """Usage reported in a complete (non-streamed) upstream response, or None if absent.

    ``body`` is the raw response bytes or an already-decoded JSON value."""
    doc: Any = body
    if isinstance(body, bytes | bytearray | memoryview):
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
    return adapter_for(parsed.endpoint).usage(parsed, doc)

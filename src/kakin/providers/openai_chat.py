"""OpenAI (and Azure OpenAI) ``POST /v1/chat/completions``.

Streams: OpenAI reports usage in a stream only when asked (``stream_options.include_usage``),
in one extra chunk with ``choices: []`` just before ``data: [DONE]``. kakin always asks, and
the stream meter removes that chunk again when the client did not ask for it, so what the
client receives is what it would have received from OpenAI directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kakin.errors import InvalidInput
from kakin.pricing import Usage
from kakin.providers import counting
from kakin.providers.adapter import Adapter, StreamState, as_int, sub, tier_mode
from kakin.providers.endpoints import Endpoint
from kakin.providers.request import (
    MAX_CHOICES,
    ParsedRequest,
    check_tools,
    load_json_object,
    optional_bool,
    optional_int,
    optional_object,
    optional_str,
    require_list,
    require_str,
)


def resolve_model(
    endpoint: Endpoint, doc: Mapping[str, Any], path_params: Mapping[str, str], model_map: Mapping[str, str]
) -> tuple[str, str | None]:
    """(model, deployment): Azure names the deployment in the path and config maps it to a model."""
    if endpoint.api == "azure":
        deployment = path_params["deployment"]
        return model_map.get(deployment, deployment), deployment
    return require_str(doc, "model", example="gpt-4o-mini"), None


def parse(
    endpoint: Endpoint,
    body: bytes,
    path_params: Mapping[str, str],
    query: Mapping[str, str],
    model_map: Mapping[str, str],
) -> ParsedRequest:
    doc = load_json_object(body, endpoint)
    model, deployment = resolve_model(endpoint, doc, path_params, model_map)
    messages = require_list(doc, "messages")
    stream = optional_bool(doc, "stream")
    options = optional_object(doc, "stream_options")
    wants_usage = stream and optional_bool(options, "include_usage")
    cap = optional_int(doc, "max_completion_tokens")
    legacy = optional_int(doc, "max_tokens")
    if cap is None or (legacy is not None and legacy < cap):
        cap = legacy if cap is None else cap
    n = optional_int(doc, "n", maximum=MAX_CHOICES) or 1
    count = count_chat(messages, model, doc.get("tools"))
    return ParsedRequest(
        endpoint=endpoint,
        model=model,
        stream=stream,
        client_wants_stream_usage=wants_usage,
        max_output_tokens=None if cap is None else cap * n,
        choices=n,
        **count.request_fields(),
        mode=tier_mode(optional_str(doc, "service_tier")) or "standard",
        deployment=deployment,
        doc=doc,
        path_params=path_params,
        query=query,
        body=body,
    )


def count_chat(messages: list[Any], model: str, tools: Any = None) -> counting.Count:
    """Count chat messages: exact for plain-text OpenAI conversations, bounded otherwise."""
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidInput(
                f"messages[{index}] must be an object with a role (system, developer, user, assistant, tool)"
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidInput(f"messages[{index}].content must be a string or an array of content parts")
    check_tools(tools)
    return counting.count_messages(messages, model, tools)


def rewrite(parsed: ParsedRequest, model: str | None) -> dict[str, Any] | None:
    """Ask upstream for stream usage; swap the model for a routed one."""
    doc = parsed.doc or {}
    change_model = model is not None and model != doc.get("model") and parsed.endpoint.api != "azure"
    needs_usage = parsed.stream and not parsed.client_wants_stream_usage
    if not change_model and not needs_usage:
        return None
    out = dict(doc)
    if change_model:
        out["model"] = model
    if needs_usage:
        out["stream_options"] = {**optional_object(doc, "stream_options"), "include_usage": True}
    return out


def limit_output(doc: dict[str, Any], tokens: int) -> dict[str, Any]:
    """Limit each answer with ``max_completion_tokens``: it counts reasoning tokens too, and
    every chat model accepts it (reasoning models refuse the older ``max_tokens``)."""
    return {**doc, "max_completion_tokens": tokens}


def usage_of(block: Mapping[str, Any], service_tier: object = None) -> Usage:
    """OpenAI chat ``usage`` → kakin Usage (prompt_tokens already include cached ones), in
    the mode of the ``service_tier`` the response reports."""
    prompt = sub(block, "prompt_tokens_details")
    completion = sub(block, "completion_tokens_details")
    return Usage(
        input_tokens=as_int(block.get("prompt_tokens")),
        output_tokens=as_int(block.get("completion_tokens")),
        cache_read_tokens=as_int(prompt.get("cached_tokens")),
        input_audio_tokens=as_int(prompt.get("audio_tokens")),
        output_audio_tokens=as_int(completion.get("audio_tokens")),
        output_reasoning_tokens=as_int(completion.get("reasoning_tokens")),
        mode=tier_mode(service_tier),
    )


def usage(parsed: ParsedRequest, doc: Any) -> Usage | None:
    block = sub(doc, "usage")
    return usage_of(block, doc.get("service_tier")) if block else None


def on_event(state: StreamState, event: Any) -> bool:
    if not isinstance(event, dict):
        return True
    choices = event.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            state.add_text(sub(choice, "delta").get("content"))
    block = event.get("usage")
    if isinstance(block, dict):
        state.usage = usage_of(block, event.get("service_tier"))
        state.finished = True
        if not state.parsed.client_wants_stream_usage and not choices:
            return False
    return True


ADAPTER = Adapter(
    parse=parse,
    rewrite=rewrite,
    usage=usage,
    on_event=on_event,
    limit_output=limit_output,
    end_markers=(b"[DONE]",),
)

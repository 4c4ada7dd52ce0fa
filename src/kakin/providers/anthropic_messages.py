"""Anthropic ``POST /v1/messages`` and the free ``POST /v1/messages/count_tokens``.

Anthropic's ``input_tokens`` EXCLUDES cached tokens; kakin's ``Usage.input_tokens`` counts
all input, so it is ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``.
Cache writes split into 5-minute and 1-hour entries (``cache_creation.ephemeral_*``).
In a stream, ``message_start`` carries the input side and ``message_delta`` the cumulative
output (and, in newer API versions, the input figures again); the last values win.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kakin.errors import InvalidInput
from kakin.pricing import Usage
from kakin.providers import counting
from kakin.providers.adapter import Adapter, StreamState, as_int, sub, swap_model, tier_mode, usage_block
from kakin.providers.endpoints import Endpoint
from kakin.providers.request import (
    ParsedRequest,
    check_tools,
    load_json_object,
    optional_bool,
    optional_int,
    optional_object,
    require_list,
    require_str,
)


def parse(
    endpoint: Endpoint,
    body: bytes,
    path_params: Mapping[str, str],
    query: Mapping[str, str],
    model_map: Mapping[str, str],
) -> ParsedRequest:
    doc = load_json_object(body, endpoint)
    model = require_str(doc, "model", example="claude-sonnet-4-6")
    messages = require_list(doc, "messages")
    is_messages = endpoint.kind == "messages"
    cap = optional_int(doc, "max_tokens")
    if is_messages and cap is None:
        raise InvalidInput("max_tokens is required by the Messages API (for example max_tokens=1024)")
    thinking = optional_object(doc, "thinking")
    if thinking.get("type") == "enabled":
        budget = optional_int(thinking, "budget_tokens", minimum=1, where="thinking.")
        if budget is not None and cap is not None and budget >= cap:
            raise InvalidInput(f"thinking.budget_tokens ({budget}) must be less than max_tokens ({cap})")
    stream = is_messages and optional_bool(doc, "stream")
    count = count_input(doc, messages, model)
    return ParsedRequest(
        endpoint=endpoint,
        model=model,
        stream=stream,
        client_wants_stream_usage=stream,
        max_output_tokens=cap if is_messages else 0,
        **count.request_fields(),
        doc=doc,
        path_params=path_params,
        query=query,
        body=body,
    )


def count_input(doc: Mapping[str, Any], messages: list[Any], model: str) -> counting.Count:
    """The system prompt as a first message, then the conversation, then tool definitions."""
    turns: list[Any] = []
    system = doc.get("system")
    if system is not None:
        if not isinstance(system, str | list):
            raise InvalidInput("system must be a string or an array of text blocks")
        turns.append({"role": "system", "content": system})
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise InvalidInput(
                f"messages[{index}] must be an object with role 'user' or 'assistant' and content"
            )
        if not isinstance(message.get("content"), str | list):
            raise InvalidInput(f"messages[{index}].content must be a string or an array of content blocks")
        turns.append(message)
    tools = doc.get("tools")
    check_tools(tools)
    return counting.count_messages(turns, model, tools)


def usage_of(block: Mapping[str, Any]) -> Usage:
    fresh = as_int(block.get("input_tokens"))
    written = as_int(block.get("cache_creation_input_tokens"))
    read = as_int(block.get("cache_read_input_tokens"))
    creation = sub(block, "cache_creation")
    if creation:
        write_5m = as_int(creation.get("ephemeral_5m_input_tokens"))
        write_1h = as_int(creation.get("ephemeral_1h_input_tokens"))
    else:
        write_5m, write_1h = written, 0
    return Usage(
        input_tokens=fresh + written + read,
        output_tokens=as_int(block.get("output_tokens")),
        cache_read_tokens=read,
        cache_write_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
        web_searches=as_int(sub(block, "server_tool_use").get("web_search_requests")),
        mode=tier_mode(block.get("service_tier")),
    )


def on_event(state: StreamState, event: Any) -> bool:
    if not isinstance(event, dict):
        return True
    kind = event.get("type")
    if kind == "content_block_delta":
        delta = sub(event, "delta")
        state.add_text(delta.get("text") or delta.get("thinking") or delta.get("partial_json"))
    elif kind == "message_start":
        start = sub(sub(event, "message"), "usage")
        state.extra["usage"] = dict(start)
        state.reported_input_tokens = usage_of(start).input_tokens
    elif kind == "message_delta":
        merged = {
            **state.extra.get("usage", {}),
            **{k: v for k, v in sub(event, "usage").items() if v is not None},
        }
        state.extra["usage"] = merged
        state.usage = usage_of(merged)
        state.finished = True
    return True


ADAPTER = Adapter(
    parse=parse,
    rewrite=swap_model,
    usage=usage_block(usage_of),
    on_event=on_event,
    end_markers=(b"message_stop",),
)

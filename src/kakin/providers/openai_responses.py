"""OpenAI ``POST /v1/responses``.

Usage arrives in the final ``response.completed`` event (or ``response.incomplete`` /
``response.failed``), always, so nothing needs to be asked for or stripped. Web searches
the model ran are output items of type ``web_search_call`` and are billed per call. A stream
keeps the response object it announced in ``StreamState.extra["response"]``: its id names the
stored response (see ``kakin.providers.objects``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kakin.errors import InvalidInput
from kakin.pricing import Usage
from kakin.providers import counting
from kakin.providers.adapter import Adapter, StreamState, as_int, sub, swap_model, tier_mode
from kakin.providers.endpoints import Endpoint
from kakin.providers.request import (
    ParsedRequest,
    check_tools,
    load_json_object,
    optional_bool,
    optional_int,
    optional_str,
    require_str,
)

_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def parse(
    endpoint: Endpoint,
    body: bytes,
    path_params: Mapping[str, str],
    query: Mapping[str, str],
    model_map: Mapping[str, str],
) -> ParsedRequest:
    doc = load_json_object(body, endpoint)
    model = require_str(doc, "model", example="gpt-4.1-mini")
    stream = optional_bool(doc, "stream")
    cap = optional_int(doc, "max_output_tokens")
    count = count_input(doc, model)
    return ParsedRequest(
        endpoint=endpoint,
        model=model,
        stream=stream,
        client_wants_stream_usage=stream,
        max_output_tokens=cap,
        **count.request_fields(),
        mode=tier_mode(optional_str(doc, "service_tier")) or "standard",
        doc=doc,
        path_params=path_params,
        query=query,
        body=body,
    )


def count_input(doc: Mapping[str, Any], model: str) -> counting.Count:
    """``instructions`` + ``input`` (a string or a list of input items) as one conversation."""
    turns: list[Any] = []
    instructions = optional_str(doc, "instructions")
    if instructions:
        turns.append({"role": "developer", "content": instructions})
    items = doc.get("input")
    if items is None:
        if doc.get("previous_response_id") is None:
            raise InvalidInput("input is required: a string or an array of input items")
        items = []
    if isinstance(items, str):
        turns.append({"role": "user", "content": items})
    elif isinstance(items, list):
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidInput(f"input[{index}] must be an object (an input item)")
        turns.extend(items)
    else:
        raise InvalidInput("input must be a string or an array of input items")
    tools = doc.get("tools")
    check_tools(tools)
    return counting.count_messages(turns, model, tools)


def limit_output(doc: dict[str, Any], tokens: int) -> dict[str, Any]:
    """Limit the answer with ``max_output_tokens`` (reasoning tokens count toward it)."""
    return {**doc, "max_output_tokens": tokens}


def usage_of(response: Mapping[str, Any]) -> Usage | None:
    block = sub(response, "usage")
    if not block:
        return None
    searches = 0
    output = response.get("output")
    if isinstance(output, list):
        searches = sum(
            1 for item in output if isinstance(item, dict) and item.get("type") == "web_search_call"
        )
    return Usage(
        input_tokens=as_int(block.get("input_tokens")),
        output_tokens=as_int(block.get("output_tokens")),
        cache_read_tokens=as_int(sub(block, "input_tokens_details").get("cached_tokens")),
        output_reasoning_tokens=as_int(sub(block, "output_tokens_details").get("reasoning_tokens")),
        web_searches=searches,
        mode=tier_mode(response.get("service_tier")),
    )


def usage(parsed: ParsedRequest, doc: Any) -> Usage | None:
    return usage_of(doc) if isinstance(doc, dict) else None


def on_event(state: StreamState, event: Any) -> bool:
    if not isinstance(event, dict):
        return True
    kind = event.get("type")
    if kind == "response.output_text.delta":
        state.add_text(event.get("delta"))
    elif kind == "response.created":
        state.extra["response"] = sub(event, "response")  # its id, stored unless store is false
    elif kind in _FINAL_EVENTS:
        state.extra["response"] = response = sub(event, "response")
        state.usage = usage_of(response)
        state.finished = True
    return True


ADAPTER = Adapter(
    parse=parse,
    rewrite=swap_model,
    usage=usage,
    on_event=on_event,
    limit_output=limit_output,
    stamp_key="response",
    end_markers=(b"response.completed", b"response.incomplete", b"response.failed"),
)

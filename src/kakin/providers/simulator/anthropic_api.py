"""The simulated Anthropic Messages API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from kakin.providers.simulator.reply import SSE, Reply, json_reply, named_event
from kakin.providers.simulator.text import complete, digest, split

if TYPE_CHECKING:
    from kakin.providers.simulator.app import Call

MODELS = ("claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-5", "claude-sonnet-4-5")


def messages(call: Call) -> Reply:
    parsed, doc = call.parsed, call.parsed.doc or {}
    model = parsed.model
    seed = digest(model.encode(), orjson.dumps(doc.get("system")), orjson.dumps(doc.get("messages")))
    cap = int(doc["max_tokens"])
    blocks: list[dict[str, Any]] = []
    pieces: list[tuple[str, list[str]]] = []  # (block type, stream deltas)
    used = 0
    thinking = doc.get("thinking") if isinstance(doc.get("thinking"), dict) else {}
    if thinking.get("type") == "enabled":
        budget = min(int(thinking.get("budget_tokens") or cap), cap)
        thought = complete(digest(seed, b"thinking"), model, budget, call.faults.words)
        used = thought.tokens
        signature = seed.hex()
        blocks.append({"type": "thinking", "thinking": thought.text, "signature": signature})
        pieces.append(("thinking", split(thought.pieces, call.faults.chunks)))
    text = complete(seed, model, cap - used, call.faults.words)
    blocks.append({"type": "text", "text": text.text})
    pieces.append(("text", split(text.pieces, call.faults.chunks)))
    stop = "max_tokens" if text.truncated else "end_turn"
    cached = call.sim.anthropic_cache.apply(model, doc, parsed.input_tokens)
    written = cached.write_5m + cached.write_1h
    input_side = {
        "input_tokens": parsed.input_tokens - cached.read - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached.read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cached.write_5m,
            "ephemeral_1h_input_tokens": cached.write_1h,
        },
    }
    # The tier that served: priority when the organisation has capacity and the request
    # does not refuse it ("auto", the default, takes it).
    served_priority = call.faults.priority_capacity and doc.get("service_tier") != "standard_only"
    tier = "priority" if served_priority else "standard"
    usage = {**input_side, "output_tokens": used + text.tokens, "service_tier": tier}
    message: dict[str, Any] = {
        "id": "msg_" + seed.hex()[:24],
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
    }
    no_usage = call.faults.no_usage
    if not parsed.stream:
        if not no_usage:
            message["usage"] = usage
        return json_reply(message)
    start = {**message, "content": [], "stop_reason": None}
    if not no_usage:
        start["usage"] = {**input_side, "output_tokens": 1, "service_tier": tier}
    events = [named_event("message_start", {"type": "message_start", "message": start})]
    for index, (kind, deltas) in enumerate(pieces):
        empty = (
            {"type": "thinking", "thinking": "", "signature": ""}
            if kind == "thinking"
            else {"type": "text", "text": ""}
        )
        events.append(
            named_event(
                "content_block_start", {"type": "content_block_start", "index": index, "content_block": empty}
            )
        )
        if index == 0:
            events.append(named_event("ping", {"type": "ping"}))
        for piece in deltas:
            delta = (
                {"type": "thinking_delta", "thinking": piece}
                if kind == "thinking"
                else {"type": "text_delta", "text": piece}
            )
            events.append(
                named_event(
                    "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
                )
            )
        if kind == "thinking":
            delta = {"type": "signature_delta", "signature": blocks[0]["signature"]}
            events.append(
                named_event(
                    "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
                )
            )
        events.append(named_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    final: dict[str, Any] = {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}}
    if not no_usage:
        final["usage"] = {k: v for k, v in usage.items() if k not in ("cache_creation", "service_tier")}
    events.append(named_event("message_delta", final))
    events.append(named_event("message_stop", {"type": "message_stop"}))
    return Reply(events=events, content_type=SSE)


def count_tokens(call: Call) -> Reply:
    return json_reply({"input_tokens": call.parsed.input_tokens})


def models(call: Call) -> Reply:
    data = [
        {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"} for m in MODELS
    ]
    return json_reply({"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]})

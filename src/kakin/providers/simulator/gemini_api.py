"""The simulated Gemini API (``/v1beta`` and ``/v1``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from kakin.providers.gemini import field
from kakin.providers.gemini_cache import DEFAULT_TTL_SECONDS
from kakin.providers.simulator.reply import JSON, SSE, Reply, data_event, json_reply
from kakin.providers.simulator.text import complete, digest, is_reasoning_model, reasoning_tokens, split

if TYPE_CHECKING:
    from kakin.providers.simulator.app import Call

MODELS = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash")


def not_found(name: str) -> Reply:
    message = f"CachedContent not found (or permission denied): {name}"
    return json_reply({"error": {"code": 404, "message": message, "status": "NOT_FOUND"}}, 404)


def generate(call: Call) -> Reply:
    parsed, doc = call.parsed, call.parsed.doc or {}
    model = parsed.model
    cached_tokens = 0
    if parsed.cached_content:
        entry = call.sim.gemini_caches.get(parsed.cached_content)
        if entry is None:
            return not_found(parsed.cached_content)
        cached_tokens = entry.tokens
    seed = digest(
        model.encode(),
        orjson.dumps(doc.get("contents")),
        orjson.dumps(field(doc, "systemInstruction")),
        (parsed.cached_content or "").encode(),
    )
    config = field(doc, "generationConfig") or {}
    cap = field(config, "maxOutputTokens")
    cap = int(cap) if cap is not None else None
    thinking = field(config, "thinkingConfig") or {}
    budget = field(thinking, "thinkingBudget")
    thoughts = 0
    if is_reasoning_model(model) and budget != 0:
        thoughts = reasoning_tokens(seed)
        if isinstance(budget, int) and budget > 0:
            thoughts = min(thoughts, budget)
        if cap is not None:
            thoughts = min(thoughts, cap)
    text = complete(seed, model, None if cap is None else cap - thoughts, call.faults.words)
    finish = "MAX_TOKENS" if text.truncated else "STOP"
    prompt = parsed.input_tokens + cached_tokens
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": text.tokens,
        "totalTokenCount": prompt + text.tokens + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if cached_tokens:
        usage["cachedContentTokenCount"] = cached_tokens
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached_tokens}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    ident = seed.hex()[:22]
    tail = {"modelVersion": model, "responseId": ident}
    if not parsed.stream:
        candidate = {
            "content": {"parts": [{"text": text.text}], "role": "model"},
            "finishReason": finish,
            "index": 0,
        }
        body: dict[str, Any] = {"candidates": [candidate]}
        if not call.faults.no_usage:
            body["usageMetadata"] = usage
        return json_reply({**body, **tail})
    deltas = split(text.pieces, call.faults.chunks) or [""]
    chunks: list[dict[str, Any]] = []
    for position, piece in enumerate(deltas):
        candidate = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
        chunk: dict[str, Any] = {"candidates": [candidate]}
        last = position == len(deltas) - 1
        if last:
            candidate["finishReason"] = finish
        if not call.faults.no_usage:
            chunk["usageMetadata"] = (
                usage if last else {"promptTokenCount": prompt, "totalTokenCount": prompt}
            )
        chunks.append({**chunk, **tail})
    if parsed.query.get("alt") == "sse":
        return Reply(events=[data_event(c, b"\r\n\r\n") for c in chunks], content_type=SSE)
    # Without alt=sse Gemini streams one JSON array, element by element.
    events = [(b"[" if i == 0 else b",\r\n") + orjson.dumps(c) for i, c in enumerate(chunks)]
    events[-1] += b"]"
    return Reply(events=events, content_type=JSON)


def count_tokens(call: Call) -> Reply:
    parsed = call.parsed
    body: dict[str, Any] = {"totalTokens": parsed.input_tokens}
    if parsed.cached_content:
        entry = call.sim.gemini_caches.get(parsed.cached_content)
        if entry is None:
            return not_found(parsed.cached_content)
        body["totalTokens"] += entry.tokens
        body["cachedContentTokenCount"] = entry.tokens
    body["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": body["totalTokens"]}]
    return json_reply(body)


def cache_create(call: Call) -> Reply:
    parsed, doc = call.parsed, call.parsed.doc or {}
    ttl = parsed.cache_ttl_seconds or DEFAULT_TTL_SECONDS
    name = str(field(doc, "displayName") or "")
    entry = call.sim.gemini_caches.create(parsed.model, parsed.input_tokens, ttl, name)
    return json_reply(entry.resource())


def cache_get(call: Call) -> Reply:
    entry = call.sim.gemini_caches.get(call.parsed.path_params["name"])
    return json_reply(entry.resource()) if entry else not_found(call.parsed.path_params["name"])


def cache_list(call: Call) -> Reply:
    """One page: ``pageSize`` entries (default 100, at most 1000) from the offset
    ``pageToken`` names."""
    query = call.parsed.query
    size, token = query.get("pageSize") or "100", query.get("pageToken") or "0"
    if not (size.isdigit() and token.isdigit() and int(size) > 0):
        return json_reply(
            {
                "error": {
                    "code": 400,
                    "message": "invalid pageSize or pageToken",
                    "status": "INVALID_ARGUMENT",
                }
            },
            400,
        )
    entries = call.sim.gemini_caches.all()
    start, end = int(token), int(token) + min(int(size), 1000)  # as the API coerces it
    body: dict[str, Any] = {}
    if entries[start:end]:
        body["cachedContents"] = [e.resource() for e in entries[start:end]]
    if end < len(entries):
        body["nextPageToken"] = str(end)
    return json_reply(body)


def cache_update(call: Call) -> Reply:
    name = call.parsed.path_params["name"]
    entry = call.sim.gemini_caches.update(name, call.parsed.cache_ttl_seconds or DEFAULT_TTL_SECONDS)
    return json_reply(entry.resource()) if entry else not_found(name)


def cache_delete(call: Call) -> Reply:
    name = call.parsed.path_params["name"]
    return json_reply({}) if call.sim.gemini_caches.delete(name) else not_found(name)


def models(call: Call) -> Reply:
    methods = ["generateContent", "streamGenerateContent", "countTokens", "createCachedContent"]
    data = [
        {
            "name": "models/" + m,
            "displayName": m,
            "inputTokenLimit": 1_048_576,
            "outputTokenLimit": 65_536,
            "supportedGenerationMethods": methods,
        }
        for m in MODELS
    ]
    return json_reply({"models": data})

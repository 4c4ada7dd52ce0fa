"""Google Gemini ``models/{model}:generateContent``, ``:streamGenerateContent`` and the
free ``:countTokens``, under ``/v1beta`` and ``/v1``.

``usageMetadata.promptTokenCount`` already includes ``cachedContentTokenCount``;
``thoughtsTokenCount`` is billed as output on top of ``candidatesTokenCount``. A stream
repeats ``usageMetadata`` in its chunks; the chunk carrying ``finishReason`` has the final
figures. Without ``?alt=sse`` the stream is one JSON array delivered piece by piece.

Gemini's REST API accepts camelCase and snake_case field names alike (``maxOutputTokens``
or ``max_output_tokens``); so does this adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from kakin.errors import InvalidInput
from kakin.pricing import Usage
from kakin.providers import counting
from kakin.providers.adapter import Adapter, StreamState, as_int
from kakin.providers.endpoints import Endpoint
from kakin.providers.request import (
    MAX_TOKENS_LIMIT,
    ParsedRequest,
    check_tools,
    load_json_object,
    optional_int,
)


@lru_cache(maxsize=256)
def snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


def field(doc: Mapping[str, Any], camel: str) -> Any:
    """A field by its camelCase name or its snake_case twin."""
    if camel in doc:
        return doc[camel]
    return doc.get(snake(camel))


def obj(doc: Mapping[str, Any], camel: str) -> dict[str, Any]:
    value = field(doc, camel)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{camel} must be an object, got {type(value).__name__}")
    return value


def model_name(raw: str) -> str:
    return raw[len("models/") :] if raw.startswith("models/") else raw


def parse(
    endpoint: Endpoint,
    body: bytes,
    path_params: Mapping[str, str],
    query: Mapping[str, str],
    model_map: Mapping[str, str],
) -> ParsedRequest:
    doc = load_json_object(body, endpoint)
    model = model_name(path_params["model"])
    request = doc
    if endpoint.kind == "count_tokens" and isinstance(field(doc, "generateContentRequest"), dict):
        request = field(doc, "generateContentRequest")
    config = obj(request, "generationConfig")
    cap = _int(config, "maxOutputTokens")
    candidates = _int(config, "candidateCount", maximum=8) or 1
    thinking = obj(config, "thinkingConfig")
    budget = _int(thinking, "thinkingBudget", minimum=-1) or 0
    cached = field(request, "cachedContent")
    if cached is not None and not isinstance(cached, str):
        raise InvalidInput("cachedContent must be a cache name such as 'cachedContents/abc123'")
    count = count_request(request, model, require_contents=cached is None)
    stream = endpoint.name == "google.stream_generate"
    return ParsedRequest(
        endpoint=endpoint,
        model=model,
        stream=stream,
        client_wants_stream_usage=stream,
        max_output_tokens=None if cap is None else cap * candidates,
        # Thoughts count toward maxOutputTokens; with no cap the budget adds to the default one.
        extra_output_tokens=max(budget, 0) if cap is None else 0,
        choices=candidates,
        **count.request_fields(),
        cached_content=cached,
        doc=doc,
        path_params=path_params,
        query=query,
        body=body,
    )


def _int(doc: Mapping[str, Any], camel: str, minimum: int = 1, maximum: int = MAX_TOKENS_LIMIT) -> int | None:
    key = camel if camel in doc else snake(camel)
    value = doc.get(key)
    if isinstance(value, str) and value.lstrip("-").isdigit():  # proto JSON allows int64 as strings
        value = int(value)
    return optional_int({key: value}, key, minimum=minimum, maximum=maximum)


def count_request(doc: Mapping[str, Any], model: str, *, require_contents: bool = True) -> counting.Count:
    """``systemInstruction`` as a first message, then ``contents``, then tool definitions."""
    turns: list[Any] = []
    system = field(doc, "systemInstruction")
    if isinstance(system, str):
        turns.append({"role": "system", "parts": [{"text": system}]})
    elif isinstance(system, dict):
        turns.append({"role": "system", "parts": system.get("parts") or []})
    elif system is not None:
        raise InvalidInput("systemInstruction must be an object with parts")
    contents = doc.get("contents")
    if contents is None and not require_contents:
        contents = []
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or (require_contents and not contents):
        raise InvalidInput("contents is required: an array of {role, parts} objects")
    for index, content in enumerate(contents):
        if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
            raise InvalidInput(f"contents[{index}] must be an object with role and an array of parts")
        turns.append(content)
    tools = doc.get("tools")
    check_tools(tools)
    if not turns:
        return counting.Count.known(0, 0, True, "empty")
    return counting.count_messages(turns, model, tools)


def rewrite(parsed: ParsedRequest, model: str | None) -> dict[str, Any] | None:
    return None  # the model is in the path; see dispatch.upstream_request


def limit_output(doc: dict[str, Any], tokens: int) -> dict[str, Any]:
    """Limit each candidate with ``generationConfig.maxOutputTokens`` (thoughts count toward
    it), in the case the request spells ``generationConfig`` in."""
    snake_case = "generation_config" in doc and "generationConfig" not in doc
    key, name = (
        ("generation_config", "max_output_tokens") if snake_case else ("generationConfig", "maxOutputTokens")
    )
    config = {k: v for k, v in obj(doc, "generationConfig").items() if snake(k) != "max_output_tokens"}
    return {**doc, key: {**config, name: tokens}}


def _modality(details: Any, modality: str) -> int:
    if not isinstance(details, list):
        return 0
    return sum(
        as_int(field(d, "tokenCount"))
        for d in details
        if isinstance(d, dict) and d.get("modality") == modality
    )


def usage_of(meta: Mapping[str, Any]) -> Usage:
    thoughts = as_int(field(meta, "thoughtsTokenCount"))
    prompt_details = field(meta, "promptTokensDetails")
    cache_details = field(meta, "cacheTokensDetails")
    output_details = field(meta, "candidatesTokensDetails")
    return Usage(
        input_tokens=as_int(field(meta, "promptTokenCount")) + as_int(field(meta, "toolUsePromptTokenCount")),
        output_tokens=as_int(field(meta, "candidatesTokenCount")) + thoughts,
        cache_read_tokens=as_int(field(meta, "cachedContentTokenCount")),
        output_reasoning_tokens=thoughts,
        input_audio_tokens=_modality(prompt_details, "AUDIO"),
        input_image_tokens=_modality(prompt_details, "IMAGE"),
        cache_audio_read_tokens=_modality(cache_details, "AUDIO"),
        output_audio_tokens=_modality(output_details, "AUDIO"),
        output_image_tokens=_modality(output_details, "IMAGE"),
    )


def usage(parsed: ParsedRequest, doc: Any) -> Usage | None:
    if parsed.endpoint.kind == "count_tokens":
        return Usage(requests=1)
    if isinstance(doc, list):  # a buffered streamGenerateContent array
        doc = doc[-1] if doc else {}
    meta = field(doc, "usageMetadata") if isinstance(doc, dict) else None
    return usage_of(meta) if isinstance(meta, dict) else None


def on_event(state: StreamState, event: Any) -> bool:
    if not isinstance(event, dict):
        return True
    finished = bool(state.extra.get("finish"))
    candidates = event.get("candidates")
    if isinstance(candidates, list):
        for candidate in candidates:
            if not isinstance(candidate, dict):
                continue
            content = candidate.get("content")
            if isinstance(content, dict) and isinstance(content.get("parts"), list):
                for part in content["parts"]:
                    if isinstance(part, dict):
                        state.add_text(part.get("text"))
            finished = finished or bool(field(candidate, "finishReason"))
    state.extra["finish"] = finished
    meta = field(event, "usageMetadata")
    if isinstance(meta, dict):
        state.extra["usage"] = meta
    if finished and isinstance(state.extra.get("usage"), dict):
        state.usage = usage_of(state.extra["usage"])
        state.finished = True
    return True


ADAPTER = Adapter(
    parse=parse,
    rewrite=rewrite,
    usage=usage,
    on_event=on_event,
    limit_output=limit_output,
    end_markers=(b'"finishReason"',),
)

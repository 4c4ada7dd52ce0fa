"""Counting a whole chat request: message texts, per-message framing, images and tools.

Accepted shapes (mixed freely, judged per part, not per request):
  * OpenAI chat — ``{"role", "content": str | [parts], "name"?, "tool_calls"?, "tool_call_id"?}``
    with ``text`` / ``image_url`` parts (and the Responses API's ``input_text`` / ``input_image``);
  * Anthropic messages — content blocks ``text``, ``image`` (base64 or URL source),
    ``tool_use``, ``tool_result``; pass the ``system`` prompt as a first message with role
    ``system``;
  * Gemini contents — ``{"role", "parts": [{"text"} | {"inline_data"} | {"file_data"} |
    {"function_call"} | {"function_response"}]}`` in snake_case or camelCase.

Framing follows the tokenizer's owner:
  * OpenAI (cookbook ``num_tokens_from_messages``): 3 tokens per message, the tokens of every
    string field (role, content, name, …), 1 more per ``name``, and 3 to prime the reply.
    With string contents and no tools this is the figure the API reports, so it is exact.
    Tool definitions follow the cookbook's approximation of the hidden rendering (an estimate).
  * Anthropic and Gemini publish no tokenizer: the estimate uses the character rule plus the
    OpenAI-style framing; the upper bound adds conservative allowances per message and per
    request (and Anthropic's documented tool-use system prompt, at its largest published size).

Images: tokens by :mod:`kakin.tokens.images`; sizes come from inline data, and an image given
only by URL is counted at the largest size the provider's resizing allows (never fetched).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from kakin.errors import InvalidInput
from kakin.tokens.images import base64_size, data_url_size, image_token_bound, image_tokens
from kakin.tokens.models import base_name, provider_for_model
from kakin.tokens.text import (
    BOUND_METHOD,
    CHAR_METHOD,
    ExactRoute,
    TokenCount,
    estimate_chars,
    exact_route,
    text_upper_bound,
)
from kakin.tokens.vocab import encoding

# OpenAI cookbook framing.
TOKENS_PER_MESSAGE: Final = 3
TOKENS_PER_NAME: Final = 1
REPLY_PRIMING: Final = 3
# The cookbook's tool-definition approximation: (function start, function end, properties
# start, per property, enum start, per enum item), for o200k and for cl100k models.
_TOOL_WEIGHTS: Final = {"o200k": (7, 12, 3, 3, -3, 3), "cl100k": (10, 12, 3, 3, -3, 3)}
# Upper-bound allowances where no tokenizer or framing is published: several times the
# 3 per message + 3 per request that OpenAI's comparable ChatML framing costs.
BOUND_PER_MESSAGE: Final = 16
BOUND_PER_REQUEST: Final = 32
BOUND_PER_TOOL: Final = 32
# Anthropic's tool-use system prompt, largest size in its pricing docs (Claude 3 Opus, 530).
ANTHROPIC_TOOL_PROMPT_ESTIMATE: Final = 346
ANTHROPIC_TOOL_PROMPT_BOUND: Final = 530
_TEXT_TYPES: Final = frozenset({"text", "input_text", "output_text", "refusal"})
_MAX_DEPTH: Final = 32


@dataclass(slots=True)
class _Request:
    """Everything in a request that turns into tokens, gathered once."""

    texts: list[str] = field(default_factory=list)
    messages: int = 0
    names: int = 0
    images: list[tuple[tuple[int, int] | None, str]] = field(default_factory=list)
    plain: bool = True  # only string contents: the OpenAI framing figure is then exact


def count_messages(messages: list[dict], model: str, *, tools: list[dict] | None = None) -> TokenCount:
    """Input tokens of a chat request (messages + optional tool definitions) for ``model``."""
    if not isinstance(model, str) or not model.strip():
        raise InvalidInput(f"model must be a non-empty string, got {model!r}")
    if not isinstance(messages, list):
        raise InvalidInput(f"messages must be a list of message objects, got {type(messages).__name__}")
    if tools is not None and not isinstance(tools, list):
        raise InvalidInput(f"tools must be a list of tool definitions, got {type(tools).__name__}")
    for position, tool in enumerate(tools or []):
        if not isinstance(tool, Mapping):
            raise InvalidInput(f"tools[{position}] must be an object, got {type(tool).__name__}")
    request = _Request()
    for index, message in enumerate(messages):
        _collect_message(request, message, index)
    route = exact_route(model)
    if route is not None:
        return _count_openai(request, model, route, tools or [])
    return _count_estimated(request, model, provider_for_model(model), tools or [])


def quick_upper_bound(messages: list[dict], model: str, *, tools: list[dict] | None = None) -> int | None:
    """A strict upper bound of :func:`count_messages` found without encoding anything, for a
    plain-text OpenAI conversation (messages of strings only, no tools): a token of a
    byte-level BPE covers at least one UTF-8 byte, and the framing is the same. None when the
    shortcut does not apply (other providers, images, tools, structured parts)."""
    if tools or not isinstance(messages, list):
        return None
    route = exact_route(model) if isinstance(model, str) and model.strip() else None
    if route is None:
        return None
    per_message, per_name = _framing(model)
    total = names = 0
    for message in messages:
        if not isinstance(message, Mapping):
            return None
        for key, value in message.items():
            if value is None:
                continue
            if not isinstance(value, str):
                return None
            total += len(value.encode())
            names += key == "name"
    return total + per_message * len(messages) + per_name * names + REPLY_PRIMING


def _framing(model: str) -> tuple[int, int]:
    """Tokens added per message and per name in OpenAI's chat format."""
    if base_name(model).startswith(("gpt-3.5-turbo-0301", "gpt-35-turbo-0301")):
        return 4, -1  # the first ChatML revision, per the cookbook
    return TOKENS_PER_MESSAGE, TOKENS_PER_NAME


def _collect_message(request: _Request, message: object, index: int) -> None:
    request.messages += 1
    if isinstance(message, str):
        request.texts.append(message)
        return
    if not isinstance(message, Mapping):
        raise InvalidInput(f"messages[{index}] must be an object, got {type(message).__name__}")
    for key, value in message.items():
        if key == "content" or key == "parts":
            if isinstance(value, str):
                request.texts.append(value)
            elif value is not None:
                request.plain = False
                _collect_parts(request, value, f"messages[{index}].{key}", 0)
        elif key == "name" and isinstance(value, str):
            request.names += 1
            request.texts.append(value)
        elif isinstance(value, str):
            request.texts.append(value)  # role, tool_call_id, …: the cookbook counts every string
        elif value is not None:
            request.plain = False  # tool_calls, function_call, audio references
            request.texts.append(_json(value))


def _collect_parts(request: _Request, parts: object, where: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise InvalidInput(f"{where} is nested more than {_MAX_DEPTH} levels deep")
    if isinstance(parts, str):
        request.texts.append(parts)
        return
    if isinstance(parts, Mapping):
        parts = [parts]
    if not isinstance(parts, list):
        raise InvalidInput(f"{where} must be a string or a list of content parts, got {type(parts).__name__}")
    for position, part in enumerate(parts):
        _collect_part(request, part, f"{where}[{position}]", depth)


def _collect_part(request: _Request, part: object, where: str, depth: int) -> None:
    if isinstance(part, str):
        request.texts.append(part)
        return
    if not isinstance(part, Mapping):
        raise InvalidInput(f"{where} must be an object or a string, got {type(part).__name__}")
    kind = part.get("type")
    if kind in _TEXT_TYPES or (kind is None and isinstance(part.get("text"), str)):
        text = part.get("text", part.get("refusal", ""))
        request.texts.append(text if isinstance(text, str) else _json(text))
        return
    image = _image_of(part)
    if image is not None:
        request.images.append(image)
        return
    if kind == "tool_result":
        _collect_parts(request, part.get("content") or "", where + ".content", depth + 1)
        return
    if kind == "tool_use":
        request.texts.append(str(part.get("name", "")))
        request.texts.append(_json(part.get("input", {})))
        return
    # function calls/responses, documents, audio: their JSON text is what we can bound.
    request.texts.append(_json(part))


def _image_of(part: Mapping[str, Any]) -> tuple[tuple[int, int] | None, str] | None:
    """(size or None, detail) when ``part`` is an image in any of the accepted shapes."""
    kind = part.get("type")
    if kind in ("image_url", "input_image"):
        ref = part.get("image_url")
        detail = part.get("detail", "auto")
        if isinstance(ref, Mapping):
            detail = ref.get("detail", detail)
            ref = ref.get("url")
        return (data_url_size(ref) if isinstance(ref, str) else None), _detail(detail)
    if kind == "image":
        source = part.get("source")
        if (
            isinstance(source, Mapping)
            and source.get("type") == "base64"
            and isinstance(source.get("data"), str)
        ):
            return base64_size(source["data"]), "auto"
        return None, "auto"
    inline = part.get("inline_data") or part.get("inlineData")
    if isinstance(inline, Mapping):
        mime = str(inline.get("mime_type") or inline.get("mimeType") or "")
        if mime.startswith("image/"):
            data = inline.get("data")
            return (base64_size(data) if isinstance(data, str) else None), "auto"
    linked = part.get("file_data") or part.get("fileData")
    if isinstance(linked, Mapping):
        mime = str(linked.get("mime_type") or linked.get("mimeType") or "")
        if mime.startswith("image/"):
            return None, "auto"
    return None


def _detail(value: object) -> str:
    return value if value in ("low", "high", "auto") else "auto"


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _count_openai(request: _Request, model: str, route: ExactRoute, tools: list[dict]) -> TokenCount:
    encode = route.encode
    per_message, per_name = _framing(model)
    text_tokens = sum(len(encode(text)) for text in request.texts)
    framing = per_message * request.messages + per_name * request.names + REPLY_PRIMING
    tokens = upper = text_tokens + framing
    method = f"{route.method} + OpenAI chat framing ({per_message}/message, {per_name}/name, {REPLY_PRIMING} reply)"
    exact = request.plain and not request.images and not tools
    image_estimate, image_bound = _images(request, model)
    tokens, upper = tokens + image_estimate, upper + image_bound
    if request.images:
        method += "; images by OpenAI's tile/patch rules" + (
            "" if all(s for s, _ in request.images) else " (URL images at the largest size)"
        )
    if tools:
        weights = _TOOL_WEIGHTS["cl100k" if route.name == "cl100k_base" else "o200k"]
        tokens += _openai_tools_estimate(tools, encode, weights)
        upper += sum(len(encode(_json(tool))) + BOUND_PER_TOOL for tool in tools) + BOUND_PER_REQUEST
        method += "; tools approximated as in OpenAI's cookbook, bounded by their JSON tokens"
    return TokenCount(tokens, max(tokens, upper), exact, method)


def _images(request: _Request, model: str) -> tuple[int, int]:
    """(estimate, upper bound) of the request's images; an image of unknown size is estimated
    at its bound, so a hold never relies on a guess about a picture kakin cannot see."""
    estimate = bound = 0
    for size, detail in request.images:
        most = image_token_bound(size, model=model, detail=detail)
        estimate += image_tokens(*size, model=model, detail=detail) if size else most
        bound += most
    return estimate, bound


def _openai_tools_estimate(tools: list[dict], encode: Any, weights: tuple[int, ...]) -> int:
    """The cookbook's approximation of how OpenAI renders function definitions."""
    func_init, func_end, prop_init, prop_key, enum_init, enum_item = weights
    total = 0
    for tool in tools:
        function = tool.get("function", tool)
        if not isinstance(function, Mapping):
            raise InvalidInput("each tool must be an object such as {'type': 'function', 'function': {...}}")
        description = str(function.get("description", "")).rstrip(".")
        total += func_init + len(encode(f"{function.get('name', '')}:{description}"))
        schema = function.get("parameters") or function.get("input_schema") or {}
        properties = schema.get("properties") if isinstance(schema, Mapping) else None
        if not isinstance(properties, Mapping) or not properties:
            continue
        total += prop_init
        for key, spec in properties.items():
            spec = spec if isinstance(spec, Mapping) else {}
            total += prop_key
            enum = spec.get("enum")
            if isinstance(enum, list) and enum:
                total += enum_init + sum(enum_item + len(encode(str(item))) for item in enum)
            total += len(
                encode(f"{key}:{spec.get('type', '')}:{str(spec.get('description', '')).rstrip('.')}")
            )
    return total + (func_end if tools else 0)


def _count_estimated(request: _Request, model: str, provider: str, tools: list[dict]) -> TokenCount:
    tool_texts = [_json(tool) for tool in tools]
    texts: Iterable[str] = [*request.texts, *tool_texts]
    if provider == "unknown":
        encode = encoding("o200k_base").encode_ordinary
        counted = [(len(encode(t)), text_upper_bound(t)) for t in texts]
        tokens = sum(n for n, _ in counted)
        upper = sum(max(n, b) for n, b in counted)
        how = "tiktoken o200k_base for an unrecognised model"
    else:
        tokens = sum(estimate_chars(t) for t in texts)
        upper = sum(text_upper_bound(t) for t in texts)
        how = CHAR_METHOD
    tokens += TOKENS_PER_MESSAGE * request.messages + TOKENS_PER_NAME * request.names + REPLY_PRIMING
    upper += BOUND_PER_MESSAGE * request.messages + BOUND_PER_REQUEST + BOUND_PER_TOOL * len(tools)
    image_estimate, image_bound = _images(request, model)
    tokens, upper = tokens + image_estimate, upper + image_bound
    if tools and provider == "anthropic":
        tokens += ANTHROPIC_TOOL_PROMPT_ESTIMATE
        upper += ANTHROPIC_TOOL_PROMPT_BOUND
    method = f"estimate for {provider}: {how} + framing; {BOUND_METHOD} + framing allowances"
    return TokenCount(tokens, max(tokens, upper), False, method)

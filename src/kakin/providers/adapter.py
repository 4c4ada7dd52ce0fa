"""The shape every provider adapter has, and the per-stream state adapters update.

An adapter is a few plain functions, one set per endpoint kind:

- ``parse(endpoint, doc_or_body, path_params, query, model_map) -> ParsedRequest``
- ``rewrite(parsed, model) -> dict | None``: the changed request document to send
  upstream, or None when the client's bytes can be forwarded untouched (the common case:
  no re-serialisation on the hot path);
- ``usage(parsed, doc) -> Usage | None``: usage of a complete (non-streamed) response;
- ``on_event(state, event) -> bool``: read one decoded stream event, record usage and
  produced text in ``state``, and say whether the client should receive it;
- ``limit_output(doc, tokens) -> dict`` (APIs whose requests may leave output unlimited):
  a copy of the request document that limits each answer to ``tokens`` output tokens.

``stamp_key`` names where the cost goes in the event that carries a stream's final usage;
``end_markers`` are byte strings found only in a stream's last events (the relay holds the
output back from the piece carrying one until the charge is durable).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kakin.pricing import Usage
from kakin.providers.endpoints import Endpoint
from kakin.providers.request import ParsedRequest


@dataclass(slots=True)
class StreamState:
    """What a stream meter knows so far."""

    parsed: ParsedRequest
    usage: Usage | None = None
    finished: bool = False
    text_parts: list[str] = field(default_factory=list)
    # Input tokens as the provider reported them early in the stream (Anthropic message_start).
    reported_input_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def add_text(self, text: object) -> None:
        if isinstance(text, str) and text:
            self.text_parts.append(text)


ParseFn = Callable[[Endpoint, bytes, Mapping[str, str], Mapping[str, str], Mapping[str, str]], ParsedRequest]
RewriteFn = Callable[[ParsedRequest, "str | None"], "dict[str, Any] | None"]
UsageFn = Callable[[ParsedRequest, Any], "Usage | None"]
EventFn = Callable[[StreamState, Any], bool]
LimitFn = Callable[[dict[str, Any], int], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Adapter:
    parse: ParseFn
    rewrite: RewriteFn
    usage: UsageFn
    on_event: EventFn | None = None
    limit_output: LimitFn | None = None
    # "sse" for text/event-stream, "json-array" for Gemini's stream without alt=sse.
    stream_framing: str = "sse"
    # Which object of a stream's final event takes kakin's fields: the event itself, or
    # the object under this key (the Responses API's ``response``).
    stamp_key: str | None = None
    # Bytes that appear only in a stream's last events, e.g. b"[DONE]".
    end_markers: tuple[bytes, ...] = ()


def swap_model(parsed: ParsedRequest, model: str | None) -> dict[str, Any] | None:
    """A ``rewrite`` for JSON bodies that name their model: the document with the routed
    ``model``, or None when nothing changes. Azure names the deployment in the path, so its
    bodies are never rewritten."""
    doc = parsed.doc or {}
    if model is None or model == doc.get("model") or parsed.endpoint.api == "azure":
        return None
    return {**doc, "model": model}


def usage_block(read: Callable[[dict[str, Any]], Usage]) -> UsageFn:
    """A ``usage`` that reads the response's top-level ``usage`` object with ``read``; None
    when the response has none."""

    def usage(parsed: ParsedRequest, doc: Any) -> Usage | None:
        block = sub(doc, "usage")
        return read(block) if block else None

    return usage


# Providers' service tier names → kakin's pricing modes. OpenAI answers "default" for its
# standard tier and "scale" for Scale Tier, whose reserved units are paid for up front, so
# its tokens bill at standard rates. "auto" (OpenAI's "use the project's default") says
# nothing about the tier that served, so it maps to nothing.
_TIER_MODES = {
    "default": "standard",
    "standard": "standard",
    "scale": "standard",
    "flex": "flex",
    "priority": "priority",
    "batch": "batch",
}


def tier_mode(tier: object) -> str | None:
    """The pricing mode of a provider's ``service_tier`` value; None when it names none."""
    return _TIER_MODES.get(tier) if isinstance(tier, str) else None


def as_int(value: object) -> int:
    """A usage figure from a provider response: a non-negative int, or 0 when absent/odd."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, float) and value > 0:
        return int(value)
    return 0


def sub(doc: object, key: str) -> dict[str, Any]:
    """``doc[key]`` when it is an object, else an empty dict (provider fields are often null)."""
    if isinstance(doc, dict):
        value = doc.get(key)
        if isinstance(value, dict):
            return value
    return {}

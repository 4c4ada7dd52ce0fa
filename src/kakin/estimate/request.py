"""One request, priced before it is sent.

The input side is counted from the prompt (a text, or a chat request's messages and tools)
with kakin.tokens; the output side is unknown until the model answers, and is bounded by
``max_tokens``. Two figures come out:

* **expected** — the counted (or estimated) input, and ``expected_output_tokens`` of output
  (by default half of ``max_tokens``: with nothing better known, the middle of the range).
* **worst case** — the input's upper bound (equal to the count when it is exact) and the
  full ``max_tokens`` of output: the most the request can cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kakin.catalog import Catalog
from kakin.errors import InvalidInput
from kakin.estimate.inputs import TOKENS_PER_REQUEST, whole
from kakin.estimate.shape import RequestShape, price_shape, resolve_model
from kakin.pricing import Cost
from kakin.tokens import TokenCount, count_messages, count_text


@dataclass(frozen=True, slots=True)
class RequestEstimate:
    model: str
    provider: str
    input: TokenCount
    """Input tokens as counted: exact, or an estimate with its upper bound."""
    cached_tokens: int
    max_tokens: int
    expected_output_tokens: int
    expected: Cost
    worst: Cost

    @property
    def exact_input(self) -> bool:
        return self.input.exact


def estimate_request(
    model: str,
    *,
    text: str | None = None,
    messages: list[dict] | None = None,
    tools: list[dict] | None = None,
    max_tokens: object = 1024,
    expected_output_tokens: object | None = None,
    cached_tokens: object = 0,
    provider: str | None = None,
    at: datetime | None = None,
    mode: str = "standard",
    catalog: Catalog | None = None,
) -> RequestEstimate:
    """Expected and worst-case cost of one request given its prompt ``text`` or chat ``messages``."""
    if (text is None) == (messages is None):
        raise InvalidInput("give the prompt either as text or as chat messages (exactly one of them)")
    limit = whole(max_tokens, "max_tokens", TOKENS_PER_REQUEST)
    if expected_output_tokens is None:
        expected_out = (limit + 1) // 2
    else:
        expected_out = whole(expected_output_tokens, "expected output tokens", TOKENS_PER_REQUEST)
        if expected_out > limit:
            raise InvalidInput(
                f"expected output tokens ({expected_out}) cannot exceed max_tokens ({limit}): "
                "the model stops at max_tokens"
            )
    entry = resolve_model(model, provider, catalog)
    counted = (
        count_text(text, entry.model)
        if text is not None
        else count_messages(messages or [], entry.model, tools=tools)
    )
    cached = whole(cached_tokens, "cached input tokens", TOKENS_PER_REQUEST)
    if cached > counted.tokens:
        raise InvalidInput(
            f"cached input tokens ({cached}) cannot exceed the prompt's input tokens ({counted.tokens})"
        )
    expected = price_shape(RequestShape(counted.tokens, expected_out, cached), entry, at=at, mode=mode)
    worst = price_shape(RequestShape(counted.upper_bound, limit, cached), entry, at=at, mode=mode)
    return RequestEstimate(
        model=entry.model,
        provider=entry.provider,
        input=counted,
        cached_tokens=cached,
        max_tokens=limit,
        expected_output_tokens=expected_out,
        expected=expected,
        worst=worst,
    )


def request_from_json(document: Any, *, where: str = "messages file") -> dict[str, Any]:
    """The parts of a chat request body an estimate needs: ``messages`` (required), and
    ``tools``, ``model`` and ``max_tokens`` (or ``max_completion_tokens`` /
    ``max_output_tokens``) when present. A bare list is taken as the messages."""
    if isinstance(document, list):
        return {"messages": document}
    if not isinstance(document, Mapping):
        raise InvalidInput(f"{where}: expected a list of messages or a request object with 'messages'")
    messages = document.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidInput(f"{where}: 'messages' must be a non-empty list of message objects")
    found: dict[str, Any] = {"messages": messages}
    tools = document.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidInput(f"{where}: 'tools' must be a list")
        found["tools"] = tools
    model = document.get("model")
    if isinstance(model, str) and model.strip():
        found["model"] = model.strip()
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        if document.get(key) is not None:
            found["max_tokens"] = document[key]
            break
    return found

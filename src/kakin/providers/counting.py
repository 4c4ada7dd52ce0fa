"""Input-token counting for every wire format, through ``kakin.tokens``.

``kakin.tokens.count_messages`` reads OpenAI messages, Anthropic content blocks and Gemini
``parts`` alike (text, images from their inline size, tool calls as JSON), so adapters only
put the request's pieces into one message list: the system prompt or instructions first,
then the conversation. One counting rule, with its documented error and upper bound, then
applies to every format, and the simulator reports exactly what the gateway estimated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from kakin import tokens


@dataclass(frozen=True, slots=True)
class Count:
    tokens: int
    upper_bound: int
    exact: bool
    method: str

    def request_fields(self) -> dict[str, Any]:
        """The count as the ``ParsedRequest`` fields that carry it."""
        return {
            "input_tokens": self.tokens,
            "input_tokens_bound": self.upper_bound,
            "input_tokens_exact": self.exact,
            "counting_method": self.method,
        }


def count_messages(messages: list[Any], model: str, tools: Any = None) -> Count:
    result = tokens.count_messages(
        messages, model, tools=tools if isinstance(tools, list) and tools else None
    )
    return Count(result.tokens, result.upper_bound, result.exact, result.method)


def count_text(text: str, model: str) -> Count:
    result = tokens.count_text(text, model)
    return Count(result.tokens, result.upper_bound, result.exact, result.method)


def json_text(value: Any) -> str:
    """Structured values (tool arguments, outputs) are counted as their compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()

"""Input-token counting for every wire format, through ``kakin.tokens``.

``kakin.tokens.count_messages`` reads OpenAI messages, Anthropic content blocks and Gemini
``parts`` alike (text, images from their inline size, tool calls as JSON), so adapters only
put the request's pieces into one message list: the system prompt or instructions first,
then the conversation. One counting rule, with its documented error and upper bound, then
applies to every format, and the simulator reports exactly what the gateway estimated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from kakin import tokens


class Count:
    """A request's input tokens: the count (exact or estimated), its strict upper bound,
    whether it is exact, and how it was found.

    A plain-text OpenAI conversation is counted only when a figure is first read:
    ``quick_bound`` (its UTF-8 length plus the chat framing, a strict upper bound found
    without encoding) is enough to hold budget and rate-limit room before forwarding, and the
    exact count is needed only if that bound does not fit, or to bill a stream that ended
    without reported usage. Other requests are counted at once, so malformed content is
    refused while parsing."""

    __slots__ = ("_compute", "_figures", "_quick")

    def __init__(self, compute: Callable[[], tuple[int, int, bool, str]], quick: int | None = None) -> None:
        self._compute: Callable[[], tuple[int, int, bool, str]] | None = compute
        self._figures: tuple[int, int, bool, str] | None = None
        self._quick = quick

    @classmethod
    def known(cls, tokens: int, upper_bound: int, exact: bool, method: str) -> Count:
        count = cls(lambda: (tokens, upper_bound, exact, method))
        count.figures()
        return count

    def figures(self) -> tuple[int, int, bool, str]:
        if self._figures is None:
            assert self._compute is not None
            self._figures, self._compute = self._compute(), None
        return self._figures

    @property
    def tokens(self) -> int:
        return self.figures()[0]

    @property
    def upper_bound(self) -> int:
        return self.figures()[1]

    @property
    def exact(self) -> bool:
        return self.figures()[2]

    @property
    def method(self) -> str:
        return self.figures()[3]

    @property
    def quick_bound(self) -> int:
        """A strict upper bound, without counting when that can be avoided."""
        return self._quick if self._quick is not None and self._figures is None else self.upper_bound

    def request_fields(self) -> dict[str, Any]:
        """The count as the ``ParsedRequest`` field that carries it."""
        return {"input_count": self}


NO_COUNT = Count.known(0, 0, False, "")


def count_messages(messages: list[Any], model: str, tools: Any = None) -> Count:
    listed = tools if isinstance(tools, list) and tools else None

    def compute() -> tuple[int, int, bool, str]:
        result = tokens.count_messages(messages, model, tools=listed)
        return result.tokens, result.upper_bound, result.exact, result.method

    count = Count(compute, tokens.quick_upper_bound(messages, model, tools=listed))
    if count._quick is None:
        count.figures()
    return count


def count_text(text: str, model: str) -> Count:
    result = tokens.count_text(text, model)
    return Count.known(result.tokens, result.upper_bound, result.exact, result.method)


def json_text(value: Any) -> str:
    """Structured values (tool arguments, outputs) are counted as their compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()

"""What a request should have cost: the provider-reported usage, as the client's SDK saw it,
mapped to ``kakin.pricing.Usage`` by the table in docs/providers.md and priced with the catalog.

The mapping is written out here independently of kakin.providers, so a test compares the
gateway's bill with the price list rather than with the gateway's own arithmetic.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Any

from kakin.money import to_pico
from kakin.pricing import Usage, price


def _get(obj: Any, name: str, default: Any = 0) -> Any:
    if obj is None:
        return default
    value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return default if value is None else value


def openai_chat(usage: Any) -> Usage:
    """Chat completions ``usage`` (an SDK object or its dict)."""
    prompt = _get(usage, "prompt_tokens_details", None)
    completion = _get(usage, "completion_tokens_details", None)
    return Usage(
        input_tokens=_get(usage, "prompt_tokens"),
        cache_read_tokens=_get(prompt, "cached_tokens"),
        input_audio_tokens=_get(prompt, "audio_tokens"),
        output_tokens=_get(usage, "completion_tokens"),
        output_reasoning_tokens=_get(completion, "reasoning_tokens"),
        output_audio_tokens=_get(completion, "audio_tokens"),
    )


def openai_responses(usage: Any) -> Usage:
    return Usage(
        input_tokens=_get(usage, "input_tokens"),
        cache_read_tokens=_get(_get(usage, "input_tokens_details", None), "cached_tokens"),
        output_tokens=_get(usage, "output_tokens"),
        output_reasoning_tokens=_get(_get(usage, "output_tokens_details", None), "reasoning_tokens"),
    )


def anthropic_messages(usage: Any) -> Usage:
    """Anthropic's input_tokens exclude cache reads and writes; kakin's include them."""
    read = _get(usage, "cache_read_input_tokens")
    written = _get(usage, "cache_creation_input_tokens")
    breakdown = _get(usage, "cache_creation", None)
    write_5m = _get(breakdown, "ephemeral_5m_input_tokens") if breakdown is not None else written
    write_1h = _get(breakdown, "ephemeral_1h_input_tokens")
    return Usage(
        input_tokens=_get(usage, "input_tokens") + read + written,
        cache_read_tokens=read,
        cache_write_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
        output_tokens=_get(usage, "output_tokens"),
    )


def gemini(meta: Any) -> Usage:
    """``usage_metadata`` of a generateContent answer."""
    thoughts = _get(meta, "thoughts_token_count")
    return Usage(
        input_tokens=_get(meta, "prompt_token_count") + _get(meta, "tool_use_prompt_token_count"),
        cache_read_tokens=_get(meta, "cached_content_token_count"),
        output_tokens=_get(meta, "candidates_token_count") + thoughts,
        output_reasoning_tokens=thoughts,
    )


def seconds_billed(seconds: Decimal | float) -> Decimal:
    """Transcriptions report whole seconds, rounded up."""
    return Decimal(math.ceil(Decimal(str(seconds))))


def cost(usage: Usage, model: str, provider: str, at: datetime) -> Decimal:
    return price(usage, model, provider=provider, at=at).total


def assert_billed(record: Any, usage: Usage, model: str, provider: str) -> None:
    """The usage record's cost is the catalog price of ``usage``, to the picodollar, and not zero."""
    expected = cost(usage, model, provider, record.occurred_at)
    assert expected > 0
    assert to_pico(record.cost) == to_pico(expected), (record.cost, expected, usage)
    assert record.model == model

"""What one request (or a batch of requests) consumed, in the units providers bill.

Field names follow genai-prices' usage keys where they exist, so that the two can be
compared one to one. Counts are inclusive the way the providers report them:
``input_tokens`` holds *every* input token, cached, audio and image ones included, and
the more specific fields say how many of those were of a special kind. Pricing splits
them apart again (the input rate applies to what is left after the more specific priced
kinds are taken out), exactly as genai-prices does.

A ``Usage`` validates itself on construction so that a negative, fractional or absurd
figure coming from a client or an upstream response is refused before anything is priced
or written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from operator import attrgetter, gt
from typing import Any, Final

from kakin.catalog import MODES
from kakin.errors import InvalidInput

# Far beyond any real request or month (the largest context windows are ~10⁷ tokens),
# small enough that no price × quantity needs more than 28 significant digits.
MAX_COUNT: Final = 10**13
MAX_DECIMAL: Final = Decimal(10**12)

_ZERO: Final = Decimal(0)


@dataclass(frozen=True, slots=True)
class Usage:
    """Consumption of one request (``requests=1``) or of many added together."""

    input_tokens: int = 0
    """ALL input tokens, including cached, cache-written, audio, image and video ones."""
    output_tokens: int = 0
    """ALL output tokens, including reasoning, audio, image and video ones."""
    cache_read_tokens: int = 0
    """Input tokens read from the provider's prompt cache (part of ``input_tokens``)."""
    cache_write_tokens: int = 0
    """Input tokens written to the cache with the 5-minute TTL (Anthropic's default)."""
    cache_write_1h_tokens: int = 0
    """Input tokens written to the cache with the 1-hour TTL."""
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    cache_audio_read_tokens: int = 0
    """Cached audio input tokens (part of both ``cache_read_tokens`` and ``input_audio_tokens``)."""
    input_image_tokens: int = 0
    output_image_tokens: int = 0
    output_reasoning_tokens: int = 0
    """Informational: reasoning tokens are part of ``output_tokens`` and billed as output."""
    audio_seconds: Decimal = _ZERO
    """Seconds of audio billed by duration (transcription, realtime minutes)."""
    images: int = 0
    """Images billed per image (DALL·E, or GPT Image when no token usage is reported)."""
    image_size: str | None = None
    image_quality: str | None = None
    cache_storage_token_hours: Decimal = _ZERO
    """Context-cache storage: cached tokens × hours kept (Gemini explicit caching)."""
    requests: int = 1
    web_searches: int = 0
    cache_image_read_tokens: int = 0
    """Cached image input tokens (part of both ``cache_read_tokens`` and ``input_image_tokens``)."""
    input_video_tokens: int = 0
    output_video_tokens: int = 0
    input_characters: int = 0
    """Characters of input text billed per character (text-to-speech)."""
    storage_searches: int = 0
    """File-search tool calls."""
    mode: str | None = None
    """The mode the provider says it served the request in (standard, batch, flex, priority,
    fast), which ``price`` bills at; None when it did not say."""

    def __post_init__(self) -> None:
        # One C-level pass over all counts for the common, valid case; field by field only
        # when something needs converting or refusing.
        counts = _get_counts(self)
        if not _INT_ONLY.issuperset(map(type, counts)) or min(counts) < 0 or max(counts) > MAX_COUNT:
            for name, value in zip(_INT_FIELDS, counts, strict=True):
                object.__setattr__(self, name, _count(name, value))
        for name in _DECIMAL_FIELDS:
            value = getattr(self, name)
            if (
                type(value) is not Decimal
                or value.is_signed()
                or not value.is_finite()
                or value > MAX_DECIMAL
            ):
                object.__setattr__(self, name, _quantity(name, value))
        if self.image_size is not None or self.image_quality is not None:
            for name in ("image_size", "image_quality"):
                value = getattr(self, name)
                if value is not None and not isinstance(value, str):
                    raise InvalidInput(
                        f"usage.{name} must be a string such as '1024x1024' or 'hd', got {value!r}"
                    )
        if self.mode is not None and self.mode not in MODES:
            raise InvalidInput(f"usage.mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if any(map(gt, _get_parts(self), _get_wholes(self))) or (
            self.cache_read_tokens + self.cache_write_tokens + self.cache_write_1h_tokens > self.input_tokens
        ):
            self._check_parts()

    def _check_parts(self) -> None:
        """Each specific count is part of a broader one; a part larger than its whole is a bug upstream."""
        for part, whole in _PARTS:
            if getattr(self, part) > getattr(self, whole):
                raise InvalidInput(
                    f"usage.{part} ({getattr(self, part)}) cannot exceed usage.{whole} ({getattr(self, whole)}): "
                    f"{whole} counts all of them"
                )
        cached = self.cache_read_tokens + self.cache_write_tokens + self.cache_write_1h_tokens
        if cached > self.input_tokens:
            raise InvalidInput(
                f"cache_read_tokens + cache_write_tokens + cache_write_1h_tokens ({cached}) cannot exceed "
                f"input_tokens ({self.input_tokens}): input_tokens must include cached tokens"
            )

    def __add__(self, other: Usage) -> Usage:
        """Sum two usages (e.g. the chunks of a stream, or a day of requests)."""
        if not isinstance(other, Usage):
            return NotImplemented
        if (self.images and other.images) and (
            self.image_size != other.image_size or self.image_quality != other.image_quality
        ):
            raise InvalidInput(
                "cannot add usages with images of different sizes or qualities; price them apart"
            )
        values: dict[str, Any] = {}
        for name in _INT_FIELDS:
            values[name] = getattr(self, name) + getattr(other, name)
        for name in _DECIMAL_FIELDS:
            values[name] = getattr(self, name) + getattr(other, name)
        if self.mode != other.mode and self.mode is not None and other.mode is not None:
            raise InvalidInput(
                f"cannot add usages served in {self.mode} and {other.mode} modes; price them apart"
            )
        values["mode"] = self.mode or other.mode
        values["image_size"] = self.image_size or other.image_size
        values["image_quality"] = self.image_quality or other.image_quality
        return Usage(**values)

    @property
    def is_empty(self) -> bool:
        """True when nothing billable was consumed (requests aside)."""
        return not any(getattr(self, name) for name in _INT_FIELDS if name != "requests") and not any(
            getattr(self, name) for name in _DECIMAL_FIELDS
        )


_INT_FIELDS: Final = tuple(f.name for f in fields(Usage) if f.type == "int")
_DECIMAL_FIELDS: Final = tuple(f.name for f in fields(Usage) if f.type == "Decimal")
_INT_ONLY: Final = {int}
_get_counts: Final = attrgetter(*_INT_FIELDS)
_PARTS: Final = (
    ("input_audio_tokens", "input_tokens"),
    ("input_image_tokens", "input_tokens"),
    ("input_video_tokens", "input_tokens"),
    ("cache_audio_read_tokens", "cache_read_tokens"),
    ("cache_audio_read_tokens", "input_audio_tokens"),
    ("cache_image_read_tokens", "cache_read_tokens"),
    ("cache_image_read_tokens", "input_image_tokens"),
    ("output_audio_tokens", "output_tokens"),
    ("output_image_tokens", "output_tokens"),
    ("output_video_tokens", "output_tokens"),
    ("output_reasoning_tokens", "output_tokens"),
)


_get_parts: Final = attrgetter(*(part for part, _ in _PARTS))
_get_wholes: Final = attrgetter(*(whole for _, whole in _PARTS))


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not _is_integral(value):
        raise InvalidInput(f"usage.{name} must be a whole number, got {value!r}")
    result = int(value)  # type: ignore[call-overload]
    if result < 0:
        raise InvalidInput(f"usage.{name} must not be negative, got {result}")
    if result > MAX_COUNT:
        raise InvalidInput(f"usage.{name} = {result} is beyond any real request (limit {MAX_COUNT:,})")
    return result


def _is_integral(value: object) -> bool:
    if isinstance(value, Decimal):
        return value.is_finite() and value == value.to_integral_value()
    return hasattr(value, "__index__")


def _quantity(name: str, value: object) -> Decimal:
    """A non-negative exact quantity. Floats (as JSON durations arrive) are read by their
    shortest repr, which is the number the sender wrote."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool) or value is None:
        raise InvalidInput(f"usage.{name} must be a number, got {value!r}")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"usage.{name} must be finite, got {value!r}")
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidInput(f"usage.{name} is not a number: {value!r}") from None
    else:
        raise InvalidInput(f"usage.{name} must be a number, got {type(value).__name__}")
    if not result.is_finite():
        raise InvalidInput(f"usage.{name} must be finite, got {value!r}")
    if result < 0:
        raise InvalidInput(f"usage.{name} must not be negative, got {value!r}")
    if result > MAX_DECIMAL:
        raise InvalidInput(f"usage.{name} = {value} is beyond any real request (limit {MAX_DECIMAL:,})")
    return result

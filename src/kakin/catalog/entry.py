"""A resolved model: who serves it, what it is, and its price schedules per mode."""

from __future__ import annotations

import time as _time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from kakin.catalog.genai_source import MODES
from kakin.catalog.prices import Component, PricePeriod, Schedule, timestamp
from kakin.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One model as served by one provider (``azure`` / ``gpt-4o`` differs from ``openai`` /
    ``gpt-4o``: Azure bills OpenAI's standard rates, without OpenAI's service tiers)."""

    provider: str
    """The provider the request went to: openai, anthropic, google, azure, or a custom one."""
    model: str
    """Canonical model id (genai-prices' id, or the id declared in the overrides)."""
    name: str
    context_window: int | None
    kinds: tuple[str, ...]
    """What the model does: chat, embedding, image, audio."""
    price_provider: str
    """Whose price list is used (``openai`` for most Azure models)."""
    source: str
    """Where the prices come from: genai-prices, kakin data file, or the override file."""
    deprecated: bool = False
    schedules: Mapping[str, Schedule] = field(default_factory=dict, repr=False, compare=False)

    def period(self, at: datetime | None = None, mode: str = "standard") -> PricePeriod:
        """The prices in force at ``at`` (default: now) for ``mode``."""
        return self.period_at(_time.time() if at is None else timestamp(at), mode)

    def period_at(self, when: float, mode: str) -> PricePeriod:
        """``period`` for a POSIX timestamp (the hot path of pricing)."""
        schedule = self.schedules.get(mode)
        if schedule is None:
            raise InvalidInput(f"unknown pricing mode {mode!r}; use one of {', '.join(MODES)}")
        found = schedule.at(when)
        if found is None:
            start = schedule.first_priced()
            since = f" before {start.isoformat()}" if start is not None else ""
            raise InvalidInput(
                f"{self.provider}/{self.model} has no price{since}; its first price list starts later"
            )
        return found

    def rates_per_million(self, at: datetime | None = None, mode: str = "standard") -> dict[str, Decimal]:
        """Base-tier token prices per 1M tokens (input, output, cache_read…) for listings."""
        return self.period(at, mode).rates_per_million()

    def components(self, at: datetime | None = None, mode: str = "standard") -> tuple[Component, ...]:
        return self.period(at, mode).components

    def history(self, mode: str = "standard") -> list[PricePeriod]:
        """Every price period of the model in ``mode``, oldest first."""
        return self.schedules[mode].periods()

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True, slots=True)
class BoundRates:
    """The most a request can cost per unit, for reserving budget before forwarding it.

    ``input`` and ``output`` are USD per token: the highest rate of any input (resp.
    output) token component, at the tier the request's input reaches (or the highest tier
    when its size is unknown). A request's cost is at most
    ``input_tokens × input + max_output_tokens × output + per_request`` (+ ``per_image`` ×
    images for image models)."""

    input: Decimal
    output: Decimal
    per_request: Decimal
    per_image: Decimal | None
    tier: str | None
    effective_from: datetime | None

    def bound(self, input_tokens: int, max_output_tokens: int, images: int = 0) -> Decimal:
        amount = self.input * input_tokens + self.output * max_output_tokens + self.per_request
        if images and self.per_image is not None:
            amount += self.per_image * images
        return amount


def bound_rates(period: PricePeriod, input_tokens: int | None = None) -> BoundRates:
    """Upper per-unit rates of a period (see ``BoundRates``)."""
    input_rate = output_rate = per_request = Decimal(0)
    tier_label = None
    for component in period.components:
        unit = component.unit
        if unit.usage_key == "requests":
            per_request += component.unit_price(input_tokens)
            continue
        if unit.unit != "token":
            continue
        rate = component.unit_price(input_tokens)
        if input_tokens is not None and component.tiers:
            tier_label = component.select(input_tokens)[2]
        elif component.tiers:
            tier_label = "highest tier"
        if unit.direction == "input":
            input_rate = max(input_rate, rate)
        elif unit.direction == "output":
            output_rate = max(output_rate, rate)
    per_image = period.images.max_price() if period.images is not None else None
    return BoundRates(input_rate, output_rate, per_request, per_image, tier_label, period.effective_from)

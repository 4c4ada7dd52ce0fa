"""The typical request an estimate is built on, and its price.

Scenarios, break-evens and request estimates all reduce to "what does one request of this
shape cost on this model", multiplied by how many there are. Pricing one request (rather
than a month's tokens in one lump) matters: context tiers are chosen per request by its
input size, so a month of 1,500-token prompts must never be priced at the >200k-token rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from kakin.catalog import Catalog, ModelEntry
from kakin.errors import InvalidInput
from kakin.estimate.inputs import SHARE, TOKENS_PER_REQUEST, number, round_tokens, whole
from kakin.pricing import Cost, Usage, price


@dataclass(frozen=True, slots=True)
class RequestShape:
    """One typical request: input tokens (cached ones included), of which cached, and output."""

    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0

    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cached_tokens,
        )

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def request_shape(input_tokens: object, output_tokens: object, cached_share: object = 0) -> RequestShape:
    """A validated shape; the cached share of input is rounded to whole tokens (half up)."""
    inputs = whole(input_tokens, "average input tokens per request", TOKENS_PER_REQUEST)
    outputs = whole(output_tokens, "average output tokens per request", TOKENS_PER_REQUEST)
    share = number(cached_share, "cached share of input", SHARE)
    if inputs == 0 and outputs == 0:
        raise InvalidInput("a request needs input or output tokens; both averages are 0")
    return RequestShape(inputs, outputs, round_tokens(inputs * share))


def resolve_model(model: str | ModelEntry, provider: str | None, catalog: Catalog | None) -> ModelEntry:
    """The catalog entry (``UnknownModel`` with the closest names when there is none)."""
    if isinstance(model, ModelEntry):
        return model
    return (catalog or Catalog.default()).resolve(model, provider)


def price_shape(
    shape: RequestShape,
    model: str | ModelEntry,
    *,
    provider: str | None = None,
    at: datetime | None = None,
    mode: str = "standard",
    catalog: Catalog | None = None,
) -> Cost:
    """The itemised cost of one request of ``shape``; cached input at the cache-read rate."""
    entry = resolve_model(model, provider, catalog)
    return price(shape.usage(), entry, at=at, mode=mode)


def is_free(cost: Cost) -> bool:
    return cost.total == Decimal(0)

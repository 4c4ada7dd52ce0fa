"""Price a usage: find the model, the prices in force when the request ran, and multiply.

The arithmetic follows genai-prices exactly, so that kakin's figures equal
``genai_prices.calc_price`` to the last digit:

1. Split the inclusive usage counts into parts: each priced unit bills its count minus
   the counts of the more specific priced units it contains (input tokens minus cached,
   cache-written, audio and image input tokens, when those have prices of their own).
2. A context tier is chosen by the request's *total* input tokens; above the threshold the
   whole request pays the tier's rates.
3. Each part costs quantity × price-per-unit (exact; for units whose price does not divide
   exactly, ``price × quantity / per`` as genai-prices computes it).

kakin then adds what genai-prices does not price: per-image charges, context-cache
storage per token-hour, per-minute audio where only token prices exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from kakin.catalog import Catalog, ModelEntry, PricePeriod
from kakin.catalog.prices import Component, ImagePrice, per_unit
from kakin.errors import InvalidInput
from kakin.pricing.cost import Cost, CostItem, CostItems
from kakin.pricing.usage import Usage

_ZERO: Final = Decimal(0)
_utc: Final = UTC
_now: Final = datetime.now


def price(
    usage: Usage,
    model: str | ModelEntry,
    *,
    provider: str | None = None,
    at: datetime | None = None,
    mode: str = "standard",
    catalog: Catalog | None = None,
) -> Cost:
    """The itemised cost of ``usage`` on ``model`` at the rates in force at ``at`` (default
    now; naive datetimes are UTC). ``mode`` is standard, batch, flex, priority or fast.

    Raises ``UnknownModel`` for a model the catalog does not have and ``InvalidInput`` for
    usage the model cannot bill (e.g. images of a size it has no price for)."""
    if type(model) is ModelEntry:
        entry = model
    else:
        entry = (catalog or Catalog._default or Catalog.default()).resolve(model, provider)  # type: ignore[arg-type]
    if at is None:
        priced_at = _now(_utc)
    elif at.tzinfo is None:
        priced_at = at.replace(tzinfo=_utc)
    else:
        priced_at = at
    period = entry.period_at(priced_at.timestamp(), mode)
    return cost_of(usage, entry, period, priced_at)


def cost_of(usage: Usage, entry: ModelEntry, period: PricePeriod, priced_at: datetime) -> Cost:
    """Price ``usage`` with an already selected period (the catalog lookup skipped)."""
    parts: dict[str, Any] = {}
    for key, read, contained in period.leaves:
        value = read(usage)
        if contained:
            for inner in contained:
                value -= parts[inner]
            if value < 0:
                raise _overlap(usage, key, contained, entry)
        parts[key] = value
    input_tokens = usage.input_tokens
    total = input_sum = output_sum = _ZERO
    lines: list[tuple[Any, ...]] = []
    for component in period.components:
        unit = component.unit
        count = parts[unit.usage_key]
        if not count:
            continue
        if component.tiers:
            unit_price, rate, tier = component.select(input_tokens)
        else:
            unit_price, rate, tier = component.price, component.rate, None
        amount = rate * count if rate is not None else unit_price * count / unit.per
        total += amount
        direction = unit.direction
        if direction == "input":
            input_sum += amount
        elif direction == "output":
            output_sum += amount
        lines.append((component, count, unit_price, rate, amount, tier))
    if usage.images:
        image = _image_price(usage, entry, period)
        amount = image.price * usage.images
        total += amount
        output_sum += amount
        lines.append((image, usage.images, image.price, image.price, amount, None))
    return Cost(
        entry.model,
        entry.provider,
        total,
        input_sum,
        output_sum,
        CostItems(lambda: _items(lines, period)),
        priced_at,
        period.mode,
    )


def _items(lines: list[tuple[Any, ...]], period: PricePeriod) -> Iterator[CostItem]:
    effective = period.effective_from.date() if period.effective_from is not None else None
    for priced, count, unit_price, rate, amount, tier in lines:
        if isinstance(priced, Component):
            unit = priced.unit
            yield CostItem(
                component=priced.name,
                quantity=Decimal(count),
                unit=unit.unit,
                unit_price=rate if rate is not None else per_unit(unit_price, unit.per),
                amount=amount,
                tier=tier,
                effective_from=effective,
                source=priced.source,
                direction=unit.direction,
            )
        else:
            table = period.images
            yield CostItem(
                component=f"image {priced.size} {priced.quality}",
                quantity=Decimal(count),
                unit="image",
                unit_price=unit_price,
                amount=amount,
                tier=None,
                effective_from=effective,
                source=_image_source(priced, table.source if table else period.source),
                direction="output",
            )


def _image_source(image: ImagePrice, source: str) -> str:
    if image.tokens is None:
        return source
    return f"{source}; {image.tokens:,} output tokens × output rate"


def _image_price(usage: Usage, entry: ModelEntry, period: PricePeriod) -> ImagePrice:
    table = period.images
    if table is None:
        raise InvalidInput(
            f"{entry.key} has no per-image price; report its image output tokens (output_image_tokens) "
            "instead of usage.images, or add image prices in kakin.toml"
        )
    image = table.lookup(entry.model, usage.image_size, usage.image_quality)
    if image.tokens is not None and usage.output_tokens:
        raise InvalidInput(
            f"{entry.model} per-image prices are derived from its output tokens; give either images "
            f"({usage.images}) or output_tokens ({usage.output_tokens}), not both, or the image is billed twice"
        )
    return image


def _overlap(usage: Usage, key: str, contained: tuple[str, ...], entry: ModelEntry) -> InvalidInput:
    from kakin.catalog.units import READERS

    whole = READERS[key](usage)
    parts = ", ".join(f"{name} ({READERS[name](usage)})" for name in contained if READERS[name](usage))
    return InvalidInput(
        f"usage for {entry.key} is inconsistent: {parts} together exceed {key} ({whole}); "
        f"{key} must count all of them"
    )

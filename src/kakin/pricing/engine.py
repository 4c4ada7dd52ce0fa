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

from bisect import bisect_right as _bisect
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from kakin.catalog import Catalog, ModelEntry, PricePeriod
from kakin.catalog.prices import INPUT, OUTPUT, Component, ImagePrice, per_unit
from kakin.catalog.units import read_count
from kakin.errors import InvalidInput
from kakin.pricing.cost import Cost, CostItems, line_position
from kakin.pricing.slots import slot_builder
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
    now; naive datetimes are UTC). ``mode`` is standard, batch, flex, priority or fast: the
    mode asked for. A usage that says which mode the provider served (``usage.mode``) is
    billed in that one: a request is billed at the tier it was served, else the one asked.
    Where the model has no rate for the mode on that date, the standard rates apply and
    ``Cost.billed_mode`` (and each line's ``mode`` and ``note``) says so.

    Raises ``UnknownModel`` for a model the catalog does not have and ``InvalidInput`` for
    usage the model cannot bill (e.g. images of a size it has no price for)."""
    if not isinstance(usage, Usage):
        raise InvalidInput(f"usage must be a kakin.pricing.Usage, got {type(usage).__name__}")
    if type(model) is not ModelEntry:
        model = (catalog or Catalog.loaded or Catalog.default()).resolve(model, provider)  # type: ignore[arg-type]
    entry: ModelEntry = model  # type: ignore[assignment]
    if at is None:
        priced_at = _now(_utc)
    elif at.tzinfo is None:
        priced_at = at.replace(tzinfo=_utc)
    else:
        priced_at = at
    when = priced_at.timestamp()
    if usage.mode is not None:
        mode = usage.mode
    # Inline of entry.period_at() for the common case (one period per date segment).
    schedule = entry.schedules.get(mode)
    period = schedule.segments[_bisect(schedule.bounds, when)] if schedule is not None else None
    if type(period) is not PricePeriod:
        period = entry.period_at(when, mode)  # time-of-day prices, no price, or an unknown mode
    return cost_of(usage, entry, period, priced_at)


def cost_of(usage: Usage, entry: ModelEntry, period: PricePeriod, priced_at: datetime) -> Cost:
    """Price ``usage`` with an already selected period (the catalog lookup skipped)."""
    parts: dict[str, Any] = {}
    input_tokens = usage.input_tokens
    input_sum = output_sum = other = _ZERO
    lines: list[tuple[Any, ...]] = []
    # Steps run most specific unit first, so that each count can be reduced by its parts.
    for attribute, contained, keep, direction, rate, component, position, key in period.plan:
        value = getattr(usage, attribute, 0) if attribute is not None else read_count(usage, key)
        if contained:
            for inner in contained:
                value -= parts[inner]
            if value < 0:
                raise _overlap(usage, key, contained, entry)
        if keep:
            parts[key] = value
        if not value:
            continue
        if rate is not None:
            amount = rate * value
            lines.append((position, component, value, rate, amount, None))
        else:
            amount, line = _tiered(component, value, input_tokens, position)
            lines.append(line)
        if direction == INPUT:
            input_sum += amount
        elif direction == OUTPUT:
            output_sum += amount
        else:
            other += amount
    if lines and not period.exact:
        input_sum, output_sum, other = _in_summation_order(lines)
    if usage.images:
        image = _image_price(usage, entry, period)
        amount = image.price * usage.images
        output_sum += amount
        lines.append((len(period.components), image, usage.images, image.price, amount, None))
    total = other + input_sum + output_sum if other else input_sum + output_sum
    return _new_cost(
        entry.model,
        entry.provider,
        total,
        input_sum,
        output_sum,
        CostItems(lines, period),
        priced_at,
        period.mode,
        period.mode if period.variant else "standard",
    )


def _tiered(
    component: Component, value: Any, input_tokens: int, position: int
) -> tuple[Decimal, tuple[Any, ...]]:
    """Amount and line of a component whose price depends on the request's input size, or
    whose price does not divide exactly by its unit (then computed as genai-prices does)."""
    unit_price, rate, tier = component.select(input_tokens)
    if rate is not None:
        amount = rate * value
        return amount, (position, component, value, rate, amount, tier)
    amount = unit_price * value / component.unit.per
    return amount, (position, component, value, per_unit(unit_price, component.unit.per), amount, tier)


def _in_summation_order(lines: list[tuple[Any, ...]]) -> tuple[Decimal, Decimal, Decimal]:
    """Sums in genai-prices' order. Only needed when an amount is inexact (a price that does
    not divide by its unit, e.g. per hour): it rounds at the context precision, and adding in
    the same order reproduces genai-prices' rounding."""
    lines.sort(key=line_position)
    sums = {"input": _ZERO, "output": _ZERO, None: _ZERO}
    for line in lines:
        sums[line[1].unit.direction] += line[4]
    return sums["input"], sums["output"], sums[None]


_new_cost: Final = slot_builder(Cost)


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
    whole = read_count(usage, key)
    parts = ", ".join(f"{name} ({read_count(usage, name)})" for name in contained if read_count(usage, name))
    return InvalidInput(
        f"usage for {entry.key} is inconsistent: {parts} together exceed {key} ({whole}); "
        f"{key} must count all of them"
    )

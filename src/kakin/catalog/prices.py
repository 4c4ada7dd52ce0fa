"""Compiled price structures: what a model costs during one period, ready to multiply.

Price data arrives in several shapes (genai-prices' ``ModelPrice`` objects, kakin's TOML
files, user overrides). All of them are compiled once into the frozen structures below, so
pricing a request is a few dictionary reads and Decimal multiplications:

* a ``Component`` prices one unit (input tokens, cache reads, audio seconds…) with an exact
  per-unit rate and its context-length tiers;
* a ``PricePeriod`` is the full set of components (and per-image prices) in force for one
  model and mode between two instants, with the *pricing plan* that splits inclusive usage
  counts into the parts each component bills (genai-prices' decomposition);
* a ``Schedule`` finds the period in force at a timestamp by binary search.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, Inexact, localcontext
from typing import Final, NamedTuple

from kakin.catalog.units import SPECIAL_READERS, UnitInfo
from kakin.errors import InvalidInput
from kakin.money import EXACT

_ONE_MILLION: Final = 1_000_000


def exact_rate(price: Decimal, per: int) -> Decimal | None:
    """``price / per`` when the quotient is exact (always, for per = 10ⁿ), else None.

    With an exact per-unit rate an amount is one multiplication; otherwise amounts are
    computed as ``price × quantity / per`` like genai-prices does."""
    with localcontext(EXACT) as ctx:
        ctx.clear_flags()
        rate = price / per
        return None if ctx.flags[Inexact] else rate


def per_unit(price: Decimal, per: int) -> Decimal:
    """``price / per`` for display, exact when possible."""
    with localcontext(EXACT):
        return price / per


@dataclass(frozen=True, slots=True)
class Tier:
    """A context-length tier: when the request's total input tokens exceed ``above``, the
    whole request is billed at ``price`` (the cliff model every provider uses)."""

    above: int
    price: Decimal
    """USD per ``per`` units of the component."""
    rate: Decimal | None
    label: str


@dataclass(frozen=True, slots=True)
class Component:
    """One priced unit of a model during a period."""

    unit: UnitInfo
    price: Decimal
    """Base price in USD per ``unit.per`` units (per 1M tokens, per 3,600 s, per 1,000 requests)."""
    rate: Decimal | None
    """Base price per single unit when exact."""
    tiers: tuple[Tier, ...] = ()
    """Ascending by threshold."""
    base_label: str | None = None
    source: str = ""

    @property
    def name(self) -> str:
        return self.unit.component

    @property
    def direction(self) -> str | None:
        return self.unit.direction

    def select(self, input_tokens: int) -> tuple[Decimal, Decimal | None, str | None]:
        """(price per ``per``, exact rate or None, tier label) for a request of that many
        input tokens: the highest tier whose threshold the input exceeds."""
        for tier in reversed(self.tiers):
            if input_tokens > tier.above:
                return tier.price, tier.rate, tier.label
        return self.price, self.rate, self.base_label

    def max_price(self) -> Decimal:
        """The highest price of any tier (prices need not rise with the tier)."""
        return max([self.price, *(tier.price for tier in self.tiers)])

    def unit_price(self, input_tokens: int | None = None) -> Decimal:
        """USD per single unit at the given input size (or the highest tier when None)."""
        price = self.max_price() if input_tokens is None else self.select(input_tokens)[0]
        return per_unit(price, self.unit.per)


def make_component(
    unit: UnitInfo, price: Decimal, tiers: Iterable[tuple[int, Decimal]] = (), *, source: str
) -> Component:
    """Build a component, precomputing exact rates and human tier labels."""
    ordered = sorted(tiers)
    compiled = tuple(
        Tier(
            above=start,
            price=tier_price,
            rate=exact_rate(tier_price, unit.per),
            label=f"input > {start:,} tokens",
        )
        for start, tier_price in ordered
    )
    base_label = f"input ≤ {ordered[0][0]:,} tokens" if ordered else None
    return Component(
        unit=unit,
        price=price,
        rate=exact_rate(price, unit.per),
        tiers=compiled,
        base_label=base_label,
        source=source,
    )


@dataclass(frozen=True, slots=True)
class ImagePrice:
    """The price of one generated image of a size and quality."""

    size: str
    quality: str
    price: Decimal
    tokens: int | None = None
    """Output tokens the provider documents for this size × quality, when the price derives from them."""
    upper_bound: bool = False
    """True when ``tokens`` is kakin's bound (``PixelBound``), not a figure the provider publishes."""


_SIZE: Final = re.compile(r"([0-9]{1,6})x([0-9]{1,6})")


def image_dimensions(size: str) -> tuple[int, int]:
    """Width and height in pixels of a ``"WxH"`` image size."""
    match = _SIZE.fullmatch(size.lower())
    if match is None or not int(match[1]) or not int(match[2]):
        raise InvalidInput(f"size {size!r} is not WIDTHxHEIGHT in pixels, e.g. '1024x1024', or 'auto'")
    return int(match[1]), int(match[2])


@dataclass(frozen=True, slots=True)
class PixelBound:
    """An upper bound of the output tokens of one image, for a model whose provider bills
    output image tokens but publishes no tokens per size: ``tokens`` per ``per_size``'s
    pixels, scaled to the pixels asked for (rounded up), for any quality. Sizes larger than
    ``max_size`` (in either orientation) are refused."""

    tokens: int
    per_size: str
    max_size: str

    def tokens_for(self, model: str, size: str) -> int:
        width, height = image_dimensions(size)
        max_width, max_height = image_dimensions(self.max_size)
        if max(width, height) > max(max_width, max_height) or width * height > max_width * max_height:
            raise InvalidInput(
                f"size {size!r} is larger than {model} accepts: at most {self.max_size} "
                f"or {max_height}x{max_width} pixels"
            )
        per_width, per_height = image_dimensions(self.per_size)
        return -(-self.tokens * width * height // (per_width * per_height))


@dataclass(frozen=True, slots=True)
class ImageTable:
    """Per-image prices of one model, by size × quality; or, with a ``bound``, the most one
    image of any size up to the model's largest can cost (``bound`` × ``bound_rate``)."""

    prices: Mapping[tuple[str, str], ImagePrice]
    default_size: str
    default_quality: str
    source: str
    bound: PixelBound | None = None
    bound_rate: Decimal | None = None
    """USD per output image token, for ``bound``."""

    def lookup(self, model: str, size: str | None, quality: str | None) -> ImagePrice:
        """The price for a size and quality; unknown ones are refused with the valid choices."""
        chosen_size = (size or self.default_size).lower()
        if chosen_size == "auto":
            chosen_size = self.default_size
        chosen_quality = (quality or self.default_quality).lower()
        if chosen_quality == "auto":
            chosen_quality = self.default_quality
        found = self.prices.get((chosen_size, chosen_quality))
        if found is None and self.bound is not None and self.bound_rate is not None:
            tokens = self.bound.tokens_for(model, chosen_size)
            with localcontext(EXACT):
                return ImagePrice(
                    chosen_size, chosen_quality, self.bound_rate * tokens, tokens, upper_bound=True
                )
        if found is None:
            sizes = sorted({s for s, _ in self.prices})
            qualities = sorted({q for _, q in self.prices})
            raise InvalidInput(
                f"{model} has no per-image price for size {chosen_size!r} and quality {chosen_quality!r}; "
                f"sizes: {', '.join(sizes)}; qualities: {', '.join(qualities)}"
            )
        return found

    def max_price(self) -> Decimal:
        prices = [image.price for image in self.prices.values()]
        if self.bound is not None:
            prices.append(self.lookup("", self.bound.max_size, None).price)
        return max(prices)


# Direction codes on plan steps.
INPUT: Final = 1
OUTPUT: Final = 2
OTHER: Final = 0


class Step(NamedTuple):
    """One step of a period's pricing plan (see ``pricing_plan``)."""

    attribute: str | None
    """Usage attribute holding the count, or None when it needs a translation (cache writes)."""
    contained: tuple[str, ...]
    """Usage keys of the priced units that are parts of this one, taken out of its count."""
    keep: bool
    """Whether a later step subtracts this count (so it must be remembered)."""
    direction: int
    rate: Decimal | None
    """The exact per-unit rate when it does not depend on the request (no tiers)."""
    component: Component
    position: int
    """Index of the component in summation (and display) order."""
    usage_key: str


def pricing_plan(components: tuple[Component, ...]) -> tuple[Step, ...]:
    """genai-prices' decomposition, precomputed: most specific units first, each one's count
    minus the counts already assigned to the priced units it contains."""
    position = {component.unit.usage_key: index for index, component in enumerate(components)}
    by_key = {component.unit.usage_key: component for component in components}
    units = sorted((c.unit for c in components), key=lambda unit: (-len(unit.dimensions), unit.usage_key))
    contained = {
        unit.usage_key: tuple(
            other.usage_key for other in units if other is not unit and unit.contains(other)
        )
        for unit in units
    }
    needed = {key for keys in contained.values() for key in keys}
    direction = {"input": INPUT, "output": OUTPUT}
    return tuple(
        Step(
            attribute=None if unit.usage_key in SPECIAL_READERS else unit.usage_key,
            contained=contained[unit.usage_key],
            keep=unit.usage_key in needed,
            direction=direction.get(unit.direction or "", OTHER),
            rate=None if by_key[unit.usage_key].tiers else by_key[unit.usage_key].rate,
            component=by_key[unit.usage_key],
            position=position[unit.usage_key],
            usage_key=unit.usage_key,
        )
        for unit in units
    )


@dataclass(frozen=True, slots=True)
class PricePeriod:
    """Everything that prices one model in one mode from ``effective_from`` to ``effective_until``."""

    effective_from: datetime | None
    effective_until: datetime | None
    mode: str
    variant: bool
    """True when rates specific to ``mode`` apply; False when the standard rates are used
    (the catalog has no such rate for this model at this date)."""
    components: tuple[Component, ...]
    """In summation order (the order genai-prices adds them)."""
    images: ImageTable | None
    source: str
    plan: tuple[Step, ...] = field(default=(), repr=False, compare=False)
    exact: bool = field(default=True, repr=False, compare=False)
    """Every rate is exact, so amounts may be summed in any order (the fast path)."""

    def component(self, name: str) -> Component | None:
        """The component called ``name`` (input, output, cache_read…), if priced."""
        for component in self.components:
            if component.name == name:
                return component
        return None

    def rates_per_million(self) -> dict[str, Decimal]:
        """Token prices per 1M tokens (base tier) keyed by component, for listings."""
        return {c.name: c.price for c in self.components if c.unit.per == _ONE_MILLION}

    def with_span(self, start: datetime | None, end: datetime | None) -> PricePeriod:
        return PricePeriod(
            start,
            end,
            self.mode,
            self.variant,
            self.components,
            self.images,
            self.source,
            self.plan,
            self.exact,
        )


def build_period(
    components: Iterable[Component],
    *,
    mode: str,
    variant: bool,
    images: ImageTable | None,
    source: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> PricePeriod:
    ordered = tuple(components)
    return PricePeriod(
        effective_from=start,
        effective_until=end,
        mode=mode,
        variant=variant,
        components=ordered,
        images=images,
        source=source,
        plan=pricing_plan(ordered),
        exact=all(c.rate is not None and all(t.rate is not None for t in c.tiers) for c in ordered),
    )


def same_prices(a: PricePeriod, b: PricePeriod) -> bool:
    return a.components == b.components and a.images == b.images and a.variant == b.variant


@dataclass(frozen=True, slots=True)
class Daily:
    """Prices that change with the UTC time of day (off-peak discounts)."""

    bounds: tuple[float, ...]
    """Seconds after UTC midnight where a new period starts (ascending)."""
    periods: tuple[PricePeriod, ...]
    """``len(bounds) + 1`` periods; the first applies before ``bounds[0]``."""

    def at(self, timestamp: float) -> PricePeriod:
        return self.periods[bisect_right(self.bounds, timestamp % 86_400)]


@dataclass(frozen=True, slots=True)
class Schedule:
    """Periods of one model and mode over time, found by binary search on a timestamp."""

    bounds: tuple[float, ...]
    """POSIX timestamps where a new segment starts (ascending)."""
    segments: tuple[PricePeriod | Daily | None, ...]
    """``len(bounds) + 1`` segments; the first applies before ``bounds[0]``; None where the
    model has no price (a user-added model before its first ``effective_from``)."""

    def at(self, timestamp: float) -> PricePeriod | None:
        segment = self.segments[bisect_right(self.bounds, timestamp)]
        return segment.at(timestamp) if type(segment) is Daily else segment  # type: ignore[union-attr,return-value]

    def periods(self) -> list[PricePeriod]:
        """Every priced period, oldest first (time-of-day periods listed in daily order)."""
        result: list[PricePeriod] = []
        for segment in self.segments:
            if isinstance(segment, Daily):
                result.extend(segment.periods)
            elif segment is not None:
                result.append(segment)
        return result

    def first_priced(self) -> datetime | None:
        """When the first priced period starts (None: from the beginning)."""
        for index, segment in enumerate(self.segments):
            if segment is not None:
                return None if index == 0 else datetime.fromtimestamp(self.bounds[index - 1], UTC)
        return None


def timestamp(at: datetime) -> float:
    """POSIX timestamp; naive datetimes are UTC (as genai-prices treats them)."""
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


def merge_schedule(starts: list[datetime | None], segments: list[PricePeriod | Daily | None]) -> Schedule:
    """A schedule from segments starting at ``starts`` (the first start is None), merging
    neighbours with identical prices and stamping each period with its span."""
    merged_starts: list[datetime | None] = []
    merged: list[PricePeriod | Daily | None] = []
    for start, segment in zip(starts, segments, strict=True):
        if merged and _same_segment(merged[-1], segment):
            continue
        merged_starts.append(start)
        merged.append(segment)
    stamped: list[PricePeriod | Daily | None] = []
    for index, segment in enumerate(merged):
        start = merged_starts[index]
        end = merged_starts[index + 1] if index + 1 < len(merged) else None
        if segment is None:
            stamped.append(None)
        elif isinstance(segment, Daily):
            stamped.append(Daily(segment.bounds, tuple(p.with_span(start, end) for p in segment.periods)))
        else:
            stamped.append(segment.with_span(start, end))
    bounds = tuple(timestamp(start) for start in merged_starts[1:] if start is not None)
    return Schedule(bounds=bounds, segments=tuple(stamped))


def _same_segment(a: PricePeriod | Daily | None, b: PricePeriod | Daily | None) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, Daily) or isinstance(b, Daily):
        return (
            isinstance(a, Daily)
            and isinstance(b, Daily)
            and a.bounds == b.bounds
            and all(same_prices(x, y) for x, y in zip(a.periods, b.periods, strict=True))
        )
    return same_prices(a, b)

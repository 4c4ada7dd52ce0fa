"""Assemble one model's price schedules from every layer of price data.

Layers: genai-prices (dated conditional prices, mode variants) or, from its
``effective_from``, a user price list that replaces it whole; kakin's own data files add
what the active list lacks (per-image prices, cache storage, per-minute audio); user
discounts take a percentage off whatever is in force between two dates.

The instants where anything can change split time into segments; in each segment every
layer is constant, so the prices are resolved once at a representative instant and
compiled. Neighbouring segments with identical prices merge, so each resulting period
starts at a real price change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Final

from kakin.catalog import genai_source
from kakin.catalog.extras import MINUTE_OF_AUDIO, ImageSpec, RateSpec
from kakin.catalog.overrides import Discount, PriceSet
from kakin.catalog.prices import (
    Component,
    Daily,
    ImageTable,
    PricePeriod,
    Schedule,
    build_period,
    make_component,
    merge_schedule,
)
from kakin.catalog.units import CACHE_STORAGE_KEY, UNITS
from kakin.errors import InvalidInput
from kakin.money import EXACT

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, ModelPrice


@dataclass(frozen=True, slots=True)
class Layers:
    """All price data that applies to one model under one provider."""

    model: str
    genai_model: ModelInfo | None = None
    with_variants: bool = False
    price_sets: Sequence[PriceSet] = ()
    discounts: Sequence[Discount] = ()
    images: ImageSpec | None = None
    cache_storage: RateSpec | None = None
    audio: RateSpec | None = None


def build_schedules(layers: Layers) -> dict[str, Schedule]:
    """One schedule per mode (standard, batch, flex, priority, fast)."""
    return {mode: _schedule(layers, mode) for mode in genai_source.MODES}


def _schedule(layers: Layers, mode: str) -> Schedule:
    breaks: set[datetime] = set()
    seconds: list[int] = []
    if layers.genai_model is not None:
        with_variants = layers.with_variants and mode != "standard"
        breaks |= {
            datetime.combine(day, time(), UTC)
            for day in genai_source.date_breaks(layers.genai_model, with_variants)
        }
        seconds = sorted(genai_source.time_breaks(layers.genai_model, with_variants))
    breaks |= {p.effective_from for p in layers.price_sets if p.effective_from is not None}
    for discount in layers.discounts:
        breaks |= {
            moment for moment in (discount.effective_from, discount.effective_until) if moment is not None
        }
    ordered = sorted(breaks)
    starts: list[datetime | None] = [None, *ordered]
    segments: list[PricePeriod | Daily | None] = []
    for start in starts:
        at = start if start is not None else _before(ordered[0] if ordered else None)
        if seconds:
            periods = [_period(layers, mode, _time_in(at, 0))] + [
                _period(layers, mode, _time_in(at, second)) for second in seconds
            ]
            priced = all(period is not None for period in periods)
            segments.append(Daily(tuple(map(float, seconds)), tuple(periods)) if priced else None)  # type: ignore[arg-type]
        else:
            segments.append(_period(layers, mode, at))
    return merge_schedule(starts, segments)


def _before(first: datetime | None) -> datetime:
    return first - timedelta(days=1) if first is not None else genai_source.first_instant_before(None)


def _time_in(segment_start: datetime, second: int) -> datetime:
    """An instant at ``second`` after UTC midnight, on or after the segment's start."""
    midnight = datetime.combine(segment_start.astimezone(UTC).date(), time(), UTC)
    at = midnight + timedelta(seconds=second)
    return at if at >= segment_start else at + timedelta(days=1)


def _period(layers: Layers, mode: str, at: datetime) -> PricePeriod | None:
    price_set = _active_price_set(layers.price_sets, at)
    discounts = [d for d in layers.discounts if d.active(at)]
    factor = _factor(discounts)
    note = "".join(f"; {d.percent.normalize():f}% discount ({d.source})" for d in discounts)
    if price_set is not None:
        model_price, variant = price_set.resolve(mode)
        source = price_set.source
    elif layers.genai_model is not None:
        model_price, variant = genai_source.resolve(layers.genai_model, at, mode, layers.with_variants)
        source = genai_source.GENAI_SOURCE
    elif layers.images is not None:
        model_price, variant, source = None, False, layers.images.source
    else:
        return None
    components: list[Component] = []
    if model_price is not None:
        components = _components(model_price, source + note, factor, price_set)
    components.extend(_extra_components(layers, price_set, components, factor, note))
    images = _images(layers, price_set, components, factor)
    return build_period(components, mode=mode, variant=variant, images=images, source=source + note)


def _components(
    model_price: ModelPrice, source: str, factor: Decimal | None, price_set: PriceSet | None
) -> list[Component]:
    try:
        return genai_source.components_of(model_price, source=source, factor=factor)
    except ValueError as error:
        where = price_set.where if price_set is not None else "catalog"
        raise InvalidInput(f"{where}: {error}") from None


def _extra_components(
    layers: Layers,
    price_set: PriceSet | None,
    components: list[Component],
    factor: Decimal | None,
    note: str,
) -> list[Component]:
    extra: list[Component] = []
    has_duration = any(c.unit.dimensions.get("family") == "durations" for c in components)
    if layers.audio is not None and not has_duration:
        extra.append(
            make_component(
                MINUTE_OF_AUDIO, _scaled(layers.audio.price, factor), source=layers.audio.source + note
            )
        )
    if price_set is not None and price_set.cache_storage is not None:
        extra.append(
            make_component(
                UNITS[CACHE_STORAGE_KEY],
                _scaled(price_set.cache_storage, factor),
                source=price_set.source + note,
            )
        )
    elif layers.cache_storage is not None:
        storage = layers.cache_storage
        extra.append(
            make_component(storage.unit, _scaled(storage.price, factor), source=storage.source + note)
        )
    return extra


def _images(
    layers: Layers, price_set: PriceSet | None, components: list[Component], factor: Decimal | None
) -> ImageTable | None:
    """Per-image prices: the price list's own, else kakin's data. Token-derived prices use
    the period's output image rate (already discounted), fixed ones take the discount here."""
    spec = price_set.images if price_set is not None and price_set.images is not None else layers.images
    if spec is None:
        return None
    by_name: Mapping[str, Component] = {c.name: c for c in components}
    output = by_name.get("output_image") or by_name.get("output")
    rate = None
    if output is not None:
        with localcontext(EXACT):
            rate = output.price / output.unit.per
    return spec.table(rate, factor)


def _active_price_set(price_sets: Sequence[PriceSet], at: datetime) -> PriceSet | None:
    """The price list with the latest ``effective_from`` not after ``at``."""
    started = [p for p in price_sets if p.effective_from is None or p.effective_from <= at]
    if not started:
        return None
    return max(started, key=lambda p: p.effective_from or _EARLIEST)


_EARLIEST: Final = datetime.min.replace(tzinfo=UTC)


def _factor(discounts: Sequence[Discount]) -> Decimal | None:
    if not discounts:
        return None
    factor = Decimal(1)
    with localcontext(EXACT):
        for discount in discounts:
            factor *= discount.factor
    return factor


def _scaled(price: Decimal, factor: Decimal | None) -> Decimal:
    if factor is None:
        return price
    with localcontext(EXACT):
        return price * factor

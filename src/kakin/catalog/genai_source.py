"""genai-prices as a price source: provider and model lookup, and price resolution by date.

Only the data bundled with the installed package is read (``genai_prices.data``); its
network updater is never started, so prices change only when the dependency is upgraded.

genai-prices resolves prices per call: match the model name against each model's match
logic, pick the last conditional price whose constraint holds, overlay request-context
variants (batch, flex, priority). kakin calls the same resolution once per price period at
load time and compiles the result (``kakin.catalog.prices``); the lookup and arithmetic at
request time are kakin's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, localcontext
from functools import cache
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, Final

from genai_prices import types as genai_types
from genai_prices.data_units import unit_data
from genai_prices.units import UnitRegistry
from genai_prices.validation import validate_priced_units

from kakin.catalog.prices import Component, make_component
from kakin.catalog.units import UNITS_BY_PRICE_KEY
from kakin.money import EXACT

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, ModelPrice, Provider

GENAI_VERSION: Final = version("genai-prices")
GENAI_SOURCE: Final = f"genai-prices {GENAI_VERSION}"

# kakin's request modes and the genai-prices price context each one selects.
MODE_CONTEXTS: Final[Mapping[str, Mapping[str, str] | None]] = {
    "standard": None,
    "batch": {"processing": "batch"},
    "flex": {"service_tier": "flex"},
    "priority": {"service_tier": "priority"},
    "fast": {"service_tier": "fast", "speed": "fast"},
}
MODES: Final = tuple(MODE_CONTEXTS)

_REGISTRY: Final = UnitRegistry(unit_data)
_FAR_PAST: Final = date(2000, 1, 1)


@cache
def genai_providers() -> list[Provider]:
    """The providers bundled with genai-prices (imported on first use: ~0.25 s)."""
    from genai_prices.data import providers

    return providers


def provider_by_id(provider_id: str) -> Provider | None:
    from genai_prices.data_snapshot import find_provider_by_id

    return find_provider_by_id(genai_providers(), provider_id)


def provider_for_model(model_ref: str) -> Provider | None:
    """The provider whose model-name pattern matches (``claude`` → anthropic…), as genai-prices guesses."""
    for provider in genai_providers():
        if provider.model_match is not None and provider.model_match.is_match(model_ref):
            return provider
    return None


def find_model(provider: Provider, model_ref: str) -> ModelInfo | None:
    """genai-prices' own match logic, including its one step of provider fallback
    (Azure → OpenAI, Google → Anthropic…) and compact-date normalisation."""
    return provider.find_model(model_ref, all_providers=genai_providers())


def owns(provider: Provider, model: ModelInfo) -> bool:
    return any(candidate is model for candidate in provider.models)


def owner_of(provider: Provider, model: ModelInfo) -> Provider:
    """The provider whose list holds ``model`` (itself, or the fallback it came from)."""
    if owns(provider, model):
        return provider
    for candidate in genai_providers():
        if owns(candidate, model):
            return candidate
    return provider


def exact_names(model: ModelInfo) -> list[str]:
    """Names the model answers to exactly (its id and ``equals`` clauses), for suggestions."""
    names = [model.id]

    def walk(clause: Any) -> None:
        if isinstance(clause, genai_types.ClauseEquals):
            names.append(clause.equals)
        for child in getattr(clause, "or_", []) + getattr(clause, "and_", []):
            walk(child)

    walk(model.match)
    return list(dict.fromkeys(names))


def _constraints(model: ModelInfo, with_variants: bool) -> Iterable[object]:
    if isinstance(model.prices, list):
        yield from (conditional.constraint for conditional in model.prices)
    if with_variants:
        yield from (variant.constraint for variant in model.price_variants or ())


def date_breaks(model: ModelInfo, with_variants: bool) -> set[date]:
    """Dates (UTC) on which the model's prices may change."""
    return {
        c.start_date
        for c in _constraints(model, with_variants)
        if isinstance(c, genai_types.StartDateConstraint)
    }


def time_breaks(model: ModelInfo, with_variants: bool) -> set[int]:
    """Seconds after UTC midnight at which time-of-day prices start or end."""
    seconds: set[int] = set()
    for constraint in _constraints(model, with_variants):
        if isinstance(constraint, genai_types.TimeOfDateConstraint):
            for moment in (constraint.start_time, constraint.end_time):
                utc = _utc_time(moment)
                seconds.add(utc.hour * 3600 + utc.minute * 60 + utc.second)
    seconds.discard(0)
    return seconds


def _utc_time(moment: time) -> time:
    if moment.tzinfo is None:
        return moment
    return datetime.combine(_FAR_PAST, moment).astimezone(UTC).time()


def first_instant_before(break_date: date | None) -> datetime:
    """A representative instant before the first price change (or any instant if none)."""
    day = break_date - timedelta(days=1) if break_date is not None else _FAR_PAST
    return datetime.combine(day, time(), UTC)


def resolve(model: ModelInfo, at: datetime, mode: str, with_variants: bool) -> tuple[ModelPrice, bool]:
    """genai-prices' prices for ``model`` at ``at`` in ``mode`` and whether a mode-specific
    variant changed them. Variants are only consulted for a provider's own models, as
    genai-prices does (a model reached through a fallback is priced at its standard rates)."""
    standard = model.get_prices(at)
    context = MODE_CONTEXTS[mode]
    if not context or not with_variants:
        return standard, False
    resolved = model.get_prices(at, context)
    return resolved, resolved != standard


def components_of(model_price: ModelPrice, *, source: str, factor: Decimal | None = None) -> list[Component]:
    """Compile a genai-prices ``ModelPrice`` (possibly scaled by a discount ``factor``) in
    genai-prices' summation order. Keys genai-prices does not price are skipped as it does.
    Raises ValueError when the set is incoherent (e.g. a cache price without an input price)."""
    components: list[Component] = []
    for price_key, value in model_price.__dict__.items():
        if price_key.startswith("_") or value is None:
            continue
        unit = UNITS_BY_PRICE_KEY.get(price_key)
        if unit is None or price_key not in _REGISTRY._all_price_keys:
            continue
        if isinstance(value, genai_types.TieredPrices):
            base = _scaled(value.base, factor)
            tiers = [(tier.start, _scaled(tier.price, factor)) for tier in value.tiers]
        else:
            base, tiers = _scaled(value, factor), []
        components.append(make_component(unit, base, tiers, source=source))
    validate_priced_units(tuple(_REGISTRY.units[c.unit.usage_key] for c in components), _REGISTRY)
    return components


def _scaled(price: Decimal, factor: Decimal | None) -> Decimal:
    if factor is None:
        return price
    with localcontext(EXACT):
        return price * factor

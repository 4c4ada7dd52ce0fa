"""The price catalog: every model kakin can bill, with its prices over time.

Prices come from the genai-prices package (bundled data, never fetched), from kakin's own
data files in ``kakin/catalog/data`` (per-image, cache storage, per-minute audio) and from
the user's overrides in kakin.toml. See docs/pricing.md.

    catalog = Catalog.default()
    entry = catalog.resolve("gpt-4o", "openai")
    period = catalog.price_period(entry, at=datetime.now(UTC), mode="batch")
"""

from kakin.catalog.catalog import Catalog
from kakin.catalog.entry import BoundRates, ModelEntry
from kakin.catalog.errors import UnknownProvider
from kakin.catalog.genai_source import GENAI_SOURCE, GENAI_VERSION, MODES
from kakin.catalog.prices import Component, ImagePrice, ImageTable, PricePeriod, Tier
from kakin.catalog.providers import SERVED, normalize_provider

__all__ = [
    "GENAI_SOURCE",
    "GENAI_VERSION",
    "MODES",
    "SERVED",
    "BoundRates",
    "Catalog",
    "Component",
    "ImagePrice",
    "ImageTable",
    "ModelEntry",
    "PricePeriod",
    "Tier",
    "UnknownProvider",
    "normalize_provider",
]

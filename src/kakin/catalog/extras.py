"""kakin's own price data: what genai-prices does not carry.

Three small TOML files ship in ``kakin/catalog/data``: per-image prices (``images.toml``),
context-cache storage per token-hour (``cache_storage.toml``) and per-minute audio
(``audio.toml``). Every entry names its source URL and the date it was read (``as_of``);
that label travels to each cost line priced from it. genai-prices wins wherever it prices
the same thing.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, localcontext
from functools import cache
from importlib import resources
from typing import Any, Final

from kakin.catalog.prices import ImagePrice, ImageTable, PixelBound, image_dimensions
from kakin.catalog.units import CACHE_STORAGE_KEY, UNITS, UnitInfo
from kakin.errors import InvalidInput
from kakin.money import EXACT, MoneyError, to_decimal

_DATA_PACKAGE: Final = "kakin.catalog.data"


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """Per-image prices of one model: fixed, derived from documented token counts, or — for
    a model billed by image tokens that publishes no counts — kakin's bound of them."""

    model: str
    source: str
    default_size: str
    default_quality: str
    fixed: Mapping[tuple[str, str], Decimal] | None = None
    tokens: Mapping[tuple[str, str], int] | None = None
    bound: PixelBound | None = None

    def table(self, output_rate: Decimal | None, factor: Decimal | None = None) -> ImageTable | None:
        """The per-image table. Fixed prices are scaled by a discount ``factor``; token-derived
        ones are the documented tokens × ``output_rate`` (the model's output image rate per
        token in force, discount included; None when it has no output price then)."""
        prices: dict[tuple[str, str], ImagePrice] = {}
        with localcontext(EXACT):
            if self.fixed is not None:
                for key, price in self.fixed.items():
                    prices[key] = ImagePrice(key[0], key[1], price * factor if factor is not None else price)
            elif self.tokens is not None and output_rate is not None:
                for key, count in self.tokens.items():
                    prices[key] = ImagePrice(key[0], key[1], output_rate * count, count)
        if self.bound is not None and output_rate is not None:
            return ImageTable(
                prices, self.default_size, self.default_quality, self.source, self.bound, output_rate
            )
        if not prices:
            return None
        return ImageTable(prices, self.default_size, self.default_quality, self.source)


@dataclass(frozen=True, slots=True)
class RateSpec:
    """A single price for one unit of one model (cache storage, audio minutes)."""

    unit: UnitInfo
    price: Decimal
    """USD per ``unit.per`` units."""
    source: str


@dataclass(frozen=True, slots=True)
class KakinData:
    """All of kakin's shipped data, keyed by (provider, genai-prices model id)."""

    images: Mapping[tuple[str, str], ImageSpec]
    cache_storage: Mapping[tuple[str, str], RateSpec]
    audio: Mapping[tuple[str, str], RateSpec]
    names: Mapping[tuple[str, str], str]


def source_label(file: str, url: str, as_of: date) -> str:
    return f"kakin {file}: {url} as of {as_of.isoformat()}"


def image_table_values(raw: object, *, where: str, integers: bool) -> dict[tuple[str, str], Any]:
    """Parse ``{size: {quality: value}}`` into ``{(size, quality): value}``."""
    if not isinstance(raw, dict) or not raw:
        raise InvalidInput(f'{where} must be a table of sizes, e.g. "1024x1024" = {{ standard = "0.04" }}')
    values: dict[tuple[str, str], Any] = {}
    for size, qualities in raw.items():
        if not isinstance(qualities, dict) or not qualities:
            raise InvalidInput(f'{where}.{size} must be a table of qualities, e.g. {{ standard = "0.04" }}')
        for quality, value in qualities.items():
            key = (str(size).lower(), str(quality).lower())
            if integers:
                if type(value) is not int or value <= 0:
                    raise InvalidInput(f"{where}.{size}.{quality} must be a positive whole number of tokens")
                values[key] = value
            else:
                values[key] = decimal_value(value, f"{where}.{size}.{quality}")
    return values


def _pixel_bound(raw: dict[str, Any], where: str) -> PixelBound:
    """``{ tokens = 4160, per_size = "1024x1024", max_size = "3840x2160" }``."""
    tokens = raw.get("tokens")
    if type(tokens) is not int or tokens <= 0:
        raise ValueError(f"{where}.output_tokens_bound.tokens must be a positive whole number")
    bound = PixelBound(tokens, str(raw.get("per_size")), str(raw.get("max_size")))
    image_dimensions(bound.per_size)
    image_dimensions(bound.max_size)
    return bound


def decimal_value(value: object, where: str) -> Decimal:
    """A non-negative price written as a string or integer (floats are refused: inexact)."""
    try:
        return to_decimal(value, what=where)
    except MoneyError as error:
        raise InvalidInput(f'{error} (write prices as strings, e.g. "0.04")') from None


def _read(name: str) -> list[dict[str, Any]]:
    text = resources.files(_DATA_PACKAGE).joinpath(name).read_text(encoding="utf-8")
    models = tomllib.loads(text).get("models", [])
    for entry in models:
        for key in ("provider", "model", "source", "as_of"):
            if key not in entry:
                raise ValueError(f"kakin data file {name}: entry {entry.get('model')!r} lacks {key!r}")
    return models


@cache
def kakin_data() -> KakinData:
    """Load the shipped data files once."""
    images: dict[tuple[str, str], ImageSpec] = {}
    names: dict[tuple[str, str], str] = {}
    for entry in _read("images.toml"):
        key = (entry["provider"], entry["model"])
        where = f"images.toml {entry['model']}"
        source = source_label("images.toml", entry["source"], entry["as_of"])
        bound = _pixel_bound(entry["output_tokens_bound"], where) if "output_tokens_bound" in entry else None
        if bound is not None:
            source += (
                f"; kakin's upper bound, not a published price: {bound.tokens:,} output tokens "
                f"per {bound.per_size} image, scaled to the size"
            )
        images[key] = ImageSpec(
            model=entry["model"],
            source=source,
            default_size=bound.max_size if bound is not None else entry["default_size"],
            default_quality=entry["default_quality"],
            fixed=image_table_values(entry["prices"], where=where, integers=False)
            if "prices" in entry
            else None,
            tokens=image_table_values(entry["output_tokens"], where=where, integers=True)
            if "output_tokens" in entry
            else None,
            bound=bound,
        )
        if "name" in entry:
            names[key] = entry["name"]
    storage = {
        (entry["provider"], entry["model"]): RateSpec(
            unit=UNITS[CACHE_STORAGE_KEY],
            price=Decimal(entry["usd_per_mtok_hour"]),
            source=source_label("cache_storage.toml", entry["source"], entry["as_of"]),
        )
        for entry in _read("cache_storage.toml")
    }
    audio = {
        (entry["provider"], entry["model"]): RateSpec(
            unit=MINUTE_OF_AUDIO,
            price=Decimal(entry["usd_per_minute"]),
            source=source_label("audio.toml", entry["source"], entry["as_of"]),
        )
        for entry in _read("audio.toml")
    }
    return KakinData(images=images, cache_storage=storage, audio=audio, names=names)


# Audio priced per minute reads the same usage (audio_seconds) as genai-prices' per-hour unit.
MINUTE_OF_AUDIO: Final = UnitInfo(
    usage_key="audio_seconds",
    price_key="audio_minutes",
    per=60,
    dimensions=UNITS["audio_seconds"].dimensions,
    component="audio",
    unit="second",
)

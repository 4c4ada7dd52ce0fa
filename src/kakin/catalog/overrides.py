"""User price overrides and additions, read from TOML.

The schema (documented with examples in docs/pricing.md) has four parts:

* ``[models.<id>]`` declares a model kakin does not know (a private deployment, a
  fine-tune) or replaces a catalog model's metadata, with optional prices inline;
* ``[[prices]]`` gives a model a price list from ``effective_from`` on (dated prices);
* ``[[discounts]]`` takes a percentage off a model's prices between two dates
  (negotiated or commitment discounts);
* ``[azure.deployments]`` maps Azure deployment names to catalog models.

This module only parses and checks the document; the catalog resolves model names and
merges the result with the shipped data. Every problem raises ``InvalidInput`` naming the
entry and the key, before anything is used.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any, Final

from genai_prices.types import ModelPrice, Tier, TieredPrices

from kakin.catalog.extras import ImageSpec, decimal_value, image_table_values
from kakin.catalog.genai_source import MODES, components_of
from kakin.catalog.providers import normalize_provider
from kakin.errors import InvalidInput
from kakin.money import EXACT

# kakin's price names → genai-prices price keys (token prices are per 1M tokens there).
TOKEN_KEYS: Final = {
    "input": "input_mtok",
    "output": "output_mtok",
    "cache_read": "cache_read_mtok",
    "cache_write": "cache_write_mtok",
    "cache_write_1h": "cache_write_1h_mtok",
    "input_audio": "input_audio_mtok",
    "output_audio": "output_audio_mtok",
    "cache_audio_read": "cache_audio_read_mtok",
    "input_image": "input_image_mtok",
    "output_image": "output_image_mtok",
    "cache_image_read": "cache_image_read_mtok",
    "input_video": "input_video_mtok",
    "output_video": "output_video_mtok",
    "output_reasoning": "output_reasoning_mtok",
}
# Prices per single event, and the multiplier to genai-prices' unit (per 1,000 / per hour).
EVENT_KEYS: Final = {
    "per_request": ("requests_kcount", 1000),
    "web_search": ("web_searches_kcount", 1000),
    "audio_second": ("audio_hours", 3600),
    "audio_minute": ("audio_hours", 60),
    "audio_hour": ("audio_hours", 1),
}
_PER: Final = {"1m": 1, "1k": 1000, "token": 1_000_000}
_KINDS: Final = ("chat", "embedding", "image", "audio")
_PRICE_META: Final = {
    "per",
    "tiers",
    "images",
    "image_default_size",
    "image_default_quality",
    "cache_storage",
}
_MODEL_META: Final = {"provider", "name", "context_window", "kinds", "aliases", "effective_from"}


@dataclass(frozen=True, slots=True)
class PriceSet:
    """A complete price list for one model from ``effective_from`` on."""

    model: str
    provider: str | None
    effective_from: datetime | None
    standard: ModelPrice
    variants: Mapping[str, ModelPrice]
    """Partial price lists per mode (batch, flex…), laid over ``standard``."""
    cache_storage: Decimal | None
    """USD per 1M token-hours."""
    images: ImageSpec | None
    source: str
    where: str

    def resolve(self, mode: str) -> tuple[ModelPrice, bool]:
        """The price list for ``mode`` and whether mode-specific prices applied."""
        variant = self.variants.get(mode)
        if variant is None:
            return self.standard, False
        merged = ModelPrice(**self.standard.__dict__)
        for key, value in variant.__dict__.items():
            setattr(merged, key, value)
        return merged, True


@dataclass(frozen=True, slots=True)
class Discount:
    """A percentage off every price of a model between two instants."""

    model: str
    provider: str | None
    percent: Decimal
    effective_from: datetime | None
    effective_until: datetime | None
    source: str
    where: str

    @property
    def factor(self) -> Decimal:
        with localcontext(EXACT):
            return (100 - self.percent) / 100

    def active(self, at: datetime) -> bool:
        return (self.effective_from is None or at >= self.effective_from) and (
            self.effective_until is None or at < self.effective_until
        )


@dataclass(frozen=True, slots=True)
class DeclaredModel:
    """Metadata for a model added (or described anew) by the user."""

    model: str
    provider: str
    name: str | None
    context_window: int | None
    kinds: tuple[str, ...]
    aliases: tuple[str, ...]
    where: str


@dataclass(frozen=True, slots=True)
class Overrides:
    source: str = "override"
    models: Mapping[str, DeclaredModel] = field(default_factory=dict)
    prices: tuple[PriceSet, ...] = ()
    discounts: tuple[Discount, ...] = ()
    deployments: Mapping[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.models or self.prices or self.discounts or self.deployments)


def read_overrides(path: Path) -> Overrides:
    """Read an overrides file. A kakin.toml holds them under ``[catalog]``; a file of its
    own may hold them at the top level."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidInput(f"cannot read price overrides {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise InvalidInput(f"price overrides {path} are not valid TOML: {error}") from None
    if "catalog" in document or "providers" in document:
        # kakin.toml: the [catalog] section, plus the deployments of [[providers]] of kind azure.
        catalog = document.get("catalog", {})
        if not isinstance(catalog, dict):
            raise InvalidInput(f"{path}: [catalog] must be a table")
        deployments = _provider_deployments(document.get("providers", []))
        if deployments:
            azure = dict(catalog.get("azure", {}))
            azure["deployments"] = deployments | dict(azure.get("deployments", {}))
            catalog = catalog | {"azure": azure}
        document = catalog
    else:
        document = {key: value for key, value in document.items() if key in _TOP_LEVEL}
    return parse_overrides(document, source=f"override: {path.name}")


_TOP_LEVEL: Final = ("models", "prices", "discounts", "azure")


def _provider_deployments(providers: object) -> dict[str, Any]:
    """Azure deployment names declared on kakin.toml's upstream providers."""
    found: dict[str, Any] = {}
    for provider in providers if isinstance(providers, list) else ():
        if isinstance(provider, dict) and provider.get("kind") == "azure":
            deployments = provider.get("deployments", {})
            if isinstance(deployments, dict):
                found |= deployments
    return found


def parse_overrides(document: Mapping[str, Any], *, source: str = "override: config") -> Overrides:
    """Check and convert an overrides document (the content of ``[catalog]``)."""
    unknown = set(document) - set(_TOP_LEVEL)
    if unknown:
        raise InvalidInput(
            f"{source}: unknown section(s) {', '.join(sorted(unknown))}; expected models, prices, discounts, azure"
        )
    models: dict[str, DeclaredModel] = {}
    prices: list[PriceSet] = []
    raw_models = _table(document.get("models", {}), "[models]")
    for model_id, raw in raw_models.items():
        where = f"[models.{_quote(model_id)}]"
        entry = _table(raw, where)
        declared = _declared(model_id, entry, where)
        models[model_id.lower()] = declared
        price_fields = {k: v for k, v in entry.items() if k not in _MODEL_META}
        if price_fields:
            prices.append(
                _price_set(
                    model_id,
                    declared.provider,
                    entry.get("effective_from"),
                    price_fields,
                    source,
                    where,
                )
            )
    raw_prices = document.get("prices", [])
    if not isinstance(raw_prices, list):
        raise InvalidInput(f"{source}: prices must be an array of tables ([[prices]])")
    for index, raw in enumerate(raw_prices, start=1):
        where = f"[[prices]] #{index}"
        entry = _table(raw, where)
        model_id = entry.get("model")
        if not isinstance(model_id, str) or not model_id.strip():
            raise InvalidInput(f'{where} needs model = "<model id>"')
        where = f"[[prices]] #{index} ({model_id})"
        provider = _provider(entry.get("provider"), where)
        fields = {k: v for k, v in entry.items() if k not in ("model", "provider", "effective_from")}
        prices.append(
            _price_set(model_id.strip(), provider, entry.get("effective_from"), fields, source, where)
        )
    discounts = _discounts(document.get("discounts", []), source)
    deployments = _deployments(document.get("azure", {}))
    _check_duplicates(prices)
    return Overrides(
        source=source,
        models=models,
        prices=tuple(prices),
        discounts=tuple(discounts),
        deployments=deployments,
    )


def _declared(model_id: str, entry: Mapping[str, Any], where: str) -> DeclaredModel:
    provider = _provider(entry.get("provider"), where) or "custom"
    kinds = entry.get("kinds", ["chat"])
    if not isinstance(kinds, list) or not kinds or any(kind not in _KINDS for kind in kinds):
        raise InvalidInput(f"{where}.kinds must be a list of {', '.join(_KINDS)}; got {kinds!r}")
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list) or any(not isinstance(alias, str) or not alias for alias in aliases):
        raise InvalidInput(f"{where}.aliases must be a list of model names")
    window = entry.get("context_window")
    if window is not None and (type(window) is not int or window <= 0):
        raise InvalidInput(f"{where}.context_window must be a positive whole number of tokens")
    name = entry.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidInput(f"{where}.name must be a string")
    return DeclaredModel(
        model=model_id,
        provider=provider,
        name=name,
        context_window=window,
        kinds=tuple(kinds),
        aliases=tuple(alias.lower() for alias in aliases),
        where=where,
    )


def _price_set(
    model_id: str,
    provider: str | None,
    raw_from: object,
    fields: Mapping[str, Any],
    source: str,
    where: str,
) -> PriceSet:
    per = _per(fields.get("per", "1M"), where)
    standard = _model_price(fields, per, where, allow_meta=True)
    if not standard.__dict__ and "images" not in fields and "cache_storage" not in fields:
        raise InvalidInput(f"{where} gives no prices; set at least input and output (USD per 1M tokens)")
    variants = {
        mode: _model_price(_table(fields[mode], f"{where}.{mode}"), per, f"{where}.{mode}", allow_meta=False)
        for mode in MODES
        if mode in fields and mode != "standard"
    }
    tiers = fields.get("tiers")
    if tiers is not None:
        _apply_tiers(standard, tiers, per, where)
    cache_storage = None
    if "cache_storage" in fields:
        cache_storage = _scaled(decimal_value(fields["cache_storage"], f"{where}.cache_storage"), per)
    images = None
    if "images" in fields:
        table = image_table_values(fields["images"], where=f"{where}.images", integers=False)
        sizes = sorted({size for size, _ in table})
        qualities = sorted({quality for _, quality in table})
        images = ImageSpec(
            model=model_id,
            source=source,
            default_size=str(fields.get("image_default_size", sizes[0])).lower(),
            default_quality=str(fields.get("image_default_quality", qualities[0])).lower(),
            fixed=table,
        )
        if (images.default_size, images.default_quality) not in table:
            raise InvalidInput(
                f"{where}: image_default_size/image_default_quality "
                f"({images.default_size} {images.default_quality}) is not in the images table"
            )
    price_set = PriceSet(
        model=model_id,
        provider=provider,
        effective_from=parse_instant(raw_from, f"{where}.effective_from"),
        standard=standard,
        variants=variants,
        cache_storage=cache_storage,
        images=images,
        source=source,
        where=where,
    )
    for mode in MODES:
        try:
            components_of(price_set.resolve(mode)[0], source=source)
        except ValueError as error:
            raise InvalidInput(
                f"{where}: {error} (a more specific price needs the broader one too, e.g. input with cache_read)"
            ) from None
    return price_set


def _model_price(fields: Mapping[str, Any], per: int, where: str, *, allow_meta: bool) -> ModelPrice:
    values: dict[str, Decimal] = {}
    for key, raw in fields.items():
        if key in TOKEN_KEYS:
            values[TOKEN_KEYS[key]] = _scaled(decimal_value(raw, f"{where}.{key}"), per)
        elif key in EVENT_KEYS:
            price_key, multiplier = EVENT_KEYS[key]
            if price_key in values:
                raise InvalidInput(f"{where}: give only one of audio_second, audio_minute, audio_hour")
            values[price_key] = _scaled(decimal_value(raw, f"{where}.{key}"), multiplier)
        elif allow_meta and (key in _PRICE_META or (key in MODES and key != "standard")):
            continue
        else:
            known = sorted([*TOKEN_KEYS, *EVENT_KEYS, *((*_PRICE_META, *MODES[1:]) if allow_meta else ())])
            raise InvalidInput(f"{where}: unknown price {key!r}; known: {', '.join(known)}")
    return ModelPrice(**values)


def _apply_tiers(standard: ModelPrice, raw: object, per: int, where: str) -> None:
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(f'{where}.tiers must be a list like [{{ above = 200000, input = "2.5" }}]')
    tiered: dict[str, list[Tier]] = {}
    for index, raw_tier in enumerate(raw, start=1):
        tier_where = f"{where}.tiers[{index}]"
        tier = _table(raw_tier, tier_where)
        above = tier.get("above")
        if type(above) is not int or above <= 0:
            raise InvalidInput(f"{tier_where}.above must be a positive whole number of input tokens")
        for key, value in tier.items():
            if key == "above":
                continue
            if key not in TOKEN_KEYS:
                raise InvalidInput(f"{tier_where}: tiers price tokens only; unknown key {key!r}")
            price_key = TOKEN_KEYS[key]
            if getattr(standard, price_key) is None:
                raise InvalidInput(f"{tier_where}.{key}: give the base {key} price too")
            tiered.setdefault(price_key, []).append(
                Tier(above, _scaled(decimal_value(value, f"{tier_where}.{key}"), per))
            )
    for price_key, tiers in tiered.items():
        starts = [tier.start for tier in tiers]
        if len(set(starts)) != len(starts):
            raise InvalidInput(f"{where}.tiers: two tiers start above the same number of tokens")
        setattr(standard, price_key, TieredPrices(base=getattr(standard, price_key), tiers=tiers))


def _discounts(raw: object, source: str) -> list[Discount]:
    if not isinstance(raw, list):
        raise InvalidInput(f"{source}: discounts must be an array of tables ([[discounts]])")
    result = []
    for index, raw_entry in enumerate(raw, start=1):
        where = f"[[discounts]] #{index}"
        entry = _table(raw_entry, where)
        unknown = set(entry) - {"model", "provider", "percent", "effective_from", "effective_until"}
        if unknown:
            raise InvalidInput(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        model_id = entry.get("model")
        if not isinstance(model_id, str) or not model_id.strip():
            raise InvalidInput(f'{where} needs model = "<model id>"')
        percent = decimal_value(entry.get("percent"), f"{where}.percent")
        if not 0 < percent <= 100:
            raise InvalidInput(f"{where}.percent must be more than 0 and at most 100, got {percent}")
        start = parse_instant(entry.get("effective_from"), f"{where}.effective_from")
        end = parse_instant(entry.get("effective_until"), f"{where}.effective_until")
        if start is not None and end is not None and end <= start:
            raise InvalidInput(f"{where}: effective_until must be after effective_from")
        result.append(
            Discount(
                model=model_id.strip(),
                provider=_provider(entry.get("provider"), where),
                percent=percent,
                effective_from=start,
                effective_until=end,
                source=source,
                where=f"{where} ({model_id})",
            )
        )
    return result


def _deployments(raw: object) -> dict[str, str]:
    azure = _table(raw, "[azure]")
    unknown = set(azure) - {"deployments"}
    if unknown:
        raise InvalidInput(
            f"[azure]: unknown key(s) {', '.join(sorted(unknown))}; expected [azure.deployments]"
        )
    deployments = _table(azure.get("deployments", {}), "[azure.deployments]")
    result = {}
    for name, target in deployments.items():
        if not isinstance(target, str) or not target.strip():
            raise InvalidInput(f'[azure.deployments].{name} must name a catalog model, e.g. "gpt-4o"')
        result[name.lower()] = target.strip()
    return result


def _check_duplicates(prices: list[PriceSet]) -> None:
    seen: dict[tuple[str, str | None, datetime | None], str] = {}
    for price_set in prices:
        key = (price_set.model.lower(), price_set.provider, price_set.effective_from)
        if key in seen:
            raise InvalidInput(
                f"{price_set.where} repeats {seen[key]}: same model, provider and effective_from; keep one"
            )
        seen[key] = price_set.where


def parse_instant(raw: object, where: str) -> datetime | None:
    """A TOML date or datetime (or ISO string) as an aware UTC datetime; dates mean UTC midnight."""
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = (
                datetime.fromisoformat(raw.strip())
                if "T" in raw or " " in raw.strip()
                else date.fromisoformat(raw.strip())
            )
        except ValueError:
            raise InvalidInput(f"{where} must be a date like 2025-06-01, got {raw!r}") from None
    if isinstance(raw, datetime):
        return raw.replace(tzinfo=UTC) if raw.tzinfo is None else raw.astimezone(UTC)
    if isinstance(raw, date):
        return datetime(raw.year, raw.month, raw.day, tzinfo=UTC)
    raise InvalidInput(f"{where} must be a date like 2025-06-01, got {raw!r}")


def _per(raw: object, where: str) -> int:
    key = str(raw).strip().lower()
    if key not in _PER:
        raise InvalidInput(
            f'{where}.per must be "1M", "1K" or "token" (token prices per that many), got {raw!r}'
        )
    return _PER[key]


def _scaled(value: Decimal, multiplier: int) -> Decimal:
    with localcontext(EXACT):
        return value * multiplier


def _provider(raw: object, where: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(f'{where}.provider must be a provider name such as "openai"')
    return normalize_provider(raw)


def _table(raw: object, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where} must be a table")
    return raw


def _quote(name: str) -> str:
    return f'"{name}"' if not name.replace("-", "").replace("_", "").isalnum() else name

"""The price catalog: find a model by provider and name, and the prices in force at a time.

A ``Catalog`` combines genai-prices' bundled data, kakin's data files and the user's
overrides. Models are compiled on first use (genai-prices lists ~2,500 across all
providers) and a model reference is resolved once: later lookups of the same
(provider, name) pair are one dictionary read.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

from kakin.catalog import genai_source
from kakin.catalog.build import Layers, build_schedules
from kakin.catalog.entry import BoundRates, ModelEntry, bound_rates
from kakin.catalog.errors import UnknownProvider
from kakin.catalog.extras import KakinData, kakin_data
from kakin.catalog.overrides import DeclaredModel, Overrides, parse_overrides, read_overrides
from kakin.catalog.prices import PricePeriod
from kakin.catalog.providers import SERVED, normalize_provider
from kakin.errors import InvalidInput, UnknownModel, closest

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, Provider

# Distinct (provider, name) references remembered; beyond this the memo starts afresh, so
# a client sending endless made-up-but-matching names cannot grow memory without bound.
_MEMO_LIMIT: Final = 8192
_KINDS_AUDIO: Final = ("whisper", "transcribe", "tts", "audio", "realtime", "live")


class Catalog:
    """Prices for every model kakin can bill. Thread-safe; cheap to query after first use."""

    loaded: ClassVar[Catalog | None] = None
    """The shared catalog once ``default()`` has built it (read without a call on hot paths)."""
    _loaded_lock: ClassVar = threading.Lock()

    def __init__(self, overrides: Overrides | None = None, data: KakinData | None = None) -> None:
        self.overrides = overrides or Overrides()
        self._data = data or kakin_data()
        self._memo: dict[tuple[str | None, str], ModelEntry] = {}
        self._entries: dict[tuple[str, str], ModelEntry] = {}
        self._lock = threading.RLock()
        self._declared: dict[str, DeclaredModel] = {}
        for declared in self.overrides.models.values():
            for name in (declared.model.lower(), *declared.aliases):
                self._declared[name] = declared
        # Override references resolved to canonical model ids, checked now so that a typo
        # fails at load time, not on the first request.
        self._price_sets = {
            id(p): self._canonical(p.model, p.provider, p.where) for p in self.overrides.prices
        }
        self._discounts = {
            id(d): self._canonical(d.model, d.provider, d.where) for d in self.overrides.discounts
        }
        for name, target in self.overrides.deployments.items():
            self._canonical(target, "azure", f"[azure.deployments].{name}")

    # ----------------------------------------------------------------- construction

    @classmethod
    def load(cls, overrides: Path | str | Mapping[str, Any] | Overrides | None = None) -> Catalog:
        """A catalog with overrides from a TOML file (kakin.toml's ``[catalog]`` section, or
        a file of its own), an already-parsed document, or none."""
        if overrides is None:
            return cls()
        if isinstance(overrides, Overrides):
            return cls(overrides)
        if isinstance(overrides, (str, Path)):
            return cls(read_overrides(Path(overrides)))
        document = overrides.get("catalog", overrides) if isinstance(overrides, Mapping) else overrides
        return cls(parse_overrides(document))

    @classmethod
    def default(cls, *, reload: bool = False) -> Catalog:
        """The shared catalog: genai-prices + kakin data + overrides from ``$KAKIN_CONFIG``
        or ``./kakin.toml`` when present. Built once per process."""
        with cls._loaded_lock:
            if cls.loaded is None or reload:
                path = Path(os.environ.get("KAKIN_CONFIG") or "kakin.toml")
                cls.loaded = cls(read_overrides(path)) if path.is_file() else cls()
            return cls.loaded

    # ----------------------------------------------------------------------- lookup

    def resolve(self, model: str, provider: str | None = None) -> ModelEntry:
        """The catalog entry for a model reference (raises ``UnknownModel``)."""
        found = self._memo.get((provider, model))
        if found is not None:
            return found
        if not isinstance(model, str) or not model.strip():
            raise InvalidInput("model name is empty; give a model id such as 'gpt-4o'")
        entry = self._find(model.strip().lower(), normalize_provider(provider) if provider else None, model)
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[(provider, model)] = entry
        return entry

    def price_period(
        self, entry: ModelEntry, at: datetime | None = None, mode: str = "standard"
    ) -> PricePeriod:
        """The prices in force for ``entry`` at ``at`` (default now) in ``mode``."""
        return entry.period(at, mode)

    def bound_rates(
        self,
        entry: ModelEntry,
        at: datetime | None = None,
        mode: str = "standard",
        *,
        input_tokens: int | None = None,
    ) -> BoundRates:
        """Highest per-token input and output rates (and fixed per-request / per-image
        prices) of ``entry`` at ``at``: the tier ``input_tokens`` reaches, or the highest
        tier when it is None. For bounding a request's cost before it runs."""
        return bound_rates(entry.period(at, mode), input_tokens)

    def models(self, provider: str | None = None) -> list[ModelEntry]:
        """Every model a provider lists (all served providers when None), overrides included."""
        providers = [normalize_provider(provider)] if provider else list(SERVED)
        entries: dict[tuple[str, str], ModelEntry] = {}
        for provider_id in providers:
            genai_provider = genai_source.provider_by_id(provider_id)
            if genai_provider is not None:
                for info in genai_provider.models:
                    entry = self._genai_entry(provider_id, genai_provider, info)
                    entries[(entry.provider, entry.model)] = entry
            # kakin's image models genai-prices does not list (its own ones are already in)
            for data_provider, data_model in self._data.images:
                if data_provider == provider_id and (provider_id, data_model) not in entries:
                    entry = self._data_entry(provider_id, data_provider, data_model)
                    entries[(entry.provider, entry.model)] = entry
        for declared in self.overrides.models.values():
            wanted = provider is None or declared.provider == providers[0]
            if wanted and (declared.provider, declared.model) not in entries and self._is_new(declared):
                entry = self._declared_entry(declared.provider, declared)
                entries[(entry.provider, entry.model)] = entry
        return sorted(entries.values(), key=lambda e: (e.provider, e.model))

    def providers(self) -> list[str]:
        return list(SERVED)

    # ---------------------------------------------------------------------- finding

    def _find(self, ref: str, provider: str | None, original: str) -> ModelEntry:
        declared = self._declared.get(ref)
        # A model declared without a provider ("custom") answers under any provider name,
        # e.g. a private model behind an OpenAI-compatible endpoint.
        if (
            declared is not None
            and (provider is None or declared.provider in (provider, "custom"))
            and self._is_new(declared)
        ):
            return self._declared_entry(provider or declared.provider, declared)
        if provider in ("azure", None) and ref in self.overrides.deployments:
            return self._find(self.overrides.deployments[ref].lower(), "azure", original)
        genai_provider: Provider | None = None
        if provider is not None:
            genai_provider = genai_source.provider_by_id(provider)
            if genai_provider is None and provider not in {p for p, _ in self._data.images} | {
                d.provider for d in self.overrides.models.values()
            }:
                raise UnknownProvider(provider, SERVED)
        found = self._genai_lookup(ref, genai_provider, provider)
        if found is not None:
            return self._genai_entry(found[0].id if provider is None else provider, found[0], found[1])
        data_key = self._data_lookup(ref, provider)
        if data_key is not None:
            return self._data_entry(provider or data_key[0], data_key[0], data_key[1])
        raise UnknownModel(original, self._known_names(provider), provider)

    def _genai_lookup(
        self, ref: str, genai_provider: Provider | None, provider: str | None
    ) -> tuple[Provider, ModelInfo] | None:
        if genai_provider is not None:
            info = genai_source.find_model(genai_provider, ref)
            return (genai_provider, info) if info is not None else None
        if provider is not None:
            return None
        guessed = genai_source.provider_for_model(ref)
        candidates = [guessed] if guessed is not None else []
        candidates += [
            p for p in map(genai_source.provider_by_id, SERVED) if p is not None and p is not guessed
        ]
        for candidate in candidates:
            info = genai_source.find_model(candidate, ref)
            if info is not None:
                return candidate, info
        return None

    def _data_lookup(self, ref: str, provider: str | None) -> tuple[str, str] | None:
        for data_provider, data_model in self._data.images:
            if data_model == ref and provider in (
                None,
                data_provider,
                "azure" if data_provider == "openai" else None,
            ):
                return data_provider, data_model
        return None

    def _canonical(self, name: str, provider: str | None, where: str) -> str:
        """The model id an override refers to, or InvalidInput naming the entry."""
        ref = name.lower()
        declared = self._declared.get(ref)
        if declared is not None:
            return declared.model.lower()
        genai_provider = genai_source.provider_by_id(provider) if provider else None
        found = self._genai_lookup(ref, genai_provider, provider if genai_provider else None)
        if found is not None:
            return found[1].id.lower()
        if self._data_lookup(ref, provider) is not None:
            return ref
        hint = closest(name, self._known_names(provider))
        suggestion = f"; closest known: {', '.join(hint)}" if hint else ""
        raise InvalidInput(
            f"{where}: model {name!r} is not in the catalog{suggestion}; "
            f'to add a new model declare it under [models."{name}"] with its prices'
        )

    def _known_names(self, provider: str | None) -> list[str]:
        names: list[str] = []
        for provider_id in [provider] if provider else list(SERVED):
            genai_provider = genai_source.provider_by_id(provider_id) if provider_id else None
            if genai_provider is None:
                continue
            for info in genai_provider.models:
                names.extend(genai_source.exact_names(info))
            for fallback in genai_provider.fallback_model_providers or ():
                if fallback in SERVED:
                    fallback_provider = genai_source.provider_by_id(fallback)
                    for info in fallback_provider.models if fallback_provider else ():
                        names.append(info.id)
        names.extend(model for _, model in self._data.images)
        names.extend(self._declared)
        names.extend(self.overrides.deployments)
        return names

    # --------------------------------------------------------------------- building

    def _cached(self, key: tuple[str, str], build: Callable[[], ModelEntry]) -> ModelEntry:
        """The entry under ``key``, built once: the lookup is lock-free once built; the first
        builders of a key wait on the lock so that one builds and the others reuse it."""
        entry = self._entries.get(key)
        if entry is not None:
            return entry
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = build()
        return entry

    def _genai_entry(self, provider: str, genai_provider: Provider, info: ModelInfo) -> ModelEntry:
        def build() -> ModelEntry:
            owner = genai_source.owner_of(genai_provider, info)
            canonical = info.id.lower()
            layers = Layers(
                model=info.id,
                genai_model=info,
                with_variants=genai_source.owns(genai_provider, info),
                price_sets=self._sets_for(canonical, provider),
                discounts=self._discounts_for(canonical, provider),
                images=self._data.images.get((owner.id, info.id)),
                cache_storage=self._data.cache_storage.get((owner.id, info.id)),
                audio=self._data.audio.get((owner.id, info.id)),
            )
            declared = self._declared.get(canonical)
            schedules = build_schedules(layers)
            return ModelEntry(
                provider=provider,
                model=info.id,
                name=(declared.name if declared and declared.name else None) or info.name or info.id,
                context_window=(declared.context_window if declared else None) or info.context_window,
                kinds=declared.kinds if declared else _kinds(info.id, schedules),
                price_provider=owner.id,
                source=self._source_of(layers),
                deprecated=bool(info.deprecated),
                schedules=schedules,
            )

        return self._cached((provider, f"genai:{info.id}:{id(info)}"), build)

    def _data_entry(self, provider: str, data_provider: str, model: str) -> ModelEntry:
        def build() -> ModelEntry:
            layers = Layers(
                model=model,
                price_sets=self._sets_for(model, provider),
                discounts=self._discounts_for(model, provider),
                images=self._data.images.get((data_provider, model)),
            )
            return ModelEntry(
                provider=provider,
                model=model,
                name=self._data.names.get((data_provider, model), model),
                context_window=None,
                kinds=("image",),
                price_provider=data_provider,
                source=self._source_of(layers),
                schedules=build_schedules(layers),
            )

        return self._cached((provider, f"data:{model}"), build)

    def _declared_entry(self, provider: str, declared: DeclaredModel) -> ModelEntry:
        canonical = declared.model.lower()

        def build() -> ModelEntry:
            layers = Layers(
                model=declared.model,
                price_sets=self._sets_for(canonical, provider, declared.provider),
                discounts=self._discounts_for(canonical, provider, declared.provider),
            )
            return ModelEntry(
                provider=provider,
                model=declared.model,
                name=declared.name or declared.model,
                context_window=declared.context_window,
                kinds=declared.kinds,
                price_provider=declared.provider,
                source=self.overrides.source,
                schedules=build_schedules(layers),
            )

        return self._cached((provider, f"declared:{canonical}"), build)

    def _is_new(self, declared: DeclaredModel) -> bool:
        """Whether a declared model is a model of its own, rather than new metadata for a
        catalog model. Under a provider genai-prices knows, or with no provider, a name the
        catalog resolves is the catalog model; under any other provider it is new."""
        ref = declared.model.lower()
        if declared.provider == "custom":
            return self._genai_lookup(ref, None, None) is None and self._data_lookup(ref, None) is None
        genai_provider = genai_source.provider_by_id(declared.provider)
        if genai_provider is None:
            return True
        return (
            genai_source.find_model(genai_provider, ref) is None
            and self._data_lookup(ref, declared.provider) is None
        )

    def _sets_for(self, canonical: str, provider: str, *also: str) -> list:
        return [
            p
            for p in self.overrides.prices
            if self._price_sets[id(p)] == canonical
            and (p.provider is None or p.provider in (provider, *also))
        ]

    def _discounts_for(self, canonical: str, provider: str, *also: str) -> list:
        return [
            d
            for d in self.overrides.discounts
            if self._discounts[id(d)] == canonical and (d.provider is None or d.provider in (provider, *also))
        ]

    def _source_of(self, layers: Layers) -> str:
        parts = []
        if layers.genai_model is not None:
            parts.append(genai_source.GENAI_SOURCE)
        if layers.images is not None or layers.cache_storage is not None or layers.audio is not None:
            parts.append("kakin data")
        if layers.price_sets or layers.discounts:
            parts.append(self.overrides.source)
        return " + ".join(parts)


def _kinds(model_id: str, schedules: Mapping[str, Any]) -> tuple[str, ...]:
    """What a catalog model does, from its name and what it is priced for."""
    name = model_id.lower()
    if "embed" in name:
        return ("embedding",)
    priced: set[str] = set()
    has_images = False
    for period in schedules["standard"].periods():
        priced |= {component.name for component in period.components}
        has_images = has_images or period.images is not None
    kinds: list[str] = []
    image_only = "dall-e" in name or name.startswith(("gpt-image", "chatgpt-image"))
    speech_only = any(word in name for word in ("whisper", "transcribe", "tts"))
    if "output" in priced and not image_only and not speech_only:
        kinds.append("chat")
    if image_only or has_images or "image" in name or "output_image" in priced:
        kinds.append("image")
    if (
        speech_only
        or any(word in name for word in _KINDS_AUDIO)
        or priced & {"audio", "output_audio", "input_audio"}
    ):
        kinds.append("audio")
    return tuple(kinds) or ("chat",)

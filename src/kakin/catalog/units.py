"""The billable units kakin knows, and how a ``Usage`` reads each of them.

genai-prices defines its units (``input_tokens`` priced by ``input_mtok`` per 1,000,000,
``audio_seconds`` priced by ``audio_hours`` per 3,600…) with *dimensions*; a unit whose
dimensions include another's is a more specific part of it (``cache_read_tokens`` is part
of ``input_tokens``). kakin reuses that registry unchanged so that the decomposition is the
same one genai-prices computes, and adds the two units genai-prices has no key for:
context-cache storage (token-hours) and per-image prices.

This module only describes units; it holds no prices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from genai_prices.data_units import unit_data

# kakin's own units, priced from kakin's data files and overrides.
CACHE_STORAGE_KEY: Final = "cache_storage_token_hours"
CACHE_STORAGE_PRICE_KEY: Final = "cache_storage_mtok_hours"

_FAMILY_UNIT: Final = {
    "tokens": "token",
    "characters": "character",
    "messages": "message",
    "durations": "second",
    "pixels": "pixel",
    "document_pages": "page",
    "rerank": "search",
    "requests": "request",
}
_TOOL_UNIT: Final = {"web_search": "search", "social_search": "search", "storage_search": "search"}


@dataclass(frozen=True, slots=True, eq=False)
class UnitInfo:
    """One billable unit: the usage key it counts, the price key that prices it, and how.

    Units are singletons, compared by identity."""

    usage_key: str
    price_key: str
    per: int
    """Prices are quoted per this many units (1,000,000 tokens, 3,600 seconds, 1,000 requests)."""
    dimensions: Mapping[str, str]
    component: str
    """kakin's short name on cost lines: input, cache_read, output_audio, audio, web_search…"""
    unit: str
    """Singular name of one unit: token, second, request, search, token-hour…"""

    @property
    def direction(self) -> str | None:
        return self.dimensions.get("direction")

    def contains(self, other: UnitInfo) -> bool:
        """True when ``other`` is a more specific part of this unit (or the same one)."""
        return self.dimensions.items() <= other.dimensions.items()


def _component_name(usage_key: str) -> str:
    if usage_key == "requests":
        return "request"
    if usage_key == "audio_seconds":
        return "audio"
    name = usage_key.removesuffix("_tokens").removesuffix("_seconds")
    if usage_key.endswith("_seconds"):
        name += "_duration"
    return name.removesuffix("es") if name.endswith("searches") else name


def _unit_name(raw: Mapping[str, Any]) -> str:
    dims = raw.get("dimensions", {})
    family = dims.get("family", "")
    if family == "tool_calls":
        return _TOOL_UNIT.get(dims.get("tool_type", ""), "call")
    return _FAMILY_UNIT.get(family, "unit")


def _build() -> dict[str, UnitInfo]:
    units = {
        key: UnitInfo(
            usage_key=key,
            price_key=raw.get("price_key", key),
            per=int(raw["per"]),
            dimensions=dict(raw.get("dimensions", {})),
            component=_component_name(key),
            unit=_unit_name(raw),
        )
        for key, raw in unit_data.items()
    }
    units[CACHE_STORAGE_KEY] = UnitInfo(
        usage_key=CACHE_STORAGE_KEY,
        price_key=CACHE_STORAGE_PRICE_KEY,
        per=1_000_000,
        dimensions={"family": "cache_storage"},
        component="cache_storage",
        unit="token-hour",
    )
    return units


UNITS: Final[Mapping[str, UnitInfo]] = _build()
UNITS_BY_PRICE_KEY: Final[Mapping[str, UnitInfo]] = {unit.price_key: unit for unit in UNITS.values()}


# kakin's ``cache_write_tokens`` are the 5-minute writes and ``cache_write_1h_tokens`` the
# 1-hour ones, while genai-prices' ``cache_write_tokens`` is the broader unit that holds both
# (its 1-hour unit is a part of it). These units are read through a translation; every
# other unit's count is the usage attribute of the same name (zero when absent).
SPECIAL_READERS: Final[Mapping[str, Callable[[Any], Any]]] = {
    "cache_write_tokens": lambda usage: usage.cache_write_tokens + usage.cache_write_1h_tokens,
    "cache_write_5m_tokens": lambda usage: usage.cache_write_tokens,
}


def read_count(usage: Any, usage_key: str) -> Any:
    """The count of a unit in a usage record (kakin's ``Usage`` or anything shaped like it)."""
    special = SPECIAL_READERS.get(usage_key)
    return special(usage) if special is not None else getattr(usage, usage_key, 0)

"""What a provider's bill line is in kakin's terms: its model and unit.

The rules are data (``data/line_items.toml``), read once; this module only applies them, so a
new line item or SKU is a line in that file, not code. Model names on both sides go through
:func:`LineItems.model_key`, so "gpt-4o-2024-08-06" on the bill and "gpt-4o" in kakin compare
as one model.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final, Literal

Provider = Literal["openai", "anthropic", "google"]
PROVIDERS: Final[tuple[Provider, ...]] = ("openai", "anthropic", "google")

UNITS: Final = ("cached_input", "cache_write", "input", "output", "images", "audio", "requests", "other")
"""The units bills are compared in, cache categories first (where gateways drift most)."""

DATA: Final = Path(__file__).parent / "data" / "line_items.toml"


@dataclass(frozen=True, slots=True)
class Rule:
    pattern: re.Pattern[str]
    unit: str


@dataclass(frozen=True, slots=True)
class ProviderRules:
    kakin_providers: tuple[str, ...]
    rules: tuple[Rule, ...]
    services: tuple[str, ...]


class LineItems:
    """The mapping file, compiled."""

    def __init__(self, document: dict) -> None:  # type: ignore[type-arg]
        models = document.get("models", {})
        self._snapshot = re.compile(models.get("snapshot", r"(?!)"))
        self._aliases = {k.lower(): v.lower() for k, v in models.get("aliases", {}).items()}
        self._providers: dict[str, ProviderRules] = {}
        for provider in PROVIDERS:
            section = document.get(provider, {})
            rules = []
            for rule in section.get("rules", []):
                if rule["unit"] not in UNITS:
                    raise ValueError(f"{DATA.name}: [{provider}] unit {rule['unit']!r} is not one of {UNITS}")
                rules.append(Rule(re.compile(rule["pattern"], re.IGNORECASE), rule["unit"]))
            self._providers[provider] = ProviderRules(
                tuple(section.get("kakin_providers", [provider])),
                tuple(rules),
                tuple(section.get("services", [])),
            )

    def classify(self, provider: Provider, text: str, model: str | None = None) -> tuple[str | None, str]:
        """The model key and unit of a bill line described by ``text`` (``model``: the one the
        row names in a field of its own, if any)."""
        for rule in self._providers[provider].rules:
            found = rule.pattern.fullmatch(text.strip())
            if found is not None:
                named = found.groupdict().get("model") or model
                return (self.model_key(named) if named else None), rule.unit
        return (self.model_key(model) if model else None), "other"

    def model_key(self, name: str) -> str:
        """The name a model is compared under, on the bill's side and on kakin's."""
        key = re.sub(r"\s+", "-", name.strip().lower()).removeprefix("models/")
        key = self._aliases.get(key, key)
        key = self._snapshot.sub("", key)
        return self._aliases.get(key, key)

    def kakin_providers(self, provider: Provider) -> tuple[str, ...]:
        """kakin's provider names (``[[providers]] name``) whose traffic a bill covers."""
        return self._providers[provider].kakin_providers

    def services(self, provider: Provider) -> tuple[str, ...]:
        return self._providers[provider].services


@cache
def line_items() -> LineItems:
    """The shipped mapping."""
    with DATA.open("rb") as handle:
        return LineItems(tomllib.load(handle))

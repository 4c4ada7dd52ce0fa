"""Errors specific to the catalog."""

from __future__ import annotations

from collections.abc import Iterable

from kakin.errors import NotFound, closest


class UnknownProvider(NotFound):
    """A provider name the catalog has no prices for."""

    code = "provider_not_found"

    def __init__(self, provider: str, known: Iterable[str]) -> None:
        self.provider = provider
        names = list(known)
        hint = closest(provider, names)
        suggestion = f" (did you mean {', '.join(hint)}?)" if hint else ""
        super().__init__(
            f"unknown provider {provider!r}{suggestion}; kakin prices {', '.join(names)} "
            "(alias 'gemini' for google), or a provider you declare in kakin.toml [catalog.models]"
        )

"""Provider names as users write them, mapped to the ids the catalog uses."""

from __future__ import annotations

from typing import Final

# The providers kakin's gateway serves, in the order a bare model name is looked up.
SERVED: Final = ("openai", "anthropic", "google", "azure")

ALIASES: Final = {
    "gemini": "google",
    "google-gemini": "google",
    "google_gemini": "google",
    "vertex": "google",
    "vertex-ai": "google",
    "vertex_ai": "google",
    "azure-openai": "azure",
    "azure_openai": "azure",
    "azureopenai": "azure",
    "claude": "anthropic",
}


def normalize_provider(provider: str) -> str:
    """Lower-case, trimmed, aliases resolved ("Gemini" → "google")."""
    key = provider.strip().lower()
    return ALIASES.get(key, key)

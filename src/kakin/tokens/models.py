"""Which tokenizer a model name uses.

Only OpenAI publishes its tokenizers, so only OpenAI models get an encoding here; Anthropic and
Google models are recognised by name so the counter can say "estimate" honestly. Azure
deployment names are arbitrary and are resolved to a model by the catalog before they get here.

Model names arrive in the shapes SDKs and routers use: ``gpt-4o``, ``openai/gpt-4o``,
``models/gemini-2.0-flash``, ``anthropic.claude-3-5-sonnet-20240620-v1:0``,
``claude-3-5-sonnet@20240620``; the provider part is stripped before matching.
"""

from __future__ import annotations

import functools
from typing import Final, Literal

from tiktoken.model import encoding_name_for_model

from kakin.tokens.vocab import VOCABULARY_OF

Provider = Literal["openai", "anthropic", "google", "unknown"]

# Newer OpenAI names tiktoken may not know yet (checked after tiktoken's own table).
_PREFIXES: Final = (
    ("gpt-5", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("chatgpt-", "o200k_base"),
    ("gpt-image", "o200k_base"),
    ("gpt-realtime", "o200k_base"),
    ("gpt-audio", "o200k_base"),
    ("codex-", "o200k_base"),
    ("computer-use", "o200k_base"),
    ("omni-moderation", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-oss", "o200k_harmony"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("gpt-35", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
    ("ft:gpt-4o", "o200k_base"),
    ("ft:gpt-4.1", "o200k_base"),
    ("ft:gpt-4", "cl100k_base"),
    ("ft:gpt-3.5", "cl100k_base"),
)
_ROUTER_PREFIXES: Final = ("openai/", "azure/", "models/", "anthropic/", "google/", "vertex_ai/", "gemini/")


def base_name(model: str) -> str:
    """``model`` lower-cased, without a router/provider prefix such as ``openai/`` or ``models/``."""
    name = model.strip().lower()
    for prefix in _ROUTER_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name


def provider_for_model(model: str) -> Provider:
    """The provider whose tokenizer a model uses, judged from its name alone."""
    name = base_name(model)
    if "claude" in name:
        return "anthropic"
    if name.startswith(("gemini", "gemma", "learnlm")):
        return "google"
    if encoding_for_model(model) is not None:
        return "openai"
    return "unknown"


@functools.lru_cache(maxsize=1024)  # called for every request's bound; names repeat
def encoding_for_model(model: str) -> str | None:
    """The tiktoken encoding an OpenAI model uses, or None when kakin has no exact offline
    tokenizer for it (Anthropic, Google, unknown names, and the retired r50k/p50k models)."""
    name = base_name(model)
    if "claude" in name or name.startswith(("gemini", "gemma")):
        return None
    try:
        known = encoding_name_for_model(name)
    except KeyError:
        known = None
    if known is not None:
        return known if known in VOCABULARY_OF else None
    for prefix, encoding_name in _PREFIXES:
        if name.startswith(prefix):
            return encoding_name
    return None

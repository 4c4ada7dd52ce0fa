"""Settings of the simulated provider."""

from __future__ import annotations

from dataclasses import dataclass

from kakin.providers.simulator.faults import NO_FAULTS, Faults, parse_faults


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """``required_key``: when set, requests must present it (any key is accepted otherwise).
    ``faults``: defaults applied to every request, in the ``x-kakin-simulate`` grammar
    (e.g. ``"error-rate=0.05; latency=20ms"`` for a demo with occasional failures).
    ``seed``: the seed of the error-rate sequence, so runs repeat."""

    required_key: str = ""
    faults: Faults = NO_FAULTS
    seed: int = 0
    # OpenAI caches prompt prefixes of ≥ 1024 tokens, in 128-token steps.
    openai_cache_min_tokens: int = 1024
    openai_cache_step: int = 128
    # Anthropic refuses to cache prefixes shorter than this (1024 for Sonnet/Opus).
    anthropic_cache_min_tokens: int = 1024
    # Upper limit on remembered prompts, token counts and cache entries.
    memory_entries: int = 4096

    @classmethod
    def from_spec(cls, faults: str = "", **kwargs: object) -> SimulatorConfig:
        return cls(faults=parse_faults(faults), **kwargs)  # type: ignore[arg-type]

"""Measured token density per language, and how wrong the character rules are.

The estimate kakin uses for providers without an offline tokenizer (≈1 token per Japanese
character, ≈4 English characters per token) is only useful if its error is known. This module
measures it against the exact o200k_base and cl100k_base counts on a sample corpus — by default
the Japanese and English texts shipped in ``kakin/tokens/corpus/`` (the same story told in both
languages) — and reports Japanese vs English tokens per character. docs/tokens.md quotes the
figures and the CLI prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Final

from kakin.errors import InvalidInput
from kakin.tokens.text import estimate_chars, text_upper_bound
from kakin.tokens.vocab import encoding

ENCODINGS: Final = ("o200k_base", "cl100k_base")


@dataclass(frozen=True, slots=True)
class SampleStats:
    """Exact counts and the character estimate for one text of the corpus."""

    label: str
    chars: int
    utf8_bytes: int
    tokens: dict[str, int]  # encoding → exact count
    estimate: int  # character rule (kakin.tokens.estimate_chars)
    upper_bound: int  # kakin.tokens.text_upper_bound

    def tokens_per_char(self, encoding_name: str) -> float:
        return self.tokens[encoding_name] / self.chars if self.chars else 0.0

    def chars_per_token(self, encoding_name: str) -> float:
        return self.chars / self.tokens[encoding_name] if self.tokens[encoding_name] else 0.0

    def estimate_error(self, encoding_name: str) -> float:
        """(estimate − exact) / exact: positive when the character rule over-counts."""
        exact = self.tokens[encoding_name]
        return (self.estimate - exact) / exact if exact else 0.0

    def bound_margin(self, encoding_name: str) -> float:
        """upper_bound / exact: how much credit the bound holds per real token."""
        exact = self.tokens[encoding_name]
        return self.upper_bound / exact if exact else 0.0


@dataclass(frozen=True, slots=True)
class LanguageRatios:
    samples: tuple[SampleStats, ...]

    def sample(self, label: str) -> SampleStats:
        for stats in self.samples:
            if stats.label == label:
                return stats
        raise InvalidInput(
            f"no sample labelled {label!r} in the corpus (have: {', '.join(s.label for s in self.samples)})"
        )

    def ja_over_en(self, encoding_name: str) -> float:
        """Japanese tokens per character ÷ English tokens per character."""
        english = self.sample("en").tokens_per_char(encoding_name)
        return self.sample("ja").tokens_per_char(encoding_name) / english if english else 0.0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready figures (floats rounded to 4 places)."""
        labels = {s.label for s in self.samples}
        return {
            "samples": [
                {
                    "label": s.label,
                    "chars": s.chars,
                    "utf8_bytes": s.utf8_bytes,
                    "estimate": s.estimate,
                    "upper_bound": s.upper_bound,
                    "encodings": {
                        name: {
                            "tokens": s.tokens[name],
                            "tokens_per_char": round(s.tokens_per_char(name), 4),
                            "chars_per_token": round(s.chars_per_token(name), 4),
                            "estimate_error": round(s.estimate_error(name), 4),
                            "bound_margin": round(s.bound_margin(name), 4),
                        }
                        for name in ENCODINGS
                    },
                }
                for s in self.samples
            ],
            "ja_over_en_tokens_per_char": (
                {name: round(self.ja_over_en(name), 4) for name in ENCODINGS}
                if {"ja", "en"} <= labels
                else None
            ),
        }


def sample_corpus() -> dict[str, str]:
    """The Japanese and English sample texts shipped with kakin."""
    folder = resources.files("kakin.tokens") / "corpus"
    return {label: (folder / f"{label}.txt").read_text(encoding="utf-8") for label in ("ja", "en")}


def language_ratios(corpus: dict[str, str] | None = None) -> LanguageRatios:
    """Measure tokens per character, the character rule's error and the bound's margin.

    ``corpus`` maps a label to a text; use labels ``ja`` and ``en`` to get the Japanese vs
    English ratio. Defaults to :func:`sample_corpus`."""
    texts = sample_corpus() if corpus is None else corpus
    if not isinstance(texts, dict) or not texts:
        raise InvalidInput("corpus must be a non-empty mapping of label → text")
    samples = []
    for label, text in texts.items():
        if not isinstance(text, str):
            raise InvalidInput(f"corpus[{label!r}] must be a string, got {type(text).__name__}")
        samples.append(
            SampleStats(
                label=str(label),
                chars=len(text),
                utf8_bytes=len(text.encode("utf-8", "surrogatepass")),
                tokens={name: len(encoding(name).encode_ordinary(text)) for name in ENCODINGS},
                estimate=estimate_chars(text),
                upper_bound=text_upper_bound(text),
            )
        )
    return LanguageRatios(tuple(samples))

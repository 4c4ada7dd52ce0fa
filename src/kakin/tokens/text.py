"""Counting the tokens of one piece of text.

OpenAI models are counted exactly with tiktoken. For everything else kakin returns two numbers:
an *estimate* (what the provider will probably report) and an *upper bound* (a figure the real
count can never exceed, which the gateway uses to hold credit before it forwards a request).

Estimate: characters, by script — CJK ideographs, kana, hangul and emoji ≈ 1 token each, other
non-ASCII characters ≈ 1 token per 2, ASCII ≈ 1 token per 4. Its measured error against the
exact OpenAI counts is reported by :func:`kakin.tokens.ratios.language_ratios`.

Upper bound: UTF-8 bytes. Every byte-level BPE token (Claude, GPT) and every SentencePiece
piece with byte fallback (Gemini, Gemma) covers at least one byte, so a tokenizer cannot emit
more tokens than there are bytes. Two refinements keep that true for SentencePiece: the bytes
are counted on the NFKC form too when it is longer (SentencePiece normalises before splitting),
and one token is added for the dummy-prefix piece it may put before the first word.

The hot path (:func:`count_text` for an OpenAI model) is one dict lookup, tiktoken's own
``encode_ordinary`` and a lookup of a pre-built result, so it runs at tiktoken's speed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from kakin.errors import InvalidInput
from kakin.tokens.models import encoding_for_model, provider_for_model
from kakin.tokens.vocab import encoding


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A token count and how far to trust it.

    ``tokens`` is the count (exact when ``exact``), ``upper_bound`` is never below the provider's
    real count (equal to ``tokens`` when exact), ``method`` says how both were obtained."""

    tokens: int
    upper_bound: int
    exact: bool
    method: str


CHAR_METHOD: Final = (
    "characters (CJK/kana/hangul/emoji 1 token each, other non-ASCII 2 chars/token, ASCII 4 chars/token)"
)
BOUND_METHOD: Final = "upper bound = UTF-8 bytes (+1)"

# CJK punctuation, kana, Han, Hangul, full-width forms, BMP emoji/dingbats and every astral
# character (emoji, rare Han) — scripts where one character is about one token or more.
_WIDE: Final = re.compile(
    "[\u1100-\u11ff\u2600-\u27bf\u2e80-\u303f\u3040-\u30ff\u3100-\u31ff\u3200-\u4dbf\u4e00-\u9fff"
    "\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00010000-\U0010ffff]"
)

# Results for counts below this are built once per encoding and shared (TokenCount is
# immutable): the hot path then allocates nothing for the short prompts that dominate traffic.
_SHARED_BELOW: Final = 4096
_MAX_ROUTES: Final = 4096


def estimate_chars(text: str) -> int:
    """Character-based token estimate (see module docstring); 0 for empty text."""
    length = len(text)
    if text.isascii():
        return (length + 3) // 4
    wide = len(_WIDE.findall(text))
    other_non_ascii = length - len(text.encode("ascii", "ignore")) - wide
    ascii_chars = length - wide - other_non_ascii
    return wide + (other_non_ascii + 1) // 2 + (ascii_chars + 3) // 4


def text_upper_bound(text: str) -> int:
    """A count no byte-level or byte-fallback tokenizer can exceed for ``text``."""
    if not text:
        return 0
    if text.isascii():
        return len(text) + 1
    size = len(text.encode("utf-8", "surrogatepass"))
    if not unicodedata.is_normalized("NFKC", text):
        size = max(size, len(unicodedata.normalize("NFKC", text).encode("utf-8", "surrogatepass")))
    return size + 1


class ExactRoute:
    """Everything count_text needs for one OpenAI encoding, resolved once."""

    __slots__ = ("encode", "method", "name", "shared")

    def __init__(self, encoding_name: str) -> None:
        self.name = encoding_name
        self.encode: Callable[[str], list[int]] = encoding(encoding_name).encode_ordinary
        self.method = f"tiktoken {encoding_name}"
        self.shared = [TokenCount(n, n, True, self.method) for n in range(_SHARED_BELOW)]

    def result(self, n: int) -> TokenCount:
        return self.shared[n] if n < _SHARED_BELOW else TokenCount(n, n, True, self.method)


# model name → (encode_ordinary, shared results, method), for models already seen.
_routes: dict[str, tuple[Callable[[str], list[int]], list[TokenCount], str]] = {}
_encoding_routes: dict[str, ExactRoute] = {}


def count_text(text: str, model: str) -> TokenCount:
    """Tokens of ``text`` for ``model``: exact for OpenAI models, else estimate + upper bound."""
    try:
        encode, shared, method = _routes[model]
        n = len(encode(text))
    except KeyError:
        return _count_text_first(text, model)
    except TypeError:
        return _count_text_first(text, model)  # unhashable model or non-string text: explained there
    if n < _SHARED_BELOW:
        return shared[n]
    return TokenCount(n, n, True, method)


def _count_text_first(text: str, model: str) -> TokenCount:
    """count_text for a model not seen yet (or bad input): validate, resolve, remember."""
    if not isinstance(model, str) or not model.strip():
        raise InvalidInput(f"model must be a non-empty string, got {model!r}")
    if not isinstance(text, str):
        raise InvalidInput(f"text to count must be a string, got {type(text).__name__}")
    route = exact_route(model)
    if route is not None:
        if len(_routes) < _MAX_ROUTES:
            _routes[model] = (route.encode, route.shared, route.method)
        return route.result(len(route.encode(text)))
    return estimate_text(text, model)


def exact_route(model: str) -> ExactRoute | None:
    """The resolved tiktoken route for an OpenAI model, or None when there is none."""
    name = encoding_for_model(model)
    if name is None:
        return None
    route = _encoding_routes.get(name)
    if route is None:
        route = _encoding_routes.setdefault(name, ExactRoute(name))
    return route


def estimate_text(text: str, model: str) -> TokenCount:
    """Estimate and strict upper bound for a model without an offline tokenizer."""
    bound = text_upper_bound(text)
    provider = provider_for_model(model)
    if provider == "unknown":
        # Unrecognised names are most often OpenAI-compatible deployments; o200k is the best guess.
        guess = len(encoding("o200k_base").encode_ordinary(text))
        return TokenCount(
            guess,
            max(guess, bound),
            False,
            f"estimate: tiktoken o200k_base for an unrecognised model; {BOUND_METHOD}",
        )
    return TokenCount(
        estimate_chars(text), bound, False, f"estimate for {provider}: {CHAR_METHOD}; {BOUND_METHOD}"
    )

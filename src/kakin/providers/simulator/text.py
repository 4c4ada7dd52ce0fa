"""Deterministic text for the simulated provider, with honest token counts.

The same prompt always yields the same answer (so a streamed request and its twin report
the same usage, and benchmarks repeat). The length comes from the prompt's digest or the
``tokens=`` fault; the answer is then cut to fit the request's output cap, and its tokens
are counted with ``kakin.tokens`` for the model asked, exactly as the gateway would count
them. Results are memoised: repeated prompts cost a dictionary lookup.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from kakin.tokens import count_text

_WORDS = (
    "budget", "token", "cost", "model", "request", "cache", "limit", "credit", "price", "stream",
    "answer", "input", "output", "month", "forecast", "project", "key", "invoice", "ledger", "usage",
    "the", "every", "is", "known", "before", "after", "spent", "and", "a", "clear", "small", "exact",
    "rate", "tier", "alert", "quota", "report", "metered", "kakin", "simple", "steady", "careful",
    "daily", "total", "balance", "grant", "charge", "settled", "reserved", "priced", "counted", "safe",
    "plan", "team", "gateway", "provider", "reply", "prompt", "context", "window", "share", "check",
)  # fmt: skip
_MIN_WORDS = 8
_SPREAD = 48


def digest(*parts: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part)
        h.update(b"\0")
    return h.digest()


@dataclass(frozen=True, slots=True)
class Completion:
    pieces: tuple[str, ...]
    tokens: int
    truncated: bool

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def _pieces(seed: bytes, words: int) -> list[str]:
    stream = hashlib.shake_128(seed).digest(max(words, 1))
    out: list[str] = []
    for index in range(words):
        word = _WORDS[stream[index] % len(_WORDS)]
        if index == 0:
            out.append(word.capitalize())
        else:
            out.append(" " + word)
    if out:
        out[-1] += "."
    return out


def natural_words(seed: bytes) -> int:
    return _MIN_WORDS + seed[0] % _SPREAD


@lru_cache(maxsize=8192)
def complete(seed: bytes, model: str, budget: int | None, words: int | None = None) -> Completion:
    """The answer for ``seed``, at most ``budget`` tokens of ``model`` (None: no cap)."""
    pieces = _pieces(seed, natural_words(seed) if words is None else words)
    tokens = count_text("".join(pieces), model).tokens if pieces else 0
    if budget is None or tokens <= budget:
        return Completion(tuple(pieces), tokens, False)
    low, high = 0, len(pieces)  # the longest prefix that fits: binary search on word count
    while low < high:
        middle = (low + high + 1) // 2
        if count_text("".join(pieces[:middle]), model).tokens <= budget:
            low = middle
        else:
            high = middle - 1
    kept = tuple(pieces[:low])
    return Completion(kept, count_text("".join(kept), model).tokens if kept else 0, True)


def is_reasoning_model(model: str) -> bool:
    """OpenAI o-series and gpt-5, Gemini 2.5+ think before answering."""
    name = model.lower().removeprefix("models/")
    if name.startswith(("o1", "o3", "o4", "gpt-5")):
        return "chat" not in name
    return name.startswith(("gemini-2.5", "gemini-3"))


_EFFORT = {"minimal": 0, "low": 1, "medium": 2, "high": 4}


def reasoning_tokens(seed: bytes, effort: str | None = None) -> int:
    """Hidden reasoning a reasoning model spends on ``seed``'s prompt."""
    factor = _EFFORT.get(effort or "medium", 2)
    return factor * (64 + seed[1] % 64)


def split(pieces: tuple[str, ...], chunks: int | None) -> list[str]:
    """Group the words into stream deltas: ``chunks`` of them, or about 4 words each."""
    if not pieces:
        return []
    count = chunks if chunks is not None else max(1, min(64, (len(pieces) + 3) // 4))
    count = min(count, len(pieces))
    size, extra = divmod(len(pieces), count)
    out: list[str] = []
    start = 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        out.append("".join(pieces[start:end]))
        start = end
    return out

"""Token-counting throughput: kakin.tokens.count_text vs tiktoken's Encoding called directly.

Both sides count the same texts in the same process, alternating round by round, best CPU time
of each side, so the ratio is insensitive to machine speed and to other load. Target: kakin ≥ 0.95 × direct tiktoken.

    .venv/bin/python bench/bench_tokens.py
"""

from __future__ import annotations

import time
from pathlib import Path

from kakin.tokens import count_text, encoding, encoding_for_model
from kakin.tokens.ratios import sample_corpus

ROUNDS = 15
CORPUS_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "corpus"


def workloads() -> dict[str, list[str]]:
    texts = [
        *sample_corpus().values(),
        *(p.read_text(encoding="utf-8") for p in sorted(CORPUS_DIR.glob("*.txt"))),
    ]
    lines = [line for text in texts for line in text.splitlines() if line.strip()]
    prompts = (lines * (20_000 // len(lines) + 1))[:20_000]  # short prompts, ~10–300 characters each
    document = "\n\n".join(texts) * 20  # one long document, ~150 KB
    tiny = [line[:16] for line in prompts]  # one-phrase prompts, ~3–10 tokens: per-call cost shows most here
    return {"tiny prompts": tiny, "short prompts": prompts, "long document": [document] * 10}


def measure(model: str, texts: list[str]) -> tuple[float, float, int]:
    encode_ordinary = encoding(encoding_for_model(model) or "o200k_base").encode_ordinary

    def direct() -> int:
        return sum(len(encode_ordinary(text)) for text in texts)

    def through_kakin() -> int:
        return sum(count_text(text, model).tokens for text in texts)

    assert direct() == through_kakin()  # same counts, and both sides warm
    best = {direct: float("inf"), through_kakin: float("inf")}
    # Alternate the two sides round by round so load from other processes hits both alike;
    # CPU time of this process, best round of each side.
    for _ in range(ROUNDS):
        for run in (direct, through_kakin):
            start = time.process_time()
            run()
            best[run] = min(best[run], time.process_time() - start)
    return best[direct], best[through_kakin], direct()


def main() -> None:
    print(f"{'model':<14}{'workload':<16}{'tokens':>10}{'direct tok/s':>16}{'kakin tok/s':>16}{'ratio':>8}")
    for model in ("gpt-4o", "gpt-4"):
        for name, texts in workloads().items():
            direct_s, kakin_s, tokens = measure(model, texts)
            ratio = direct_s / kakin_s
            print(
                f"{model:<14}{name:<16}{tokens:>10}{tokens / direct_s:>16,.0f}{tokens / kakin_s:>16,.0f}{ratio:>8.3f}"
            )


if __name__ == "__main__":
    main()

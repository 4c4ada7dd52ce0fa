"""Benchmark: pricing one request with kakin vs genai_prices.calc_price on the same usages.

Run: .venv/bin/python bench/bench_pricing.py [--requests N] [--repeat R]

Prints µs per priced request (the best of R short runs, warm caches: on a shared machine
the minimum over many short runs is the figure least disturbed by other work) for
  * kakin.pricing.price by model name (lookup + period selection + itemised cost),
  * the same, also building every CostItem (what an invoice or explain() reads),
  * kakin with a pre-resolved ModelEntry (the gateway's settle path),
  * genai_prices.calc_price, the baseline,
and the ratio of each to the baseline.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

import genai_prices

from kakin.catalog import Catalog
from kakin.pricing import Usage, price

MODELS = (
    ("openai", "gpt-4o"),
    ("openai", "gpt-5-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("google", "gemini-2.5-pro"),
    ("azure", "gpt-4o-mini"),
)


def _workload(count: int) -> list[tuple[str, str, Usage, genai_prices.Usage]]:
    rng = random.Random(7)
    work = []
    for index in range(count):
        provider, model = MODELS[index % len(MODELS)]
        total_input = rng.choice((rng.randint(50, 4_000), rng.randint(4_000, 260_000)))
        cached = rng.choice((0, total_input // 2))
        write = rng.choice((0, 0, total_input // 10)) if provider == "anthropic" else 0
        output = rng.randint(1, 4_000)
        ours = Usage(
            input_tokens=total_input, output_tokens=output, cache_read_tokens=cached, cache_write_tokens=write
        )
        theirs = genai_prices.Usage(
            input_tokens=total_input, output_tokens=output, cache_read_tokens=cached, cache_write_tokens=write
        )
        work.append((provider, model, ours, theirs))
    return work


def _best(run: Callable[[], None], count: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    at = datetime(2026, 11, 20, 12, tzinfo=UTC)
    catalog = Catalog.default()
    work = _workload(args.requests)
    entries = {(p, m): catalog.resolve(m, p) for p, m in MODELS}

    # Same answers first: the comparison is only meaningful if both compute the same thing.
    for provider, model, ours, theirs in work[:500]:
        expected = genai_prices.calc_price(theirs, model, provider_id=provider, genai_request_timestamp=at)
        assert price(ours, model, provider=provider, at=at).total == expected.total_price

    def kakin_by_name() -> None:
        for provider, model, ours, _ in work:
            price(ours, model, provider=provider, at=at)

    def kakin_with_items() -> None:
        for provider, model, ours, _ in work:
            tuple(price(ours, model, provider=provider, at=at).items)

    def kakin_entry() -> None:
        for provider, model, ours, _ in work:
            price(ours, entries[(provider, model)], at=at)

    def genai() -> None:
        for provider, model, _, theirs in work:
            genai_prices.calc_price(theirs, model, provider_id=provider, genai_request_timestamp=at)

    runs = {"genai": genai, "name": kakin_by_name, "items": kakin_with_items, "entry": kakin_entry}
    for warm in runs.values():
        warm()
    # Interleaved, so that a burst of other work on the machine hits every variant alike.
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(args.repeat):
        for key, run in runs.items():
            best[key] = min(best[key], _best(run, len(work), 1))
    baseline = best["genai"]
    figures = [
        ("kakin price() by name", best["name"]),
        ("kakin price() + all CostItems", best["items"]),
        ("kakin price() pre-resolved entry", best["entry"]),
    ]
    print(f"{len(work):,} priced requests per run, best of {args.repeat} runs, {len(MODELS)} models")
    print(f"  {'genai_prices.calc_price (baseline)':<36} {baseline:8.2f} µs/request  1.00×")
    for name, micros in figures:
        print(
            f"  {name:<36} {micros:8.2f} µs/request  {micros / baseline:.3f}× baseline ({baseline / micros:.1f}× faster)"
        )


if __name__ == "__main__":
    main()

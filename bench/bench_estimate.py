"""Estimates and CLI start-up: what the estimation layer adds on top of pricing.

Each figure is a ratio against a baseline measured in the same run:

* ``import kakin`` (lazy re-exports) against a bare interpreter start, and against importing
  everything it re-exports eagerly;
* ``kakin --help`` (the CLI with every command group registered) against a bare interpreter;
* a six-model scenario comparison against the six ``price()`` calls it is built on;
* a month-end forecast over a year of daily spend against summing the same 365 Decimals.

    .venv/bin/python bench/bench_estimate.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from kakin.estimate import compare_models, forecast_month, scenario
from kakin.pricing import Usage, price

MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1-mini",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "gemini-2.5-flash",
)
KAKIN = str(Path(sys.executable).with_name("kakin"))


def best_of(runs: int, action: Callable[[], object]) -> float:
    """Median wall time of ``runs`` calls, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def process(*argv: str) -> Callable[[], object]:
    return lambda: subprocess.run(argv, check=True, capture_output=True)


def per_call(calls: int, action: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        action()
    return (time.perf_counter() - start) / calls


def main() -> None:
    print("start-up (median of 7 processes)")
    bare = best_of(7, process(sys.executable, "-c", "pass"))
    lazy = best_of(7, process(sys.executable, "-c", "import kakin"))
    eager = best_of(
        7, process(sys.executable, "-c", "import kakin.pricing, kakin.catalog, kakin.tokens, kakin.estimate")
    )
    cli = best_of(7, process(KAKIN, "--help"))
    print(f"  baseline: python -c pass                 {bare * 1000:8.1f} ms")
    print(f"  import kakin (lazy)                      {lazy * 1000:8.1f} ms   {lazy / bare:5.2f}x baseline")
    print(
        f"  import pricing+catalog+tokens+estimate   {eager * 1000:8.1f} ms   {eager / bare:5.2f}x baseline"
    )
    print(f"  kakin --help                             {cli * 1000:8.1f} ms   {cli / bare:5.2f}x baseline")

    plan = scenario(requests_per_day=3000, input_tokens=1500, output_tokens=400, cached_share="30%")
    usage = Usage(input_tokens=1500, output_tokens=400, cache_read_tokens=450)
    compare_models(plan, MODELS)  # warm the catalog and model look-ups
    baseline = per_call(300, lambda: [price(usage, model) for model in MODELS])
    compared = per_call(300, lambda: compare_models(plan, MODELS))
    print("scenario across six models (warm catalog)")
    print(f"  baseline: six price() calls              {baseline * 1e6:8.1f} µs")
    print(
        f"  compare_models                           {compared * 1e6:8.1f} µs   {compared / baseline:5.2f}x baseline"
    )

    start = date(2025, 1, 1)
    daily = {start + timedelta(i): Decimal(10 + (i % 7) * 3) + Decimal(i % 5) / 7 for i in range(365)}
    values = list(daily.values())
    summed = per_call(300, lambda: sum(values, Decimal(0)))
    forecast = per_call(300, lambda: forecast_month(daily, window_days=366))
    print("month-end forecast over 365 days of spend")
    print(f"  baseline: sum of 365 Decimals            {summed * 1e6:8.1f} µs")
    print(
        f"  forecast_month (window 366)              {forecast * 1e6:8.1f} µs   {forecast / summed:5.1f}x baseline"
    )


if __name__ == "__main__":
    main()

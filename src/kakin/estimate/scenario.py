"""Monthly scenario: what a workload costs per month, compared across models.

A scenario describes traffic once (requests per day, the average request, cache hits,
retries, buffer, peak) and is priced on each model side by side, because the question people
ask is rarely "what will gpt-4o cost" but "which of these can we afford".

Per model, with ``c`` the cost of one average request (cached input at the cache-read rate)
and ``N = requests_per_day × days_per_month``:

* **low** ``= c × N`` — the planned traffic exactly: every request succeeds first time, no
  margin. The floor of the bill if the assumptions hold.
* **expected** ``= c × N × retry_factor × (1 + buffer)`` — what to budget: failed calls that
  are retried are billed again, and the buffer covers what averages miss.
* **peak** ``= expected × peak_factor`` — a month that runs at peak traffic (launch, campaign,
  a runaway loop): the figure to set a hard cap near.

Input tokens come either from an average or from sample prompts counted per model with
kakin.tokens (so a Japanese prompt is counted by each model's own tokenizer, or estimated
with its upper bound where no offline tokenizer exists).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from kakin.catalog import Catalog
from kakin.errors import InvalidInput
from kakin.estimate.inputs import (
    BUFFER,
    CALENDAR_DAYS,
    ONE,
    PEAK_FACTOR,
    REQUESTS_PER_DAY,
    RETRY_FACTOR,
    SHARE,
    TOKENS_PER_REQUEST,
    ZERO,
    days_per_month,
    number,
    round_tokens,
    settle,
    whole,
)
from kakin.estimate.shape import RequestShape, price_shape, resolve_model
from kakin.money import EXACT
from kakin.pricing import Cost

MAX_MODELS = 50
MAX_SAMPLES = 1000


@dataclass(frozen=True, slots=True)
class Scenario:
    """A monthly workload. Build with :func:`scenario` (validating) or from a TOML table with
    :func:`scenario_from_mapping`."""

    requests_per_day: Decimal
    input_tokens: int | None
    """Average input tokens per request (None when ``sample_prompts`` give them)."""
    output_tokens: int
    cached_share: Decimal = ZERO
    """Share of input tokens read from the prompt cache (0–1)."""
    retry_factor: Decimal = ONE
    """Billed attempts per successful request (1.05 = 5 % are retried once)."""
    buffer: Decimal = Decimal("0.2")
    """Safety margin on top of the expected figure (0–1; 10–30 % is usual)."""
    peak_factor: Decimal = Decimal(4)
    """Peak traffic as a multiple of the average (3–5× is usual)."""
    days_per_month: Decimal = CALENDAR_DAYS
    """Billable days: 30 (calendar), 22 (working days) or any number 1–31."""
    sample_prompts: tuple[str, ...] = ()
    mode: str = "standard"
    name: str = "scenario"

    @property
    def requests_per_month(self) -> Decimal:
        with localcontext(EXACT):
            return self.requests_per_day * self.days_per_month


def scenario(
    *,
    requests_per_day: object,
    output_tokens: object,
    input_tokens: object | None = None,
    sample_prompts: Sequence[str] = (),
    cached_share: object = 0,
    retry_factor: object = 1,
    buffer: object = "0.2",
    peak_factor: object = 4,
    days: object = "calendar",
    mode: str = "standard",
    name: str = "scenario",
) -> Scenario:
    """A validated :class:`Scenario`; every out-of-range input raises ``InvalidInput``."""
    if (input_tokens is None) == (not sample_prompts):
        raise InvalidInput(
            "give either the average input tokens per request or sample prompts to count, not both"
            if sample_prompts
            else "give the average input tokens per request (or sample prompts to count)"
        )
    if len(sample_prompts) > MAX_SAMPLES:
        raise InvalidInput(f"at most {MAX_SAMPLES} sample prompts are counted, got {len(sample_prompts)}")
    for index, prompt in enumerate(sample_prompts):
        if not isinstance(prompt, str) or not prompt:
            raise InvalidInput(f"sample prompt {index + 1} must be non-empty text")
    return Scenario(
        requests_per_day=number(requests_per_day, "requests per day", REQUESTS_PER_DAY),
        input_tokens=None
        if input_tokens is None
        else whole(input_tokens, "average input tokens per request", TOKENS_PER_REQUEST),
        output_tokens=whole(output_tokens, "average output tokens per request", TOKENS_PER_REQUEST),
        cached_share=number(cached_share, "cached share of input", SHARE),
        retry_factor=number(retry_factor, "retry factor (billed attempts per request)", RETRY_FACTOR),
        buffer=number(buffer, "buffer", BUFFER),
        peak_factor=number(peak_factor, "peak factor", PEAK_FACTOR),
        days_per_month=days_per_month(days),
        sample_prompts=tuple(sample_prompts),
        mode=mode,
        name=name,
    )


_FIELDS = {
    "name",
    "models",
    "requests_per_day",
    "input_tokens",
    "output_tokens",
    "sample_prompts",
    "cached_share",
    "retry_factor",
    "buffer",
    "peak_factor",
    "days",
    "mode",
}


def scenario_from_mapping(
    document: Mapping[str, Any], *, where: str = "scenario"
) -> tuple[Scenario, list[str]]:
    """A scenario and its model list from a parsed TOML/JSON table (see docs/estimate.md).

    Unknown keys are refused by name, so that a misspelt ``bufer`` is not silently ignored."""
    table = document.get("scenario", document)
    if not isinstance(table, Mapping):
        raise InvalidInput(f"{where}: [scenario] must be a table")
    unknown = sorted(set(table) - _FIELDS)
    if unknown:
        raise InvalidInput(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}"
        )
    models = table.get("models", [])
    if isinstance(models, str):
        models = [models]
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise InvalidInput(f"{where}: models must be a list of model names")
    samples = table.get("sample_prompts", [])
    if not isinstance(samples, list):
        raise InvalidInput(f"{where}: sample_prompts must be a list of strings")
    for key in ("requests_per_day", "output_tokens"):
        if key not in table:
            raise InvalidInput(f"{where}: {key} is required")
    mode = table.get("mode", "standard")
    name = table.get("name", "scenario")
    if not isinstance(mode, str) or not isinstance(name, str):
        raise InvalidInput(f"{where}: name and mode must be strings")
    result = scenario(
        requests_per_day=table["requests_per_day"],
        output_tokens=table["output_tokens"],
        input_tokens=table.get("input_tokens"),
        sample_prompts=samples,
        cached_share=table.get("cached_share", 0),
        retry_factor=table.get("retry_factor", 1),
        buffer=table.get("buffer", "0.2"),
        peak_factor=table.get("peak_factor", 4),
        days=table.get("days", "calendar"),
        mode=mode,
        name=name,
    )
    return result, list(models)


@dataclass(frozen=True, slots=True)
class ScenarioRow:
    """One model's month under the scenario."""

    model: str
    provider: str
    shape: RequestShape
    tokens_exact: bool
    """False when input tokens were estimated from sample prompts (no offline tokenizer)."""
    per_request: Decimal
    low: Decimal
    expected: Decimal
    peak: Decimal
    expected_per_day: Decimal
    peak_day: Decimal
    cost: Cost
    """The itemised cost of one average request."""
    cheapest: bool = False
    times_cheapest: Decimal | None = ONE
    """expected ÷ the cheapest model's expected (None when the cheapest is free)."""


@dataclass(frozen=True, slots=True)
class ScenarioComparison:
    scenario: Scenario
    rows: tuple[ScenarioRow, ...]
    """Sorted by expected monthly cost, cheapest first."""

    @property
    def cheapest(self) -> ScenarioRow:
        return self.rows[0]


def compare_models(
    plan: Scenario,
    models: Iterable[str],
    *,
    provider: str | None = None,
    at: datetime | None = None,
    catalog: Catalog | None = None,
) -> ScenarioComparison:
    """Price ``plan`` on each model; rows sorted by expected cost, the cheapest marked."""
    names = list(dict.fromkeys(m.strip() for m in models if m.strip()))
    if not names:
        raise InvalidInput("name at least one model to compare (e.g. gpt-4o-mini)")
    if len(names) > MAX_MODELS:
        raise InvalidInput(f"at most {MAX_MODELS} models can be compared at once, got {len(names)}")
    rows = [_row(plan, name, provider, at, catalog) for name in names]
    rows.sort(key=lambda r: (r.expected, r.provider, r.model))
    floor = rows[0].expected
    with localcontext(EXACT):
        marked = tuple(
            replace(
                row, cheapest=index == 0 or row.expected == floor, times_cheapest=_ratio(row.expected, floor)
            )
            for index, row in enumerate(rows)
        )
    return ScenarioComparison(plan, marked)


def _row(
    plan: Scenario, name: str, provider: str | None, at: datetime | None, catalog: Catalog | None
) -> ScenarioRow:
    entry = resolve_model(name, provider, catalog)
    inputs, exact = _input_tokens(plan, entry.model)
    with localcontext(EXACT):
        shape = RequestShape(inputs, plan.output_tokens, round_tokens(inputs * plan.cached_share))
    cost = price_shape(shape, entry, at=at, mode=plan.mode)
    with localcontext(EXACT):
        per_request = cost.total
        low = per_request * plan.requests_per_month
        expected = low * plan.retry_factor * (ONE + plan.buffer)
        peak = expected * plan.peak_factor
        per_day = settle(expected / plan.days_per_month)
    return ScenarioRow(
        model=entry.model,
        provider=entry.provider,
        shape=shape,
        tokens_exact=exact,
        per_request=per_request,
        low=low,
        expected=expected,
        peak=peak,
        expected_per_day=per_day,
        peak_day=per_day * plan.peak_factor,
        cost=cost,
    )


def _input_tokens(plan: Scenario, model: str) -> tuple[int, bool]:
    """Average input tokens: the given average, or the mean count of the sample prompts."""
    if plan.input_tokens is not None:
        return plan.input_tokens, True
    from kakin.tokens import count_text

    counts = [count_text(prompt, model) for prompt in plan.sample_prompts]
    with localcontext(EXACT):
        mean = Decimal(sum(c.tokens for c in counts)) / len(counts)
    return round_tokens(mean), all(c.exact for c in counts)


def _ratio(value: Decimal, floor: Decimal) -> Decimal | None:
    if floor == 0:
        return ONE if value == 0 else None
    return settle(value / floor, Decimal("0.0001"))

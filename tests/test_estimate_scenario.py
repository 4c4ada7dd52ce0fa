"""Monthly scenarios: the arithmetic checked by hand on a model with round prices."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kakin.catalog import Catalog
from kakin.errors import InvalidInput, UnknownModel
from kakin.estimate import compare_models, price_shape, request_shape, scenario, scenario_from_mapping
from kakin.pricing import Usage, price
from kakin.tokens import count_text

# USD per 1M tokens: cheap = 1 / 2 / 0.5 cached; dear = 4 / 8 (no cache price: cached input
# is billed as plain input).
CATALOG = Catalog.load(
    {
        "models": {
            "cheap-chat": {"provider": "openai", "input": "1", "output": "2", "cache_read": "0.5"},
            "dear-chat": {"provider": "openai", "input": "4", "output": "8"},
            "tiered-chat": {
                "provider": "openai",
                "input": "1",
                "output": "2",
                "tiers": [{"above": 100_000, "input": "2", "output": "4"}],
            },
        }
    }
)


def small_plan(**changes: object) -> object:
    values: dict[str, object] = {
        "requests_per_day": 100,
        "input_tokens": 1000,
        "output_tokens": 500,
        "cached_share": "20%",
        "retry_factor": "1.1",
        "buffer": "10%",
        "peak_factor": 3,
        "days": 30,
    }
    values.update(changes)
    return scenario(**values)  # type: ignore[arg-type]


def test_scenario_math_by_hand() -> None:
    # One request: 800 plain input × $1/M + 200 cached × $0.5/M + 500 output × $2/M
    #            = 0.0008 + 0.0001 + 0.001 = $0.0019
    # Month: 100/day × 30 days = 3,000 requests → low $5.70
    # Expected: 5.70 × 1.1 retries × 1.1 buffer = $6.897; peak ×3 = $20.691
    row = compare_models(small_plan(), ["cheap-chat"], catalog=CATALOG).rows[0]
    assert row.shape.input_tokens == 1000 and row.shape.cached_tokens == 200
    assert row.per_request == Decimal("0.0019")
    assert row.low == Decimal("5.7")
    assert row.expected == Decimal("6.897")
    assert row.peak == Decimal("20.691")
    assert row.expected_per_day == Decimal("0.2299")
    assert row.peak_day == Decimal("0.6897")


def test_cached_input_without_a_cache_price_is_billed_as_input() -> None:
    row = compare_models(small_plan(), ["dear-chat"], catalog=CATALOG).rows[0]
    # 1000 × $4/M + 500 × $8/M = 0.004 + 0.004
    assert row.per_request == Decimal("0.008")


def test_models_sorted_by_expected_cost_and_cheapest_marked() -> None:
    comparison = compare_models(small_plan(), ["dear-chat", "cheap-chat"], catalog=CATALOG)
    assert [r.model for r in comparison.rows] == ["cheap-chat", "dear-chat"]
    assert comparison.cheapest.model == "cheap-chat"
    assert [r.cheapest for r in comparison.rows] == [True, False]
    # 0.008 / 0.0019 = 4.2105…
    assert comparison.rows[1].times_cheapest == Decimal("4.2105")


def test_working_days_and_calendar_days() -> None:
    working = compare_models(small_plan(days="working"), ["cheap-chat"], catalog=CATALOG).rows[0]
    calendar = compare_models(small_plan(days="calendar"), ["cheap-chat"], catalog=CATALOG).rows[0]
    assert working.low == Decimal("0.0019") * 100 * 22
    assert calendar.low == Decimal("0.0019") * 100 * 30


def test_tiers_apply_per_request_not_to_the_monthly_total() -> None:
    # 3,000 requests × 1,000 input tokens is 3M tokens a month, but each request is far
    # below the 100k threshold: the base rate applies.
    row = compare_models(small_plan(cached_share=0), ["tiered-chat"], catalog=CATALOG).rows[0]
    assert row.per_request == Decimal("0.002")
    big = compare_models(small_plan(input_tokens=200_000, cached_share=0), ["tiered-chat"], catalog=CATALOG)
    assert big.rows[0].per_request == Decimal("200000") * 2 / 10**6 + Decimal("500") * 4 / 10**6


def test_sample_prompts_are_counted_per_model() -> None:
    samples = ["請求書の内訳を確認したいです。", "Please resend the May invoice to our billing address."]
    plan = scenario(requests_per_day=10, sample_prompts=samples, output_tokens=100)
    comparison = compare_models(plan, ["gpt-4o", "gpt-4"])
    by_model = {row.model: row for row in comparison.rows}
    for model in ("gpt-4o", "gpt-4"):
        counts = [count_text(text, model).tokens for text in samples]
        expected = (Decimal(sum(counts)) / len(counts)).to_integral_value(rounding="ROUND_HALF_UP")
        assert by_model[model].shape.input_tokens == int(expected)
        assert by_model[model].tokens_exact


def test_matches_pricing_a_request_directly_on_real_models() -> None:
    plan = small_plan()
    for row in compare_models(plan, ["gpt-4o-mini", "claude-haiku-4-5"]).rows:
        one = price(Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=200), row.model)
        assert row.per_request == one.total
        assert row.low == one.total * 3000


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"requests_per_day": 10**15}, "requests per day must be at most 1,000,000,000"),
        ({"requests_per_day": -1}, "requests per day must be at least 0"),
        ({"requests_per_day": "many"}, "requests per day must be a number"),
        ({"buffer": "500%"}, "buffer must be at most 100%"),
        ({"buffer": "-5%"}, "buffer must be at least 0%"),
        ({"retry_factor": "0.5"}, "retry factor (billed attempts per request) must be at least 1"),
        ({"peak_factor": 100}, "peak factor must be at most 20"),
        ({"cached_share": "1.5"}, "cached share of input must be at most 100%"),
        ({"input_tokens": "12.5"}, "average input tokens per request must be a whole number"),
        ({"input_tokens": 10**9}, "average input tokens per request must be at most 10,000,000"),
        ({"days": 0}, "must be at least 1"),
        ({"days": "fortnight"}, "must be a number"),
        ({"requests_per_day": float("nan")}, "must be a finite number"),
    ],
)
def test_absurd_inputs_are_refused_with_the_input_named(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        small_plan(**changes)
    assert fragment in str(caught.value)


def test_floats_are_read_as_written() -> None:
    plan = small_plan(cached_share=0.3, retry_factor=1.05)
    assert plan.cached_share == Decimal("0.3")
    assert plan.retry_factor == Decimal("1.05")


def test_unknown_model_names_the_closest() -> None:
    with pytest.raises(UnknownModel) as caught:
        compare_models(small_plan(), ["gpt-4o-minii"])
    assert "gpt-4o-mini" in caught.value.suggestions


def test_needs_models_and_input_tokens() -> None:
    with pytest.raises(InvalidInput, match="at least one model"):
        compare_models(small_plan(), [" "])
    with pytest.raises(InvalidInput, match="average input tokens"):
        scenario(requests_per_day=1, output_tokens=1)
    with pytest.raises(InvalidInput, match="not both"):
        scenario(requests_per_day=1, output_tokens=1, input_tokens=5, sample_prompts=["hi"])


def test_scenario_from_a_toml_table() -> None:
    plan, models = scenario_from_mapping(
        {
            "scenario": {
                "name": "bot",
                "models": ["cheap-chat", "dear-chat"],
                "requests_per_day": 100,
                "input_tokens": 1000,
                "output_tokens": 500,
                "cached_share": "20%",
                "retry_factor": 1.1,
                "buffer": 0.1,
                "peak_factor": 3,
                "days": 30,
            }
        }
    )
    assert models == ["cheap-chat", "dear-chat"]
    assert plan == small_plan(name="bot")


def test_scenario_table_refuses_misspelt_keys() -> None:
    with pytest.raises(InvalidInput, match="unknown key\\(s\\) bufer"):
        scenario_from_mapping({"requests_per_day": 1, "input_tokens": 1, "output_tokens": 1, "bufer": "10%"})
    with pytest.raises(InvalidInput, match="output_tokens is required"):
        scenario_from_mapping({"requests_per_day": 1, "input_tokens": 1})


def test_request_shape_rounds_cached_tokens() -> None:
    shape = request_shape(1001, 10, "50%")
    assert shape.cached_tokens == 501
    assert (
        price_shape(shape, "cheap-chat", catalog=CATALOG).total
        == (Decimal(500) * 1 + Decimal(501) * Decimal("0.5") + Decimal(10) * 2) / 10**6
    )

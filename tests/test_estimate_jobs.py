"""One-request estimates, image jobs and subscription break-evens, checked by hand."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kakin.catalog import Catalog
from kakin.errors import InvalidInput
from kakin.estimate import breakeven, estimate_request, image_job, image_options, request_from_json
from kakin.tokens import count_messages, count_text

CATALOG = Catalog.load(
    {
        "models": {
            "flat-chat": {"provider": "openai", "input": "1", "output": "2", "cache_read": "0.5"},
            "flat-image": {
                "provider": "openai",
                "kinds": ["image"],
                "input": "5",
                "output": "10",
                "images": {"1024x1024": {"low": "0.01", "high": "0.04"}, "1536x1024": {"high": "0.06"}},
                "image_default_size": "1024x1024",
                "image_default_quality": "high",
            },
        }
    }
)


# ----------------------------------------------------------------- one request


def test_exact_count_expected_and_worst_case() -> None:
    text = "Summarise our May invoice in three bullet points."
    tokens = count_text(text, "gpt-4o").tokens
    result = estimate_request("gpt-4o", text=text, max_tokens=400, expected_output_tokens=100)
    assert result.exact_input and result.input.tokens == tokens == result.input.upper_bound
    # gpt-4o: $2.50 / $10 per 1M tokens
    assert result.expected.total == (Decimal(tokens) * Decimal("2.5") + 100 * 10) / 10**6
    assert result.worst.total == (Decimal(tokens) * Decimal("2.5") + 400 * 10) / 10**6


def test_estimated_count_uses_the_upper_bound_for_the_worst_case() -> None:
    text = "先月の請求書について、モデル別の内訳を教えてください。"
    result = estimate_request("claude-haiku-4-5", text=text, max_tokens=300)
    assert not result.exact_input
    assert result.input.upper_bound > result.input.tokens
    assert result.expected_output_tokens == 150  # half of max_tokens by default
    # claude-haiku-4-5: $1 / $5 per 1M tokens
    assert result.worst.total == (Decimal(result.input.upper_bound) * 1 + 300 * 5) / 10**6
    assert result.expected.total < result.worst.total


def test_messages_and_request_bodies() -> None:
    body = {
        "model": "gpt-4o-mini",
        "max_completion_tokens": 256,
        "messages": [
            {"role": "system", "content": "丁寧に答えてください。"},
            {"role": "user", "content": "請求書を再発行できますか？"},
        ],
    }
    found = request_from_json(body)
    assert found["model"] == "gpt-4o-mini" and found["max_tokens"] == 256
    result = estimate_request("gpt-4o-mini", messages=found["messages"], max_tokens=found["max_tokens"])
    assert result.input.tokens == count_messages(body["messages"], "gpt-4o-mini").tokens
    assert request_from_json(body["messages"]) == {"messages": body["messages"]}
    with pytest.raises(InvalidInput, match="'messages' must be a non-empty list"):
        request_from_json({"messages": []})
    with pytest.raises(InvalidInput, match="expected a list of messages"):
        request_from_json("hello")


def test_cached_tokens_are_billed_at_the_cache_rate() -> None:
    result = estimate_request(
        "flat-chat",
        text="x" * 400,
        max_tokens=10,
        expected_output_tokens=0,
        cached_tokens=50,
        catalog=CATALOG,
    )
    plain = result.input.tokens - 50
    assert result.expected.total == (Decimal(plain) + Decimal(50) * Decimal("0.5")) / 10**6


def test_request_inputs_are_checked() -> None:
    with pytest.raises(InvalidInput, match="exactly one of them"):
        estimate_request("gpt-4o", max_tokens=10)
    with pytest.raises(InvalidInput, match="cannot exceed max_tokens"):
        estimate_request("gpt-4o", text="hi", max_tokens=10, expected_output_tokens=11)
    with pytest.raises(InvalidInput, match="max_tokens must be at least 0"):
        estimate_request("gpt-4o", text="hi", max_tokens=-1)
    with pytest.raises(InvalidInput, match=r"cached input tokens .* cannot exceed"):
        estimate_request("gpt-4o", text="hi", cached_tokens=100)


# ----------------------------------------------------------------- image jobs


def test_image_job_math_by_hand() -> None:
    # 25 finals × 2.5 attempts = 62.5 generations × $0.04 = $2.50; +20 % buffer = $3.00
    job = image_job(
        "flat-image", finals=25, attempts_per_final="2.5", quality="high", buffer="20%", catalog=CATALOG
    )
    assert (job.size, job.quality) == ("1024x1024", "high")
    assert job.generations == Decimal("62.5")
    assert job.subtotal == Decimal("2.5")
    assert job.buffer_amount == Decimal("0.5")
    assert job.total == Decimal("3")
    assert job.per_final == Decimal("0.12")
    assert job.naive == Decimal("1")  # 25 × $0.04: what the price list alone suggests


def test_image_job_adds_prompt_tokens_per_generation() -> None:
    job = image_job("flat-image", finals=10, size="1536x1024", prompt_tokens=200, buffer=0, catalog=CATALOG)
    # one generation: $0.06 image + 200 input tokens × $5/M = $0.061
    assert job.per_generation == Decimal("0.061")
    assert job.per_image_price == Decimal("0.06")
    assert job.total == Decimal("0.61")


def test_image_job_on_a_catalogued_model_uses_its_per_image_price() -> None:
    job = image_job("dall-e-3", finals=4, attempts_per_final=2, quality="hd", buffer="10%")
    assert job.per_image_price == Decimal("0.08")  # DALL·E 3, 1024×1024 HD
    assert job.total == Decimal("0.08") * 8 * Decimal("1.1")


def test_image_job_refusals_list_the_choices() -> None:
    with pytest.raises(InvalidInput, match="qualities: high, low"):
        image_job("flat-image", finals=1, quality="ultra", catalog=CATALOG)
    with pytest.raises(InvalidInput, match="no per-image prices"):
        image_job("flat-chat", finals=1, catalog=CATALOG)
    with pytest.raises(InvalidInput, match="number of final images must be at least 1"):
        image_job("flat-image", finals=0, catalog=CATALOG)
    with pytest.raises(InvalidInput, match="attempts per final image must be at most 100"):
        image_job("flat-image", finals=1, attempts_per_final=1000, catalog=CATALOG)
    with pytest.raises(InvalidInput, match="buffer must be at most 100%"):
        image_job("flat-image", finals=1, buffer="300%", catalog=CATALOG)


def test_image_options_lists_sizes_and_qualities() -> None:
    assert image_options("flat-image", catalog=CATALOG) == [
        ("1024x1024", "low", Decimal("0.01")),
        ("1024x1024", "high", Decimal("0.04")),
        ("1536x1024", "high", Decimal("0.06")),
    ]


# ----------------------------------------------------------------- break-even


def test_breakeven_math_by_hand() -> None:
    # one request: 1,000 input × $1/M + 500 output × $2/M = $0.002
    # a $20 plan pays off from 20 / 0.002 = 10,000 requests a month
    result = breakeven(20, "flat-chat", input_tokens=1000, output_tokens=500, catalog=CATALOG)
    assert result.per_request == Decimal("0.002")
    assert result.requests_per_month == 10_000
    assert result.tokens_per_month == 15_000_000
    assert result.requests_per_day == Decimal("333.33")
    assert result.verdict is None


def test_breakeven_rounds_up_to_whole_requests() -> None:
    # $0.0019 a request (20 % cached): 20 / 0.0019 = 10,526.3 → 10,527 requests
    result = breakeven(
        "20", "flat-chat", input_tokens=1000, output_tokens=500, cached_share="20%", catalog=CATALOG
    )
    assert result.requests_per_month == 10_527
    assert result.per_request * 10_526 < 20 <= result.per_request * 10_527


@pytest.mark.parametrize(
    ("usage", "winner", "api_cost", "saving"),
    [
        (2_000, "api", "4", "16"),
        (10_000, "either", "20", "0"),
        (25_000, "plan", "50", "30"),
    ],
)
def test_breakeven_verdict(usage: int, winner: str, api_cost: str, saving: str) -> None:
    result = breakeven(
        20, "flat-chat", input_tokens=1000, output_tokens=500, usage_requests_per_month=usage, catalog=CATALOG
    )
    assert result.verdict is not None
    assert result.verdict.winner == winner
    assert result.verdict.api_cost == Decimal(api_cost)
    assert result.verdict.saving == Decimal(saving)


def test_breakeven_working_days_per_day_figure() -> None:
    result = breakeven(20, "flat-chat", input_tokens=1000, output_tokens=500, days="working", catalog=CATALOG)
    assert result.requests_per_day == Decimal("454.55")  # 10,000 / 22


def test_breakeven_inputs_are_checked() -> None:
    with pytest.raises(InvalidInput, match=r"plan price per month \(USD\) must be at least 0\.01"):
        breakeven(0, "flat-chat", input_tokens=1, output_tokens=1, catalog=CATALOG)
    with pytest.raises(InvalidInput, match="both averages are 0"):
        breakeven(20, "flat-chat", input_tokens=0, output_tokens=0, catalog=CATALOG)
    with pytest.raises(InvalidInput, match="usage \\(requests per month\\) must be at least 0"):
        breakeven(
            20, "flat-chat", input_tokens=1, output_tokens=1, usage_requests_per_month=-3, catalog=CATALOG
        )

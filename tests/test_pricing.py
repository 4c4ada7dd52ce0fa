"""Pricing behaviour: exact totals, itemised lines, tiers, dates, modes, images, storage, audio."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib.metadata import version

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kakin.catalog import Catalog
from kakin.errors import InvalidInput, UnknownModel
from kakin.pricing import Usage, price

CATALOG = Catalog()
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
# The source label names the installed (locked) genai-prices release, whichever it is.
GENAI_SOURCE = f"genai-prices {version('genai-prices')}"


def test_seed_example_override_per_1k_prices_is_exact() -> None:
    catalog = Catalog.load(
        {"prices": [{"model": "gpt-4o", "per": "1K", "input": "0.005", "output": "0.015"}]}
    )
    cost = price(Usage(input_tokens=2_000, output_tokens=2_000), "gpt-4o", provider="openai", catalog=catalog)
    assert cost.total == Decimal("0.04")
    assert (cost.input, cost.output) == (Decimal("0.01"), Decimal("0.03"))
    assert [item.source for item in cost.items] == ["override: config", "override: config"]


def test_catalog_prices_a_plain_request_from_genai_prices() -> None:
    cost = price(Usage(input_tokens=1_000_000, output_tokens=1_000_000), "gpt-4o", at=NOW, catalog=CATALOG)
    assert cost.total == Decimal("12.5")  # $2.50 + $10 per 1M
    assert cost.provider == "openai" and cost.model == "gpt-4o"
    assert {item.source for item in cost.items} == {GENAI_SOURCE}


def test_price_change_at_a_date_prices_before_and_after_differently() -> None:
    # genai-prices records o3's cut from $10/$40 to $2/$8 per 1M on 2025-06-10.
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    before = price(
        usage, "o3", provider="openai", at=datetime(2025, 6, 9, 23, 59, tzinfo=UTC), catalog=CATALOG
    )
    after = price(usage, "o3", provider="openai", at=datetime(2025, 6, 10, 0, 0, tzinfo=UTC), catalog=CATALOG)
    assert (before.total, after.total) == (Decimal("50"), Decimal("10"))
    assert before.items[0].effective_from is None
    assert after.items[0].effective_from == date(2025, 6, 10)


def test_naive_datetimes_are_utc() -> None:
    usage = Usage(input_tokens=1_000_000)
    naive = price(usage, "o3", at=datetime(2025, 6, 10, 0, 30), catalog=CATALOG)
    assert naive.total == Decimal("2")
    assert naive.priced_at.tzinfo is UTC


def test_one_million_one_token_requests_cost_exactly_one_million_token_request() -> None:
    catalog = CATALOG
    entry = catalog.resolve("gpt-4o", "openai")
    one = Usage(input_tokens=1, output_tokens=1, requests=1)
    summed = sum((price(one, entry, at=NOW).total for _ in range(1_000_000)), Decimal(0))
    whole = price(Usage(input_tokens=1_000_000, output_tokens=1_000_000), entry, at=NOW).total
    assert summed == whole == Decimal("12.5")


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from(["gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash", "gpt-5-nano"]),
    parts=st.lists(st.integers(min_value=0, max_value=3_000), min_size=1, max_size=30),
    outputs=st.integers(min_value=0, max_value=50_000),
)
def test_splitting_usage_across_requests_never_changes_the_total(
    model: str, parts: list[int], outputs: int
) -> None:
    """Below any tier threshold, pricing is linear: the sum of the parts' prices is the price
    of their sum, to the last digit (no rounding anywhere)."""
    pieces = [Usage(input_tokens=n, output_tokens=outputs % (n + 1), cache_read_tokens=n // 3) for n in parts]
    combined = pieces[0]
    for piece in pieces[1:]:
        combined = combined + piece
    separate = sum((price(piece, model, at=NOW, catalog=CATALOG).total for piece in pieces), Decimal(0))
    together = Usage(
        input_tokens=combined.input_tokens,
        output_tokens=combined.output_tokens,
        cache_read_tokens=combined.cache_read_tokens,
    )
    assert price(together, model, at=NOW, catalog=CATALOG).total == separate


def test_every_cost_is_itemised_and_the_items_add_up() -> None:
    usage = Usage(input_tokens=10_000, output_tokens=2_000, cache_read_tokens=4_000, web_searches=2)
    cost = price(usage, "gpt-4o", provider="openai", at=NOW, catalog=CATALOG)
    lines = {item.component: item for item in cost.items}
    assert set(lines) == {"input", "cache_read", "output", "web_search"}
    assert lines["input"].quantity == 6_000  # the cached tokens are billed on their own line
    assert lines["input"].unit == "token"
    assert lines["input"].unit_price == Decimal("0.0000025")
    assert lines["cache_read"].amount == Decimal("0.005")
    assert lines["web_search"].unit == "search" and lines["web_search"].amount == Decimal("0.02")
    assert lines["web_search"].direction is None
    assert sum((item.amount for item in cost.items), Decimal(0)) == cost.total
    assert cost.input + cost.output + cost.other == cost.total
    for item in cost.items:
        assert item.quantity * item.unit_price == item.amount


def test_context_tier_applies_to_the_whole_request_above_the_threshold() -> None:
    below = price(
        Usage(input_tokens=200_000, output_tokens=1_000), "claude-sonnet-4-5", at=NOW, catalog=CATALOG
    )
    above = price(
        Usage(input_tokens=200_001, output_tokens=1_000), "claude-sonnet-4-5", at=NOW, catalog=CATALOG
    )
    assert below.total == Decimal("0.6") + Decimal("0.015")
    assert above.total == Decimal("200001") * Decimal("0.000006") + Decimal("0.0225")
    assert {item.tier for item in below.items} == {"input ≤ 200,000 tokens"}
    assert {item.tier for item in above.items} == {"input > 200,000 tokens"}


def test_anthropic_cache_writes_are_priced_by_ttl() -> None:
    usage = Usage(input_tokens=3_000, cache_write_tokens=1_000, cache_write_1h_tokens=1_000)
    cost = price(usage, "claude-sonnet-4-5", provider="anthropic", at=NOW, catalog=CATALOG)
    lines = {item.component: item.amount for item in cost.items}
    assert lines == {
        "input": Decimal("0.003"),
        "cache_write": Decimal("0.00375"),
        "cache_write_1h": Decimal("0.006"),
    }


def test_batch_mode_uses_batch_rates_only_where_the_catalog_has_them() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    standard = price(usage, "gpt-4o", at=NOW, catalog=CATALOG)
    batch = price(usage, "gpt-4o", at=NOW, mode="batch", catalog=CATALOG)
    assert batch.total == standard.total / 2
    assert batch.mode == "batch"
    # genai-prices records gpt-4o's batch rate from 2026-10-14 only; earlier batch requests
    # are priced at the standard rates, and the period says so.
    early = CATALOG.price_period(CATALOG.resolve("gpt-4o"), datetime(2026, 1, 1, tzinfo=UTC), "batch")
    assert not early.variant
    assert price(
        usage, "gpt-4o", at=datetime(2026, 1, 1, tzinfo=UTC), mode="batch", catalog=CATALOG
    ).total == (standard.total)


def test_flex_and_priority_service_tiers() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    totals = {
        mode: price(usage, "gpt-5", at=NOW, mode=mode, catalog=CATALOG).total for mode in ("flex", "priority")
    }
    assert totals == {"flex": Decimal("5.625"), "priority": Decimal("22.5")}


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown pricing mode 'turbo'"):
        price(Usage(input_tokens=1), "gpt-4o", mode="turbo", catalog=CATALOG)


def test_per_image_prices_by_size_and_quality() -> None:
    cost = price(Usage(images=2, image_size="1792x1024", image_quality="hd"), "dall-e-3", catalog=CATALOG)
    assert cost.total == cost.output == Decimal("0.24")
    (item,) = cost.items
    assert item.component == "image 1792x1024 hd"
    assert item.unit == "image" and item.unit_price == Decimal("0.120")
    assert item.source == "kakin images.toml: https://platform.openai.com/docs/pricing as of 2025-04-23"
    # no size or quality: the model's defaults
    assert price(Usage(images=1), "dall-e-3", catalog=CATALOG).total == Decimal("0.040")


def test_gpt_image_per_image_estimate_follows_the_output_token_price() -> None:
    cost = price(
        Usage(images=1, image_size="1024x1536", image_quality="medium"), "gpt-image-1", catalog=CATALOG
    )
    assert cost.total == 1584 * Decimal("40") / 1_000_000
    assert "1,584 output tokens" in cost.items[0].source
    mini = price(
        Usage(images=1, image_size="1536x1024", image_quality="high"), "gpt-image-1-mini", catalog=CATALOG
    )
    assert mini.total == 6208 * Decimal("8") / 1_000_000


def test_image_requests_that_cannot_be_priced_are_refused() -> None:
    with pytest.raises(InvalidInput, match=r"sizes: 1024x1024, 1024x1792, 1792x1024"):
        price(Usage(images=1, image_size="512x512"), "dall-e-3", catalog=CATALOG)
    with pytest.raises(InvalidInput, match="no per-image price"):
        price(Usage(images=1), "gpt-4o", catalog=CATALOG)
    with pytest.raises(InvalidInput, match="billed twice"):
        price(Usage(images=1, output_tokens=4_160), "gpt-image-1", catalog=CATALOG)


def test_gemini_context_cache_storage_per_token_hour() -> None:
    usage = Usage(cache_storage_token_hours=Decimal(2_000_000))  # 1M tokens kept for 2 hours
    cost = price(usage, "gemini-2.5-pro", provider="gemini", at=NOW, catalog=CATALOG)
    assert cost.total == Decimal("9.00")
    (item,) = cost.items
    assert (item.component, item.unit) == ("cache_storage", "token-hour")
    assert item.source.startswith("kakin cache_storage.toml: https://ai.google.dev/gemini-api/docs/pricing")


def test_audio_by_duration() -> None:
    # whisper-1's duration price comes from genai-prices ($0.36/hour = $0.006/minute)
    whisper = price(Usage(audio_seconds=Decimal(90)), "whisper-1", at=NOW, catalog=CATALOG)
    assert whisper.total == Decimal("0.009")
    assert whisper.items[0].source == GENAI_SOURCE
    # gpt-4o-transcribe has only token prices there; kakin's audio.toml adds the per-minute estimate
    transcribe = price(Usage(audio_seconds=Decimal("30.5")), "gpt-4o-transcribe", at=NOW, catalog=CATALOG)
    assert transcribe.total == Decimal("0.00305")
    assert transcribe.items[0].source.startswith("kakin audio.toml")


def test_usage_that_contradicts_itself_is_refused_with_the_numbers() -> None:
    # 80 cached + 50 audio tokens cannot both be part of 100 input tokens on a model that
    # prices each of them separately.
    usage = Usage(input_tokens=100, cache_read_tokens=80, input_audio_tokens=50)
    with pytest.raises(
        InvalidInput, match=r"cache_read_tokens \(80\), input_audio_tokens \(50\) together exceed"
    ):
        price(usage, "gpt-4o-realtime-preview", at=NOW, catalog=CATALOG)


def test_usage_validation() -> None:
    for bad in (
        {"input_tokens": -1},
        {"output_tokens": 1.5},
        {"input_tokens": True},
        {"input_tokens": 10**14},
        {"audio_seconds": "soon"},
        {"audio_seconds": -1},
        {"audio_seconds": float("inf")},
        {"cache_read_tokens": 5},
        {"input_tokens": 10, "cache_read_tokens": 6, "cache_write_tokens": 5},
        {"output_tokens": 3, "output_reasoning_tokens": 4},
        {"image_size": 1024},
    ):
        with pytest.raises(InvalidInput):
            Usage(**bad)
    usage = Usage(input_tokens=10, audio_seconds=12.25)
    assert usage.audio_seconds == Decimal("12.25")


def test_unknown_model_lists_the_closest_names() -> None:
    with pytest.raises(UnknownModel) as error:
        price(Usage(input_tokens=1), "gpt-4oo", provider="openai", catalog=CATALOG)
    assert "gpt-4o" in error.value.suggestions
    assert error.value.status == 404


def test_cost_serialises_to_exact_decimal_strings() -> None:
    cost = price(Usage(input_tokens=3, output_tokens=7), "gpt-4o-mini", at=NOW, catalog=CATALOG)
    data = json.loads(json.dumps(cost.to_dict()))
    assert data["total"] == "0.00000465"
    assert data["items"][0] == {
        "component": "input",
        "quantity": "3",
        "unit": "token",
        "unit_price": "0.00000015",
        "amount": "0.00000045",
        "tier": None,
        "effective_from": None,
        "source": GENAI_SOURCE,
        "direction": "input",
        "mode": "standard",
        "note": None,
    }


def test_explain_reads_as_a_bill() -> None:
    cost = price(
        Usage(input_tokens=250_000, output_tokens=1_000), "claude-sonnet-4-5", at=NOW, catalog=CATALOG
    )
    text = cost.explain()
    assert text.splitlines()[0].startswith(
        "anthropic/claude-sonnet-4-5 (standard) priced at 2026-11-20T12:00:00"
    )
    assert "input > 200,000 tokens" in text
    assert "250,000 token" in text
    assert text.splitlines()[-1].startswith("  total $1.52")

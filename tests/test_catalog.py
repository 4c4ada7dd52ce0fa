"""Catalog behaviour: lookup by provider and name, listings, rates in force, bounds, data files."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources

import genai_prices
import pytest
from genai_prices.data import providers as genai_providers

from kakin.catalog import Catalog, UnknownProvider
from kakin.errors import InvalidInput, UnknownModel
from kakin.pricing import Usage, price

CATALOG = Catalog()
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_dated_and_alias_names_resolve_to_the_canonical_model() -> None:
    assert CATALOG.resolve("gpt-4o-2024-08-06", "openai").model == "gpt-4o"
    assert CATALOG.resolve("GPT-4o", "OpenAI").model == "gpt-4o"
    assert CATALOG.resolve("gemini-2.5-flash-preview-09-2025", "google").model == "gemini-2.5-flash"


def test_provider_is_guessed_from_the_name_when_not_given() -> None:
    assert CATALOG.resolve("claude-sonnet-4-5").provider == "anthropic"
    assert CATALOG.resolve("gemini-2.5-pro").provider == "google"
    assert CATALOG.resolve("gpt-4o-mini").provider == "openai"
    assert CATALOG.resolve("dall-e-3").provider == "openai"


def test_gemini_is_an_alias_of_google() -> None:
    assert CATALOG.resolve("gemini-2.5-pro", "gemini").provider == "google"


def test_azure_serves_openai_models_at_openai_standard_rates() -> None:
    entry = CATALOG.resolve("gpt-4o", "azure")
    assert (entry.provider, entry.model, entry.price_provider) == ("azure", "gpt-4o", "openai")
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert price(usage, entry, at=NOW).total == price(usage, "gpt-4o", provider="openai", at=NOW).total
    # as in genai-prices, OpenAI's service tiers are not Azure's: priority is the standard rate there
    assert price(usage, entry, at=NOW, mode="priority").total == Decimal("12.5")


def test_unknown_models_and_providers_are_refused_with_hints() -> None:
    with pytest.raises(
        UnknownModel, match=r"unknown model 'claude-sonet-4-5' for provider 'anthropic'.*closest"
    ):
        CATALOG.resolve("claude-sonet-4-5", "anthropic")
    with pytest.raises(UnknownModel):
        CATALOG.resolve("no-such-model")
    with pytest.raises(UnknownProvider, match=r"unknown provider 'opneai' \(did you mean openai"):
        CATALOG.resolve("gpt-4o", "opneai")
    with pytest.raises(InvalidInput, match="model name is empty"):
        CATALOG.resolve("  ")


def test_listing_has_every_genai_model_and_kakin_image_models() -> None:
    for provider_id in ("openai", "anthropic", "google", "azure"):
        listed = {entry.model for entry in CATALOG.models(provider_id)}
        genai_ids = {m.id for p in genai_providers if p.id == provider_id for m in p.models}
        assert genai_ids <= listed
    openai = {entry.model: entry for entry in CATALOG.models("openai")}
    assert {"dall-e-2", "dall-e-3"} <= set(openai)
    assert openai["dall-e-3"].kinds == ("image",)
    assert openai["text-embedding-3-small"].kinds == ("embedding",)
    assert openai["whisper-1"].kinds == ("audio",)
    assert "chat" in openai["gpt-4o"].kinds
    assert openai["gpt-4o"].context_window == 128_000


def test_rates_for_listings_are_per_million_tokens() -> None:
    entry = CATALOG.resolve("gpt-4o", "openai")
    assert entry.rates_per_million(NOW) == {
        "input": Decimal("2.5"),
        "cache_read": Decimal("1.25"),
        "output": Decimal("10"),
    }
    assert entry.rates_per_million(NOW, "batch")["output"] == Decimal("5")


def test_price_period_tells_when_the_rates_started() -> None:
    entry = CATALOG.resolve("o3", "openai")
    period = CATALOG.price_period(entry, datetime(2025, 7, 1, tzinfo=UTC))
    assert period.effective_from == datetime(2025, 6, 10, tzinfo=UTC)
    assert period.component("input").price == Decimal("2")
    history = entry.history()
    assert [p.component("input").price for p in history] == [Decimal("10"), Decimal("2")]
    assert history[0].effective_until == history[1].effective_from


def test_bound_rates_cover_every_input_kind_and_the_tier_the_input_reaches() -> None:
    entry = CATALOG.resolve("claude-sonnet-4-5", "anthropic")
    small = CATALOG.bound_rates(entry, NOW, input_tokens=10_000)
    # the dearest input-side rate is the 1-hour cache write ($6/M), output $15/M
    assert (small.input, small.output) == (Decimal("0.000006"), Decimal("0.000015"))
    unknown_size = CATALOG.bound_rates(entry, NOW)
    assert (unknown_size.input, unknown_size.output) == (Decimal("0.000012"), Decimal("0.0000225"))
    assert unknown_size.tier == "highest tier"
    assert small.bound(10_000, 1_000) == Decimal("0.075")
    # whatever the request turns out to use, its cost stays within the bound
    usage = Usage(input_tokens=10_000, output_tokens=1_000, cache_write_1h_tokens=10_000)
    assert price(usage, entry, at=NOW).total <= small.bound(10_000, 1_000)


def test_bound_rates_of_image_models_give_the_dearest_image() -> None:
    rates = CATALOG.bound_rates(CATALOG.resolve("dall-e-3"), NOW)
    assert rates.per_image == Decimal("0.120")
    assert rates.bound(0, 0, images=2) == Decimal("0.240")


def test_time_of_day_prices_follow_the_utc_clock() -> None:
    """Off-peak prices (deepseek) are compiled per time of day and equal genai-prices'."""
    usage, theirs = (
        Usage(input_tokens=100_000, output_tokens=10_000),
        genai_prices.Usage(input_tokens=100_000, output_tokens=10_000),
    )
    for hour in range(24):
        at = datetime(2025, 3, 1, hour, 45, tzinfo=UTC)
        expected = genai_prices.calc_price(
            theirs, "deepseek-chat", provider_id="deepseek", genai_request_timestamp=at
        )
        assert (
            price(usage, "deepseek-chat", provider="deepseek", at=at, catalog=CATALOG).total
            == expected.total_price
        )


def _data_file(name: str) -> list[dict]:
    text = resources.files("kakin.catalog.data").joinpath(name).read_text(encoding="utf-8")
    return tomllib.loads(text)["models"]


@pytest.mark.parametrize("name", ["images.toml", "cache_storage.toml", "audio.toml"])
def test_every_kakin_data_entry_names_its_source_and_date(name: str) -> None:
    for entry in _data_file(name):
        assert entry["source"].startswith("https://")
        assert isinstance(entry["as_of"], date)
        assert entry["provider"] in ("openai", "google")


@pytest.mark.parametrize("name", ["cache_storage.toml", "audio.toml"])
def test_kakin_data_attaches_to_models_genai_prices_knows(name: str) -> None:
    for entry in _data_file(name):
        assert CATALOG.resolve(entry["model"], entry["provider"]).model == entry["model"]


def test_kakin_image_data_complements_genai_prices_without_replacing_it() -> None:
    for entry in _data_file("images.toml"):
        resolved = CATALOG.resolve(entry["model"], entry["provider"])
        table = resolved.period(NOW).images
        assert table is not None and table.source.startswith("kakin images.toml")
        if "output_tokens" in entry:
            # token-derived prices attach to the genai-prices model, whose token prices stay
            assert resolved.source.startswith("genai-prices")
            assert resolved.period(NOW).component("input") is not None

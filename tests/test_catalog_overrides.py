"""User overrides in TOML: private models, Azure deployments, discounts, dated prices, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path

import pytest

from kakin.catalog import Catalog
from kakin.errors import InvalidInput
from kakin.pricing import Usage, price

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
# The source label names the installed (locked) genai-prices release, whichever it is.
GENAI_SOURCE = f"genai-prices {version('genai-prices')}"
MILLION = Usage(input_tokens=1_000_000, output_tokens=1_000_000)

KAKIN_TOML = """
[server]
port = 8787

[catalog.models."llama-3-70b-onprem"]
provider = "openai"
name = "Llama 3 70B (our cluster)"
context_window = 128000
aliases = ["llama3"]
input = "0.50"
output = "1.50"
per_request = "0.0001"

[[catalog.prices]]
model = "gpt-4o"
per = "1K"
input = "0.005"
output = "0.015"

[[catalog.prices]]
model = "claude-sonnet-4-5"
effective_from = 2026-01-01
input = "2.40"
output = "12"
cache_read = "0.24"
cache_write = "3"
cache_write_1h = "4.80"
batch = { input = "1.20", output = "6" }
tiers = [{ above = 200000, input = "4.80", output = "18" }]

[[catalog.discounts]]
model = "gemini-2.5-flash"
percent = "15"
effective_from = 2026-06-01
effective_until = 2027-06-01

[catalog.azure.deployments]
prod-chat = "gpt-4o-mini"
"""


@pytest.fixture()
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "kakin.toml"
    path.write_text(KAKIN_TOML, encoding="utf-8")
    return path


def test_kakin_toml_catalog_section_is_read(config_file: Path) -> None:
    catalog = Catalog.load(config_file)
    cost = price(Usage(input_tokens=2_000, output_tokens=2_000), "gpt-4o", at=NOW, catalog=catalog)
    assert cost.total == Decimal("0.04")
    assert {item.source for item in cost.items} == {"override: kakin.toml"}


def test_private_deployment_is_a_model_of_its_own(config_file: Path) -> None:
    catalog = Catalog.load(config_file)
    entry = catalog.resolve("llama3", "openai")
    assert (entry.model, entry.name, entry.context_window) == (
        "llama-3-70b-onprem",
        "Llama 3 70B (our cluster)",
        128_000,
    )
    cost = price(MILLION, entry, at=NOW)
    assert cost.total == Decimal("2.0001")
    assert "llama-3-70b-onprem" in {e.model for e in catalog.models("openai")}


def test_dated_override_wins_from_its_date_only(config_file: Path) -> None:
    catalog = Catalog.load(config_file)
    usage = Usage(input_tokens=100_000, output_tokens=100_000)
    before = price(usage, "claude-sonnet-4-5", at=datetime(2025, 12, 31, 23, tzinfo=UTC), catalog=catalog)
    after = price(usage, "claude-sonnet-4-5", at=datetime(2026, 1, 1, tzinfo=UTC), catalog=catalog)
    assert before.total == Decimal("1.8")  # genai-prices' $3 + $15 per 1M
    assert after.total == Decimal("1.44")
    assert {item.source for item in before.items} == {GENAI_SOURCE}
    assert {item.source for item in after.items} == {"override: kakin.toml"}


def test_override_tiers_modes_and_cache_prices(config_file: Path) -> None:
    catalog = Catalog.load(config_file)
    big = Usage(
        input_tokens=300_000, output_tokens=1_000, cache_read_tokens=100_000, cache_write_1h_tokens=50_000
    )
    cost = price(big, "claude-sonnet-4-5", at=NOW, catalog=catalog)
    lines = {item.component: item for item in cost.items}
    assert lines["input"].amount == 150_000 * Decimal("0.0000048")
    assert lines["input"].tier == "input > 200,000 tokens"
    assert lines["cache_read"].amount == 100_000 * Decimal("0.00000024")  # no tier given: base price
    assert lines["cache_write_1h"].amount == 50_000 * Decimal("0.0000048")
    batch = price(
        Usage(input_tokens=1_000_000, output_tokens=1_000_000), "claude-sonnet-4-5", at=NOW, mode="batch"
    )
    assert price(MILLION, "claude-sonnet-4-5", at=NOW, mode="batch", catalog=catalog).total == Decimal("7.2")
    assert batch.total != Decimal("7.2")  # the default catalog is untouched


def test_discount_applies_between_its_dates(config_file: Path) -> None:
    catalog = Catalog.load(config_file)
    full = price(MILLION, "gemini-2.5-flash", at=datetime(2026, 5, 31, tzinfo=UTC), catalog=catalog).total
    discounted = price(MILLION, "gemini-2.5-flash", at=datetime(2026, 6, 1, tzinfo=UTC), catalog=catalog)
    ended = price(MILLION, "gemini-2.5-flash", at=datetime(2027, 6, 1, tzinfo=UTC), catalog=catalog).total
    assert discounted.total == full * Decimal("0.85")
    assert ended == full
    assert "15% discount (override: kakin.toml)" in discounted.items[0].source


def test_discount_composes_with_catalog_price_changes() -> None:
    catalog = Catalog.load({"discounts": [{"model": "o3", "percent": "50"}]})
    before = price(MILLION, "o3", at=datetime(2025, 6, 1, tzinfo=UTC), catalog=catalog).total
    after = price(MILLION, "o3", at=datetime(2025, 7, 1, tzinfo=UTC), catalog=catalog).total
    assert (before, after) == (Decimal("25"), Decimal("5"))


def test_azure_deployment_names_map_to_catalog_models(config_file: Path) -> None:
    catalog = Catalog.load(config_file)
    entry = catalog.resolve("prod-chat", "azure")
    assert (entry.provider, entry.model) == ("azure", "gpt-4o-mini")
    assert price(MILLION, "prod-chat", provider="azure", at=NOW, catalog=catalog).total == Decimal("0.75")


def test_override_images_and_cache_storage() -> None:
    catalog = Catalog.load(
        {
            "prices": [
                {
                    "model": "dall-e-3",
                    "effective_from": "2026-06-01",
                    "images": {"1024x1024": {"standard": "0.03", "hd": "0.06"}},
                    "image_default_quality": "standard",
                },
                {"model": "gemini-2.5-pro", "input": "1", "output": "8", "cache_storage": "3"},
            ]
        }
    )
    assert price(
        Usage(images=1), "dall-e-3", at=datetime(2026, 5, 1, tzinfo=UTC), catalog=catalog
    ).total == Decimal("0.040")
    assert price(Usage(images=1), "dall-e-3", at=NOW, catalog=catalog).total == Decimal("0.03")
    storage = price(
        Usage(cache_storage_token_hours=Decimal(1_000_000)), "gemini-2.5-pro", at=NOW, catalog=catalog
    )
    assert storage.total == Decimal("3")


def test_new_model_before_its_first_price_is_refused() -> None:
    catalog = Catalog.load(
        {"models": {"ft-support-bot": {"provider": "openai"}}}
        | {
            "prices": [
                {"model": "ft-support-bot", "effective_from": "2026-03-01", "input": "3", "output": "12"}
            ]
        }
    )
    assert price(MILLION, "ft-support-bot", at=NOW, catalog=catalog).total == Decimal("15")
    with pytest.raises(InvalidInput, match="has no price before 2026-03-01"):
        price(MILLION, "ft-support-bot", at=datetime(2026, 2, 1, tzinfo=UTC), catalog=catalog)


def test_metadata_only_declaration_keeps_catalog_prices() -> None:
    catalog = Catalog.load({"models": {"gpt-4o": {"name": "GPT-4o (EU)", "context_window": 64000}}})
    entry = catalog.resolve("gpt-4o", "openai")
    assert (entry.name, entry.context_window, entry.price_provider) == ("GPT-4o (EU)", 64_000, "openai")
    assert price(MILLION, entry, at=NOW).total == Decimal("12.5")


def test_provider_scoped_override_leaves_other_providers_alone() -> None:
    catalog = Catalog.load(
        {"prices": [{"model": "gpt-4o", "provider": "azure", "input": "2", "output": "8"}]}
    )
    assert price(MILLION, "gpt-4o", provider="azure", at=NOW, catalog=catalog).total == Decimal("10")
    assert price(MILLION, "gpt-4o", provider="openai", at=NOW, catalog=catalog).total == Decimal("12.5")


def test_default_catalog_reads_kakin_config(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAKIN_CONFIG", str(config_file))
    try:
        catalog = Catalog.default(reload=True)
        assert catalog.resolve("llama3", "openai").model == "llama-3-70b-onprem"
        assert Catalog.default() is catalog
    finally:
        monkeypatch.delenv("KAKIN_CONFIG")
        Catalog.default(reload=True)


def test_standalone_override_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('[[prices]]\nmodel = "gpt-4o-mini"\ninput = "0.1"\noutput = "0.4"\n', encoding="utf-8")
    assert price(MILLION, "gpt-4o-mini", at=NOW, catalog=Catalog.load(path)).total == Decimal("0.5")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"prices": [{"model": "gpt-4oo", "input": "1"}]},
            r"model 'gpt-4oo' is not in the catalog; closest known: gpt-4o",
        ),
        ({"prices": [{"model": "gpt-4o", "input": 0.1}]}, r"not a float .*write prices as strings"),
        ({"prices": [{"model": "gpt-4o", "input": "-1"}]}, r"must not be negative"),
        ({"prices": [{"model": "gpt-4o", "inptu": "1"}]}, r"unknown price 'inptu'"),
        ({"prices": [{"model": "gpt-4o"}]}, r"gives no prices"),
        ({"prices": [{"model": "gpt-4o", "input": "1", "per": "1G"}]}, r"per must be"),
        ({"prices": [{"model": "gpt-4o", "cache_read": "1"}]}, r"Missing ancestor price .*input_tokens"),
        ({"prices": [{"model": "gpt-4o", "input": "1", "effective_from": "June"}]}, r"must be a date"),
        (
            {"prices": [{"model": "gpt-4o", "input": "1", "tiers": [{"above": 100, "output": "2"}]}]},
            r"base output",
        ),
        (
            {"prices": [{"model": "gpt-4o", "input": "1"}, {"model": "gpt-4o", "input": "2"}]},
            r"repeats \[\[prices\]\] #1",
        ),
        ({"discounts": [{"model": "gpt-4o", "percent": "120"}]}, r"at most 100"),
        (
            {
                "discounts": [
                    {
                        "model": "gpt-4o",
                        "percent": "10",
                        "effective_from": "2026-02-01",
                        "effective_until": "2026-01-01",
                    }
                ]
            },
            r"effective_until must be after",
        ),
        ({"azure": {"deployments": {"prod": "gtp-4o"}}}, r"\[azure.deployments\].prod: model 'gtp-4o'"),
        ({"models": {"x": {"kinds": ["video"]}}}, r"kinds must be a list of chat, embedding, image, audio"),
        ({"pricing": []}, r"unknown section\(s\) pricing"),
    ],
)
def test_bad_overrides_fail_at_load_with_the_entry_named(document: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Catalog.load(document)


def test_invalid_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "kakin.toml"
    path.write_text("[catalog\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"kakin\.toml are not valid TOML"):
        Catalog.load(path)


def test_model_declared_without_provider_answers_under_any_provider() -> None:
    catalog = Catalog.load({"models": {"acme-chat": {"input": "1", "output": "2"}}})
    for provider in ("openai", "anthropic", None):
        assert price(MILLION, "acme-chat", provider=provider, at=NOW, catalog=catalog).total == Decimal("3")


def test_azure_deployments_of_configured_upstreams_are_known(tmp_path: Path) -> None:
    path = tmp_path / "kakin.toml"
    path.write_text(
        '[[providers]]\nname = "azure-eu"\nkind = "azure"\nbase_url = "https://eu.example"\n'
        '[providers.deployments]\nchat-eu = "gpt-4o"\n',
        encoding="utf-8",
    )
    assert Catalog.load(path).resolve("chat-eu", "azure").model == "gpt-4o"


def test_discount_reaches_per_image_prices_once() -> None:
    catalog = Catalog.load(
        {"discounts": [{"model": "gpt-image-1", "percent": "50"}, {"model": "dall-e-3", "percent": "25"}]}
    )
    token_derived = price(Usage(images=1, image_quality="low"), "gpt-image-1", at=NOW, catalog=catalog)
    assert token_derived.total == 272 * Decimal("40") / 1_000_000 / 2
    fixed = price(Usage(images=1), "dall-e-3", at=NOW, catalog=catalog)
    assert fixed.total == Decimal("0.030")

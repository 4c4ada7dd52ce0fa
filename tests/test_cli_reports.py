"""Each report in table, JSON and CSV, in USD and JPY, with the figures the library computes."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kakin.catalog import Catalog
from kakin.cli import app
from kakin.estimate import breakeven, compare_models, forecast_month, image_job, parse_daily_csv, scenario
from kakin.money import EXACT
from kakin.pricing import Usage, price
from kakin.tokens import count_text

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
AT = "2025-09-01"  # fixed date: prices do not move under the tests


def run(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def run_json(args: list[str]) -> object:
    return json.loads(run([*args, "--format", "json"]))


def run_csv(args: list[str]) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(run([*args, "--format", "csv"]))))


@pytest.fixture(autouse=True)
def _fixed_rates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray kakin.toml
    monkeypatch.delenv("KAKIN_CONFIG", raising=False)
    monkeypatch.delenv("KAKIN_CURRENCY", raising=False)
    monkeypatch.setenv("KAKIN_FX_JPY", "150")


PRICE = ["price", "gpt-4o", "--input", "2000", "--output", "500", "--cached", "1000", "--at", AT]


def test_price_in_every_format() -> None:
    expected = price(
        Usage(input_tokens=2000, output_tokens=500, cache_read_tokens=1000), "gpt-4o", at=parse_at(AT)
    )
    table = run(PRICE)
    assert "cache_read" in table and "total" in table and "genai-prices" in table

    data = run_json(PRICE)
    assert isinstance(data, dict)
    assert Decimal(data["total"]["amount"]) == expected.total
    assert {row["component"] for row in data["rows"]} == {"input", "cache_read", "output"}
    assert all(isinstance(row["amount"], str) for row in data["rows"])
    assert data["rows"][0]["source"].startswith("genai-prices")

    rows = run_csv(PRICE)
    assert rows[-1]["component"] == "total"
    assert Decimal(rows[-1]["amount_usd"]) == expected.total
    assert sum(Decimal(r["amount_usd"]) for r in rows[:-1]) == expected.total


def test_price_in_jpy_shows_the_rate() -> None:
    expected = price(
        Usage(input_tokens=2000, output_tokens=500, cache_read_tokens=1000), "gpt-4o", at=parse_at(AT)
    )
    table = run([*PRICE, "--currency", "JPY"])
    assert "¥" in table and "150 JPY/USD" in table
    data = run_json([*PRICE, "--currency", "JPY"])
    assert isinstance(data, dict)
    assert data["fx"] == {"currency": "JPY", "per_usd": "150", "source": "KAKIN_FX_JPY"}
    assert Decimal(data["total"]["amount"]) == expected.total * 150
    rows = run_csv([*PRICE, "--currency", "jpy"])
    assert "amount_jpy" in rows[0]


def test_price_images_and_batch_mode() -> None:
    data = run_json(
        ["price", "dall-e-3", "--images", "3", "--size", "1024x1024", "--quality", "hd", "--at", AT]
    )
    assert isinstance(data, dict)
    assert data["total"]["amount"] == "0.24"
    # genai-prices carries gpt-4o's batch rates from 2026-10-14 on
    batch = run_json(["price", "gpt-4o", "--input", "1000", "--mode", "batch", "--at", "2026-11-01"])
    standard = run_json(["price", "gpt-4o", "--input", "1000", "--at", "2026-11-01"])
    assert isinstance(batch, dict) and isinstance(standard, dict)
    assert Decimal(batch["total"]["amount"]) < Decimal(standard["total"]["amount"])


def test_models_listing() -> None:
    table = run(["models", "--provider", "anthropic"])
    assert "claude-haiku-4-5" in table
    data = run_json(["models", "--kind", "image", "--search", "dall"])
    assert isinstance(data, dict)
    assert {row["model"] for row in data["rows"]} >= {"dall-e-2", "dall-e-3"}
    rows = run_csv(["models", "--search", "gpt-4o-mini", "--provider", "openai"])
    mini = next(r for r in rows if r["model"] == "gpt-4o-mini")
    assert mini["input_usd"] == "0.15" and mini["output_usd"] == "0.6"


def test_tokens_counts_and_ratios() -> None:
    text = "請求書の内訳を教えてください"
    data = run_json(["tokens", text, "-m", "gpt-4o", "-m", "claude-sonnet-4-5", "--at", AT])
    assert isinstance(data, dict)
    rows = {row["model"]: row for row in data["rows"]}
    assert rows["gpt-4o"]["exact"] is True and rows["gpt-4o"]["tokens"] == rows["gpt-4o"]["upper_bound"]
    assert rows["claude-sonnet-4-5"]["exact"] is False
    assert rows["claude-sonnet-4-5"]["upper_bound"] >= rows["claude-sonnet-4-5"]["tokens"]
    # gpt-4o input: $2.50 per 1M tokens
    assert Decimal(rows["gpt-4o"]["input_cost"]) == Decimal(rows["gpt-4o"]["tokens"]) * Decimal("2.5") / 10**6
    jpy = run_csv(["tokens", text, "-m", "gpt-4o", "--currency", "JPY", "--at", AT])
    assert Decimal(jpy[0]["input_cost_jpy"]) == Decimal(rows["gpt-4o"]["input_cost"]) * 150
    table = run(["tokens", "--messages", str(EXAMPLES / "support-chat.json")])
    assert "gpt-4o-mini" in table  # the request body's own model

    ratios = run_json(["tokens", "--ratios"])
    assert isinstance(ratios, dict)
    assert Decimal(ratios["ja_over_en_tokens_per_char"]["o200k_base"]) > 1
    assert {row["sample"] for row in ratios["rows"]} == {"ja", "en"}
    assert "Japanese character costs" in run(["tokens", "--ratios"])
    assert run_csv(["tokens", "--ratios"])[0]["encoding"] == "o200k_base"


def test_estimate_one_request() -> None:
    data = run_json(
        ["estimate", "gpt-4o-mini", "--messages", str(EXAMPLES / "support-chat.json"), "--at", AT]
    )
    assert isinstance(data, dict)
    expected, worst = data["rows"]
    assert worst["output_tokens"] == 600  # max_tokens from the request body
    assert expected["output_tokens"] == 300
    assert Decimal(worst["cost"]) > Decimal(expected["cost"])
    assert data["input_exact"] is True

    table = run(["estimate", "claude-haiku-4-5", "先月の請求額を教えてください", "--max-tokens", "200"])
    assert "ESTIMATE" in table and "at most" in table
    rows = run_csv(["estimate", "gpt-4o", "hello there", "--max-tokens", "100", "--currency", "JPY"])
    assert [r["case"] for r in rows] == ["expected", "worst"] and "cost_jpy" in rows[0]


def test_scenario_from_the_example_file_matches_the_library() -> None:
    args = ["scenario", str(EXAMPLES / "support-bot.toml"), "--at", AT]
    data = run_json(args)
    assert isinstance(data, dict)
    plan = scenario(
        requests_per_day=3000,
        input_tokens=1500,
        output_tokens=400,
        cached_share="30%",
        retry_factor="1.05",
        buffer="20%",
        peak_factor=4,
    )
    models = [row["model"] for row in data["rows"]]
    library = compare_models(plan, models, at=parse_at(AT))
    assert models == [row.model for row in library.rows]  # sorted, cheapest first
    assert data["rows"][0]["cheapest"] is True and not any(r["cheapest"] for r in data["rows"][1:])
    for shown, row in zip(data["rows"], library.rows, strict=True):
        assert Decimal(shown["expected"]) == row.expected
        assert Decimal(shown["peak"]) == row.peak
    assert data["scenario"]["requests_per_month"] == "90000"

    table = run(args)
    assert "★" in table and "expected" in table
    rows = run_csv([*args, "--currency", "JPY"])
    assert Decimal(rows[0]["expected_jpy"]) == library.rows[0].expected * 150


def test_scenario_flags_override_the_file_and_samples_are_counted(tmp_path: Path) -> None:
    args = ["scenario", str(EXAMPLES / "support-bot.toml"), "-m", "gpt-4o", "-r", "10", "--days", "working"]
    data = run_json(args)
    assert isinstance(data, dict)
    assert [r["model"] for r in data["rows"]] == ["gpt-4o"]
    assert data["scenario"]["requests_per_month"] == "220"
    texts = ["How do I download last month's invoice?", "請求書を再発行してください。"]
    paths = []
    for index, text in enumerate(texts):
        paths += ["--sample", str(tmp_path / f"q{index}.txt")]
        (tmp_path / f"q{index}.txt").write_text(text, encoding="utf-8")
    data = run_json(["scenario", "-m", "gpt-4o", "-r", "10", "-o", "100", *paths])
    assert isinstance(data, dict)
    counts = [count_text(text, "gpt-4o").tokens for text in texts]
    assert data["rows"][0]["input_tokens"] == (sum(counts) + 1) // 2  # mean, rounded half up


def test_image_job_report() -> None:
    args = [
        "image-job",
        "gpt-image-1",
        "--finals",
        "40",
        "--attempts",
        "3",
        "--quality",
        "low",
        "--quality",
        "high",
        "--at",
        AT,
    ]
    data = run_json(args)
    assert isinstance(data, dict)
    by_quality = {row["quality"]: row for row in data["rows"]}
    for quality in ("low", "high"):
        job = image_job("gpt-image-1", finals=40, attempts_per_final=3, quality=quality, at=parse_at(AT))
        assert Decimal(by_quality[quality]["total"]) == job.total
    assert [r["quality"] for r in data["rows"]] == ["low", "high"]  # cheapest first
    assert "naive" in run(args)
    assert run_csv([*args, "--currency", "JPY"])[0]["total_jpy"]


def test_image_job_report_on_a_model_without_published_tokens_is_an_upper_bound() -> None:
    """gpt-image-2 takes any size and OpenAI publishes no output tokens per size: the report
    prices each size by kakin's bound and says it is one."""
    if Catalog.default().resolve("gpt-image-2", "openai").period().images is None:
        pytest.skip("the catalog has no gpt-image-2 bound")
    args = ["image-job", "gpt-image-2", "--finals", "2", "--size", "1024x1024", "--size", "3840x2160"]
    data = run_json(args)
    assert isinstance(data, dict)
    rows = {row["size"]: row for row in data["rows"]}
    assert all(row["upper_bound"] is True for row in rows.values())
    assert rows["3840x2160"]["image_tokens"] > rows["1024x1024"]["image_tokens"]
    for row in rows.values():  # the bound's tokens at the model's output rate
        tokens = row["image_tokens"]
        by_tokens = price(
            Usage(output_tokens=tokens, output_image_tokens=tokens), "gpt-image-2", provider="openai"
        )
        assert Decimal(row["per_image"]) == by_tokens.total
    assert any("upper bound" in note for note in data["notes"])
    assert "upper bound" in run(args)
    default = run_json(["image-job", "gpt-image-2", "-n", "1"])["rows"][0]  # type: ignore[index]
    assert (default["size"], default["quality"]) == ("3840x2160", "high")  # no size: the largest
    assert run_json(["image-job", "gpt-image-1", "-n", "1"])["rows"][0]["upper_bound"] is False  # type: ignore[index]
    refused = runner.invoke(app, ["image-job", "gpt-image-2", "-n", "1", "--size", "4096x4096"])
    assert refused.exit_code != 0 and "3840x2160" in refused.output


def test_breakeven_report() -> None:
    args = [
        "breakeven",
        "gpt-4o",
        "--plan-price",
        "20",
        "--input",
        "1000",
        "--output",
        "500",
        "--usage",
        "900",
        "--at",
        AT,
    ]
    data = run_json(args)
    assert isinstance(data, dict)
    library = breakeven(
        20, "gpt-4o", input_tokens=1000, output_tokens=500, usage_requests_per_month=900, at=parse_at(AT)
    )
    assert data["breakeven_requests_per_month"] == str(library.requests_per_month)
    assert data["verdict"]["winner"] == "api"
    assert Decimal(data["verdict"]["saving"]) == library.verdict.saving  # type: ignore[union-attr]
    assert "the API wins" in run(args)
    assert run_csv(args)[2]["what"] == "break-even"
    # Every note is a whole sentence (one used to stop at "…, subscription is").
    assert any(note.endswith("the subscription costs as much or less") for note in data["notes"])


def test_breakeven_usage_in_tokens_is_exact() -> None:
    """A usage in tokens is priced from the tokens (not from a rounded request count), and
    counts keep one JSON type: requests as decimal strings, tokens as integers."""
    args = ["breakeven", "gpt-4o-mini", "--plan-price", "20", "--usage-tokens", "5000000", "--at", AT]
    data = run_json(args)
    assert isinstance(data, dict)
    per_request = price(Usage(input_tokens=1000, output_tokens=500), "gpt-4o-mini", at=parse_at(AT)).total
    with localcontext(EXACT):
        api_cost = per_request * 5_000_000 / 1500
    assert Decimal(data["verdict"]["api_cost"]) == api_cost
    assert Decimal(data["verdict"]["saving"]) == 20 - api_cost
    usage_row = next(row for row in data["rows"] if row["what"] == "your usage")
    assert usage_row["tokens"] == 5_000_000
    assert Decimal(usage_row["cost"]) == api_cost
    assert isinstance(data["breakeven_requests_per_month"], str)
    assert all(row["requests"] is None or isinstance(row["requests"], str) for row in data["rows"])
    assert all(row["tokens"] is None or isinstance(row["tokens"], int) for row in data["rows"])
    break_even = next(row for row in data["rows"] if row["what"] == "break-even")
    assert break_even["requests"] == data["breakeven_requests_per_month"]
    assert break_even["tokens"] == data["breakeven_tokens_per_month"]


def _date_without_batch_rate(model: str) -> str:
    """A date at which the catalog has no batch rate of ``model``'s own."""
    entry = Catalog.default().resolve(model)
    for period in entry.history("batch"):
        if not period.variant:
            return (period.effective_from or datetime(2024, 1, 1, tzinfo=UTC)).date().isoformat()
    pytest.skip(f"the catalog has a batch rate for {model} at every date")


def test_price_in_a_mode_without_a_rate_says_so() -> None:
    at = _date_without_batch_rate("gpt-4o")
    args = ["price", "gpt-4o", "--mode", "batch", "--at", at, "--input", "1000", "--output", "10"]
    data = run_json(args)
    assert isinstance(data, dict)
    assert (data["mode"], data["billed_mode"]) == ("batch", "standard")
    assert all(row["mode"] == "standard" for row in data["rows"])
    assert any("no batch rate" in note for note in data["notes"])
    standard = price(Usage(input_tokens=1000, output_tokens=10), "gpt-4o", at=parse_at(at))
    assert Decimal(data["total"]["amount"]) == standard.total
    table = run(args)
    assert "batch asked, standard rates" in table and "no batch rate" in table


def test_price_in_a_mode_with_a_rate() -> None:
    entry = Catalog.default().resolve("gpt-4o")
    batch = [period for period in entry.history("batch") if period.variant]
    if not batch:
        pytest.skip("the catalog has no batch rate for gpt-4o")
    at = batch[-1].effective_from.date().isoformat()  # type: ignore[union-attr]
    data = run_json(["price", "gpt-4o", "--mode", "batch", "--at", at, "--input", "1000", "--output", "10"])
    assert isinstance(data, dict)
    assert (data["mode"], data["billed_mode"]) == ("batch", "batch")
    assert all(row["mode"] == "batch" for row in data["rows"])
    assert not any("no batch rate" in note for note in data["notes"])
    expected = price(Usage(input_tokens=1000, output_tokens=10), "gpt-4o", at=parse_at(at), mode="batch")
    assert Decimal(data["total"]["amount"]) == expected.total


def test_breakeven_plan_priced_in_yen() -> None:
    data = run_json(["breakeven", "gpt-4o", "--plan-price", "3000", "--plan-currency", "JPY", "--at", AT])
    assert isinstance(data, dict)
    assert data["plan_price"] == "20"  # ¥3,000 at 150 JPY/USD


def test_forecast_report() -> None:
    path = EXAMPLES / "daily-spend.csv"
    library = forecast_month(parse_daily_csv(path.read_text(encoding="utf-8")))
    data = run_json(["forecast", str(path)])
    assert isinstance(data, list) and len(data) == 2
    summary = data[0]["forecast"]
    assert Decimal(summary["projected"]) == library.projected
    assert Decimal(summary["low"]) <= Decimal(summary["projected"]) <= Decimal(summary["high"])
    assert summary["pattern"] == library.pattern
    table = run(["forecast", str(path), "--currency", "JPY"])
    assert "projected total" in table and "¥" in table
    assert "$" not in table  # the range note's deviation is in yen too, like every amount
    assert "s = ¥" in table
    rows = run_csv(["forecast", str(path), "--as-of", "2025-06-10"])
    assert rows[0]["figure"] == "spent to date"


def test_configured_display_currency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "kakin.toml"
    config.write_text('[currency]\ndisplay = "JPY"\nrates = { JPY = "140" }\n', encoding="utf-8")
    monkeypatch.setenv("KAKIN_CONFIG", str(config))
    data = run_json(["price", "gpt-4o", "--input", "1000000", "--at", AT])
    assert isinstance(data, dict)
    assert data["fx"]["per_usd"] == "140" and data["fx"]["currency"] == "JPY"
    assert data["total"]["amount"] == "350"  # $2.50 × 140


def test_demo_runs_to_completion() -> None:
    out = run(["demo", "--requests", "60"])
    for expected in (
        "Japanese customer-support bot",
        "gpt-4o-mini",
        "claude-haiku-4-5",
        "Image job",
        "¥",
        "$",
        # the live part: traffic through the gateway, the batch job stopped by its cap
        "Spend by model",
        "cache hits:",
        "nightly batch stopped",
        "HTTP 402",
        "ledger reconciles: yes",
    ):
        assert expected in out


def parse_at(text: str) -> object:
    from kakin.cli.inputs import parse_at as parse

    return parse(text)

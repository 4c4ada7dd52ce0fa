"""Every user mistake ends in one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kakin.catalog import Catalog
from kakin.cli import app

runner = CliRunner()


def user_error(args: list[str]) -> str:
    """Run the CLI, check the error contract, return the message."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_unknown_model_lists_the_closest_names() -> None:
    message = user_error(["price", "gpt-4oo", "--input", "100"])
    assert "unknown model 'gpt-4oo'" in message and "gpt-4o" in message
    message = user_error(["scenario", "-m", "claude-sonet-4-5", "-r", "10", "-i", "10", "-o", "10"])
    assert "claude-sonnet-4-5" in message


def test_the_unknown_model_hint_names_a_section_that_prices_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KAKIN_CONFIG", raising=False)
    message = user_error(["price", "my-llm", "--input", "1000"])
    section = message.split("add it in kakin.toml under [")[1].split("]")[0]
    (tmp_path / "kakin.toml").write_text(f'[{section}."my-llm"]\ninput = "1"\noutput = "2"\n')
    Catalog.default(reload=True)  # the CLI reads kakin.toml once per process
    try:
        result = runner.invoke(app, ["price", "my-llm", "--input", "1000", "--format", "json"])
        assert result.exit_code == 0, result.output  # the section the hint names is the one that works
        assert json.loads(result.stdout)["total"]["amount"] == "0.001"
        provider_hint = user_error(["price", "gpt-4o", "--input", "1", "--provider", "nope"])
        assert f"kakin.toml [{section}]" in provider_hint
    finally:
        (tmp_path / "kakin.toml").unlink()
        Catalog.default(reload=True)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["price", "gpt-4o", "--input", "-5"], "--input must be at least 0"),
        (["price", "gpt-4o", "--input", "lots"], "--input must be a number"),
        (["price", "gpt-4o", "--input", "1e15"], "--input must be at most"),
        (["price", "gpt-4o", "--input", "1.5"], "--input must be a whole number"),
        (["price", "gpt-4o"], "nothing to price"),
        (["price", "gpt-4o", "--input", "10", "--mode", "cheap"], "--mode must be one of"),
        (["price", "gpt-4o", "--input", "10", "--at", "last week"], "--at must be a date"),
        (["price", "gpt-4o", "--input", "10", "--currency", "XYZ"], "no exchange rate configured for XYZ"),
        (["price", "gpt-4o", "--input", "10", "--currency", "dollars"], "3-letter ISO code"),
        (["price", "gpt-4o", "--input", "10", "--format", "xml"], "'xml' is not one of"),
        (["price", "gpt-4o", "--images", "1", "--size", "9x9"], "no per-image price"),
        (
            ["scenario", "-m", "gpt-4o", "-r", "1000000000000000", "-i", "10", "-o", "10"],
            "requests per day must be at most",
        ),
        (
            ["scenario", "-m", "gpt-4o", "-r", "-3", "-i", "10", "-o", "10"],
            "requests per day must be at least 0",
        ),
        (
            ["scenario", "-m", "gpt-4o", "-r", "ten", "-i", "10", "-o", "10"],
            "requests per day must be a number",
        ),
        (
            ["scenario", "-m", "gpt-4o", "-r", "10", "-i", "10", "-o", "10", "--buffer", "500%"],
            "buffer must be at most 100%",
        ),
        (["scenario", "-m", "gpt-4o", "-r", "10", "-i", "10", "-o", "10", "--days", "45"], "at most 31"),
        (["scenario", "-r", "10", "-i", "10", "-o", "10"], "name the models"),
        (["estimate", "gpt-4o"], "exactly one of TEXT, --file or --messages"),
        (["estimate", "gpt-4o", "hi", "--max-tokens", "-1"], "max_tokens must be at least 0"),
        (["image-job", "gpt-image-1", "--finals", "0"], "number of final images must be at least 1"),
        (
            ["image-job", "gpt-image-1", "--finals", "5", "--attempts", "9999"],
            "attempts per final image must be at most 100",
        ),
        (["image-job", "gpt-4o", "--finals", "5"], "has no per-image prices"),
        (["breakeven", "gpt-4o", "--plan-price", "-20"], "--plan-price must be at least 0.01"),
        (
            ["breakeven", "gpt-4o", "--plan-price", "20", "--usage", "5", "--usage-per-day", "1"],
            "give your usage once",
        ),
        (["tokens"], "give exactly one of TEXT, --file or --messages"),
        (["tokens", "hello", "-m", "not-a-model-at-all"], "unknown model"),
        (["scenario", "--bogus"], "No such option"),
        (["price"], "Missing argument"),
        (["no-such-command"], "No such command"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], fragment: str) -> None:
    assert fragment in user_error(args)


def test_missing_files(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    assert "does not exist" in user_error(["scenario", missing + ".toml"])
    assert "does not exist" in user_error(["estimate", "gpt-4o", "--messages", missing + ".json"])
    assert "does not exist" in user_error(["estimate", "gpt-4o", "--file", missing + ".txt"])
    assert "does not exist" in user_error(["forecast", missing + ".csv"])
    assert "does not exist" in user_error(["tokens", "--file", missing + ".txt"])
    assert "is a directory" in user_error(["tokens", "--file", str(tmp_path)])


def test_malformed_files(tmp_path: Path) -> None:
    broken_toml = tmp_path / "plan.toml"
    broken_toml.write_text('[scenario\nmodels = ["gpt-4o"', encoding="utf-8")
    assert "is not valid TOML" in user_error(["scenario", str(broken_toml)])

    misspelt = tmp_path / "misspelt.toml"
    misspelt.write_text(
        'models = ["gpt-4o"]\nrequests_per_day = 10\ninput_tokens = 10\noutput_tokens = 10\nbufer = "10%"\n',
        encoding="utf-8",
    )
    assert "unknown key(s) bufer" in user_error(["scenario", str(misspelt)])

    broken_json = tmp_path / "chat.json"
    broken_json.write_text('{"messages": [{"role": "user", "content": "hi"}', encoding="utf-8")
    message = user_error(["estimate", "gpt-4o", "--messages", str(broken_json)])
    assert "is not valid JSON" in message and "line 1" in message

    not_chat = tmp_path / "other.json"
    not_chat.write_text('{"prompt": "hi"}', encoding="utf-8")
    assert "'messages' must be a non-empty list" in user_error(["tokens", "--messages", str(not_chat)])

    bad_message = tmp_path / "bad-message.json"
    bad_message.write_text('[{"role": "user", "content": 42}]', encoding="utf-8")
    user_error(["estimate", "gpt-4o", "--messages", str(bad_message)])

    binary = tmp_path / "prompt.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert "is not UTF-8 text" in user_error(["estimate", "gpt-4o", "--file", str(binary)])

    csv_file = tmp_path / "spend.csv"
    csv_file.write_text("date,spend\n2025-06-01,1\n2025-06-02,minus one\n", encoding="utf-8")
    assert "line 3 spend must be a number" in user_error(["forecast", str(csv_file)])


def test_invalid_configuration_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "kakin.toml"
    config.write_text("[currency]\ndisplay = 'JPY'\nrates = { JPY = 'cheap' }\n", encoding="utf-8")
    monkeypatch.setenv("KAKIN_CONFIG", str(config))
    message = user_error(["price", "gpt-4o", "--input", "10"])
    assert "configuration" in message or "JPY" in message


def test_a_provider_serving_an_unknown_api_family_is_a_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "kakin.toml"
    config.write_text(
        '[[providers]]\nname = "sim"\nkind = "simulator"\nbase_url = "builtin"\nserves = ["gemini"]\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("KAKIN_CONFIG", str(config))
    message = user_error(["org", "list"])  # refused on load, not a route that never matches
    assert "serves" in message and "'openai', 'anthropic', 'google' or 'azure'" in message


def test_help_is_not_an_error() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in (
        "models",
        "price",
        "tokens",
        "estimate",
        "scenario",
        "image-job",
        "breakeven",
        "forecast",
        "demo",
    ):
        assert command in result.stdout

"""The CLI as a user meets it: tables that never cut a number at 80 or 120 columns, help text
that shows what it says, ``--version``, the key commands' arguments and formats, and the demo's
printed commands that can be pasted as they are."""

from __future__ import annotations

import json
import re
import shlex
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path

import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from kakin.cli import app

runner = CliRunner()
WIDTHS = (80, 120)
WIDE = 400
# A whole word that is a number as the tables print them: counts, amounts, percentages, dates.
NUMBER = re.compile(r"^[-+]?[$¥€£]?\d[\d,]*(\.\d+)?[%×]?$|^\d{4}-\d\d-\d\dT[\d:]+[+-]\d\d:\d\d$")


@pytest.fixture(autouse=True)
def _here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("KAKIN_CONFIG", "KAKIN_CURRENCY", "KAKIN_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def kakin(*args: str, width: int = WIDE) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.stdout


def numbers(text: str) -> list[str]:
    return [word for line in text.splitlines() for word in line.split() if NUMBER.match(word)]


def assert_nothing_cut(args: list[str]) -> dict[int, str]:
    """At each width the table fits, and every number in it is one the full table shows."""
    whole = set(numbers(kakin(*args)))
    shown = {}
    for width in WIDTHS:
        out = shown[width] = kakin(*args, width=width)
        table_lines = [line for line in out.splitlines() if not line.startswith("  ")]  # notes are prose
        assert max(cell_len(line.rstrip()) for line in table_lines) <= width, out
        assert set(numbers(out)) <= whole, (width, set(numbers(out)) - whole, out)
    return shown


@pytest.fixture()
def ledger_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'kakin.db'}"
    db = ["--database-url", url]
    kakin("org", "create", "acme", "--payment-method", "card", *db)
    kakin(
        "credits", "grant", "acme", "--kind", "prepaid", "--amount", "123456.78", "--expires-in", "365d", *db
    )
    kakin(
        "credits", "grant", "acme", "--kind", "promotional", "--amount", "250",
        "--expires-at", "2099-03-31T23:59:59+09:00", *db,
    )  # fmt: skip
    kakin(
        "budget",
        "set",
        "acme",
        "--limit",
        "999999",
        "--thresholds",
        "50,80,90",
        "--name",
        "monthly engineering spend",
        *db,
    )
    kakin("budget", "set", "acme", "--limit-tokens", "120000000", "--period", "day", "--hard-cap", *db)
    return url


def test_a_models_table_at_80_columns_keeps_every_context_window_whole() -> None:
    args = ["models", "--search", "mini"]
    shown = assert_nothing_cut(args)
    rows = json.loads(kakin(*args, "--format", "json"))["rows"]
    for width in WIDTHS:
        for row in rows:
            if row["context"] is not None:
                assert f"{row['context']:,}" in numbers(shown[width]), (width, row)


def test_a_models_table_shows_each_price_per_million_exactly() -> None:
    args = ["models", "--search", "mini"]
    rows = json.loads(kakin(*args, "--format", "json"))["rows"]
    providers = {row["provider"] for row in rows}
    lines = [line.split() for line in kakin(*args).splitlines()]
    shown = [words[2:5] for words in lines if words and words[0] in providers]
    assert len(shown) == len(rows)
    for row, cells in zip(rows, shown, strict=True):  # $0.075 is not $0.08, nor $0.275 $0.28
        for price, cell in zip((row["input"], row["cache_read"], row["output"]), cells, strict=True):
            assert (
                cell == "—" if price is None else Decimal(cell.lstrip("$").replace(",", "")) == Decimal(price)
            ), (row, cells)


def test_a_models_table_in_another_currency_says_which() -> None:
    title = kakin("models", "--search", "gpt-4o-mini", "--currency", "JPY").splitlines()[0]
    assert "JPY per 1M tokens" in title and "USD" not in title


def test_credit_and_budget_tables_never_cut_a_number(ledger_url: str) -> None:
    db = ["--database-url", ledger_url]
    credits = assert_nothing_cut(["credits", "list", "acme", *db])
    grants = json.loads(kakin("credits", "list", "acme", *db, "--format", "json"))["rows"]
    for grant in grants:  # the expiry dates, whole at 120 columns
        assert grant["expires_at"] in numbers(credits[120])
    budgets = assert_nothing_cut(["budget", "list", "acme", *db])
    for width in WIDTHS:
        assert "$999,999.00" in numbers(budgets[width])
        assert "hard" in budgets[width]  # a hard cap never reads like a soft one
        assert "not shown at this width" in budgets[80]  # what did not fit is named, not cut
    assert "120,000,000" in numbers(budgets[120])
    assert_nothing_cut(["ledger", "show", "acme", *db])
    assert_nothing_cut(["keys", "list", "acme", *db])


def test_json_reports_say_null_where_tables_show_a_dash(ledger_url: str) -> None:
    db = ["--database-url", ledger_url]
    kakin("project", "create", "acme", "web", *db)
    kakin("keys", "create", "web", "server", "--org", "acme", *db)
    reports = {
        "ledger": ["ledger", "show", "acme"],
        "keys": ["keys", "list", "acme"],
        "orgs": ["org", "list"],
        "budgets": ["budget", "list", "acme"],
    }
    rows = {name: json.loads(kakin(*args, *db, "--format", "json"))["rows"] for name, args in reports.items()}
    for name, args in reports.items():
        assert "—" not in json.dumps(rows[name], ensure_ascii=False), name  # a program reads null, not a dash
        assert "—" in kakin(*args, *db), name  # the table still marks the empty cell
    [grant, *_] = rows["ledger"]
    assert grant["kind"] == "grant" and grant["reservation_id"] is None
    assert rows["keys"][0]["limits"] is None and rows["orgs"][0]["tier"] is None
    assert {budget["fired"] for budget in rows["budgets"]} == {None}


def test_every_help_shows_the_currency_options_sections() -> None:
    commands = [["--help"]]
    for command in app.registered_commands:
        commands.append([command.name or command.callback.__name__, "--help"])  # type: ignore[union-attr]
    helped = 0
    for args in commands:
        out = " ".join(kakin(*args).replace("│", " ").split())  # the words, out of their boxes
        if "--currency" in out and "Rate from" in out:
            helped += 1
            assert "kakin.toml [currency.rates]," in out and "Default: [currency] display" in out, args
    assert helped >= 3


def test_version_is_the_installed_one() -> None:
    assert kakin("--version").strip() == f"kakin {version('kakin')}"


def test_keys_list_takes_the_organisation_as_an_argument_and_create_speaks_json(ledger_url: str) -> None:
    db = ["--database-url", ledger_url]
    kakin("project", "create", "acme", "web", *db)
    kakin("org", "create", "other", *db)
    kakin("project", "create", "other", "api", *db)
    kakin("keys", "create", "api", "theirs", "--org", "other", *db)
    created = json.loads(
        kakin("keys", "create", "web", "server", "--org", "acme", "--rpm", "60", "--format", "json", *db)
    )
    [row] = created["rows"]
    assert row["key"].startswith("kk-") and row["name"] == "server" and "60 rpm" in row["limits"]
    assert "kakin keeps only a hash" in created["notes"][0]
    listed = json.loads(kakin("keys", "list", "acme", "--format", "json", *db))["rows"]
    assert [k["id"] for k in listed] == [row["id"]]  # only acme's key
    assert row["key"] not in json.dumps(listed)
    assert json.loads(kakin("keys", "list", "--org", "acme", "--format", "json", *db))["rows"] == listed
    both = runner.invoke(app, ["keys", "list", "acme", "--org", "other", *db])
    assert both.exit_code == 2 and "two organisations" in both.output


def test_the_demo_names_its_ledger_in_a_command_that_works_when_pasted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = kakin("demo", "--requests", "20", width=80)
    [line] = [line for line in out.splitlines() if "ledger show demo-co" in line]
    words = shlex.split(line)
    assert words[0].startswith("KAKIN_DATABASE_URL=sqlite:///")
    monkeypatch.setenv("KAKIN_DATABASE_URL", words[0].split("=", 1)[1])
    assert words[-3:] == ["ledger", "show", "demo-co"]
    entries = json.loads(kakin("ledger", "show", "demo-co", "--format", "json"))["rows"]
    assert entries[0]["kind"] == "grant" and any(entry["kind"] == "charge" for entry in entries)


@pytest.mark.slow
def test_the_kept_gateways_try_command_reaches_it_when_pasted(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    kakin_bin = str(Path(sys.executable).parent / "kakin")
    env = {**os.environ, "COLUMNS": "60"}  # a narrow terminal: nothing may be wrapped into the command
    demo = subprocess.Popen(
        [kakin_bin, "demo", "--keep-running", "--requests", "10"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert demo.stdout is not None
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        [tried] = [line for line in lines if "OPENAI_API_KEY=kk-" in line]
        *assignments, python, flag, code = shlex.split(tried)
        settings = dict(assignment.split("=", 1) for assignment in assignments)
        assert settings["OPENAI_BASE_URL"].startswith("http://127.0.0.1:")
        answered = subprocess.run(
            [str(tmp_path / python) if not Path(python).is_absolute() else python, flag, code],
            cwd=tmp_path,
            env={**os.environ, **settings},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert answered.returncode == 0 and answered.stdout.strip(), answered.stderr
    finally:
        demo.terminate()
        demo.wait(30)

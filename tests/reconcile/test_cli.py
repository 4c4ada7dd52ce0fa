"""`kakin reconcile import|imports|show` over the seeded ledger and the sample bills."""

from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

from kakin.cli import app
from kakin.ledger import Ledger

from .conftest import DATA

runner = CliRunner()


def kakin(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_import_twice_then_show_in_every_format(ledger: Ledger, acme: str, db_url: str) -> None:
    bill = str(DATA / "openai_costs.json")
    code, out = kakin(
        "reconcile", "import", bill, "--provider", "openai", "--database-url", db_url, "-f", "json"
    )
    assert code == 0, out
    assert json.loads(out)["rows"][0]["new"] is True
    code, out = kakin("reconcile", "import", bill, "-p", "openai", "--database-url", db_url, "-f", "json")
    assert (code, json.loads(out)["report"]) == (0, "Already imported openai_costs.json")
    code, out = kakin("reconcile", "imports", "--database-url", db_url, "-f", "json")
    assert [row["lines"] for row in json.loads(out)["rows"]] == [19]

    show = ("reconcile", "show", "-p", "openai", "--account", "proj_kakin", "--database-url", db_url)
    code, out = kakin(*show, "--flagged", "-f", "json")
    assert code == 0, out
    units, lines = json.loads(out)
    assert units["flagged"] == 5 and units["tolerance"] == {"usd": "0.01", "relative": "0.01"}
    assert [(r["day"], r["unit"], r["verdict"]) for r in lines["rows"]] == [
        ("2026-03-04", "cached_input", "missing at provider"),
        ("2026-03-04", "input", "missing at provider"),
        ("2026-03-04", "output", "missing at provider"),
        ("2026-03-06", "output", "provider higher"),
        ("2026-03-07", "output", "provider higher"),
    ]
    assert lines["rows"][3]["difference"] == "0.2"

    code, out = kakin(*show, "-f", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out[out.index("day,") :])))  # the lines, after the units
    assert len(rows) == 7 * 3 + 1  # gpt-4o by day and unit, and the other project
    assert {r["explained"] for r in rows} == {"data lag", "outside kakin", "FLAGGED", ""}
    assert {r["provider_cost_usd"] for r in rows if r["day"] == "2026-03-04"} == {""}

    code, out = kakin(*show)
    assert code == 0 and "5 line(s) flagged" in out and "UTC" in out


def test_a_malformed_file_is_one_line_of_error(ledger: Ledger, acme: str, db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"data": [{"start_time": 1772323200, "end_time": 1772409600, "results": [{"amount": {"value": "x", "currency": "usd"}, "line_item": "a, input"}]}]}'
    )
    code, out = kakin("reconcile", "import", str(bad), "-p", "openai", "--database-url", db_url)
    assert code == 2
    assert "bad.json: page 1, data[0].results[0].amount.value: 'x' is not an amount" in out
    code, out = kakin("reconcile", "import", str(bad), "-p", "azure", "--database-url", db_url)
    assert code == 2 and "openai, anthropic, google" in out

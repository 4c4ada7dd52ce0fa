"""`kakin report`, `kakin usage show|list` and `kakin ledger show` on a known dataset: the
same charges in Tokyo and in Los Angeles fall on each organisation's own days, the days add
up to the total, and every figure is exact."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from kakin.cli import app
from kakin.ledger import Ledger, Scope, UsageDetail

runner = CliRunner()


def line(component: str, quantity: int, amount: str, direction: str) -> dict[str, str]:
    return {
        "component": component,
        "quantity": str(quantity),
        "unit": "token",
        "unit_price": str(Decimal(amount) / quantity),
        "amount": amount,
        "tier": None,
        "effective_from": "2024-01-01",
        "source": "test prices",
        "direction": direction,
    }


# (UTC instant, model, project, with key, input, cached, output, cost lines, cache hit)
CHARGES = [
    # Tokyo 3/9 23:30, Los Angeles 3/9 06:30
    (datetime(2024, 3, 9, 14, 30, tzinfo=UTC), "gpt-4o", "web", True, 1000, 0, 200,
     [line("input", 1000, "0.0025", "input"), line("output", 200, "0.002", "output")], False),
    # Tokyo 3/10 00:30, Los Angeles 3/9 07:30
    (datetime(2024, 3, 9, 15, 30, tzinfo=UTC), "claude", "batch", False, 2000, 500, 100,
     [line("input", 1500, "0.003", "input"), line("cache_read", 500, "0.0001", "input"),
      line("output", 100, "0.0015", "output")], False),
    # Tokyo 3/10 16:30, Los Angeles 3/9 23:30: a cache hit that saved $0.0045
    (datetime(2024, 3, 10, 7, 30, tzinfo=UTC), "gpt-4o", "web", True, 0, 0, 0, [], True),
    # Tokyo 3/10 21:00, Los Angeles 3/10 05:00 (daylight saving time began at 02:00)
    (datetime(2024, 3, 10, 12, 0, tzinfo=UTC), "gpt-4o", "web", True, 100, 0, 10,
     [line("input", 100, "0.00025", "input"), line("output", 10, "0.0001", "output")], False),
]  # fmt: skip


@pytest.fixture()
def seeded(ledger: Ledger, clock, db_url: str) -> str:  # type: ignore[no-untyped-def]
    for name, zone in (("tokyo", "Asia/Tokyo"), ("la", "America/Los_Angeles")):
        org = ledger.create_org(name, timezone=zone, payment_label="card")
        projects = {p: ledger.create_project(org.id, p) for p in ("web", "batch")}
        key, _ = ledger.create_key(projects["web"].id, "server")
        for n, (at, model, project, keyed, given, cached, out, items, hit) in enumerate(CHARGES):
            clock.set(at)
            usage = UsageDetail(
                provider="sim",
                input_tokens=given,
                output_tokens=out,
                cached_tokens=cached,
                cost_items=items,
                request_id=f"{name}-req-{n}",
                cache_hit=hit,
                cache_saved=Decimal("0.0045") if hit else Decimal(0),
            )
            cost = sum((Decimal(i["amount"]) for i in items), Decimal(0))
            scope = Scope(org.id, projects[project].id, key.id if keyed else None, model)
            ledger.post(scope, cost, usage, idempotency_key=f"c{n}")
    return db_url


def run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def report(db: str, org: str, *args: str) -> dict:  # type: ignore[type-arg]
    return json.loads(
        run(
            "report",
            org,
            "--from",
            "2024-03-09",
            "--to",
            "2024-03-11",
            "--format",
            "json",
            *args,
            "--database-url",
            db,
        )
    )


def test_days_are_the_organisations_own_and_add_up_to_the_total(seeded: str) -> None:
    tokyo = report(seeded, "tokyo", "--by", "day")
    la = report(seeded, "la", "--by", "day")
    assert [(r["group"], r["cost"], r["requests"]) for r in tokyo["rows"]] == [
        ("2024-03-09", "0.0045", 1),
        ("2024-03-10", "0.00495", 3),
    ]
    assert [(r["group"], r["cost"], r["requests"]) for r in la["rows"]] == [
        ("2024-03-09", "0.0091", 3),
        ("2024-03-10", "0.00035", 1),
    ]
    for result, zone in ((tokyo, "Asia/Tokyo"), (la, "America/Los_Angeles")):
        assert result["timezone"] == zone and zone in result["report"]
        assert result["total"]["cost"] == "0.00945"
        assert sum(Decimal(r["cost"]) for r in result["rows"]) == Decimal(result["total"]["cost"])
    assert la["from"] == "2024-03-09T00:00:00-08:00" and la["to"] == "2024-03-11T00:00:00-07:00"


def test_hours_models_projects_keys_and_units(seeded: str) -> None:
    hours = report(seeded, "tokyo", "--by", "hour")
    assert [r["group"] for r in hours["rows"]] == [
        "2024-03-09T23:00+09:00",
        "2024-03-10T00:00+09:00",
        "2024-03-10T16:00+09:00",
        "2024-03-10T21:00+09:00",
    ]
    models = report(seeded, "tokyo", "--by", "model")
    assert [
        (r["group"], r["cost"], r["requests"], r["input_tokens"], r["output_tokens"]) for r in models["rows"]
    ] == [
        ("gpt-4o", "0.00485", 3, 1100, 210),
        ("claude", "0.0046", 1, 2000, 100),
    ]
    projects = report(seeded, "tokyo", "--by", "project")
    assert [(r["name"], r["cost"], r["saved"]) for r in projects["rows"]] == [
        ("web", "0.00485", "0.0045"),
        ("batch", "0.0046", "0"),
    ]
    keys = report(seeded, "tokyo", "--by", "key")
    assert [(r["name"].split(" ")[0], r["cost"]) for r in keys["rows"]] == [
        ("server", "0.00485"),
        ("no", "0.0046"),
    ]
    units = report(seeded, "tokyo", "--by", "unit")
    assert [(r["unit"], r["quantity"], r["cost"]) for r in units["rows"]] == [
        ("input", "2600", "0.00575"),
        ("cached_input", "500", "0.0001"),
        ("output", "310", "0.0036"),
        ("requests", "4", "0"),
    ]
    assert units["total"]["cost"] == "0.00945"
    only = report(seeded, "tokyo", "--by", "day", "--project", "web", "--model", "gpt-4o")
    assert [(r["group"], r["cost"]) for r in only["rows"]] == [
        ("2024-03-09", "0.0045"),
        ("2024-03-10", "0.00035"),
    ]
    assert only["total"]["cache_hits"] == 1 and only["total"]["cache_saved"] == "0.0045"
    # A model filter takes any name the catalog prices as the model usage is recorded under.
    dated = report(seeded, "tokyo", "--by", "day", "--project", "web", "--model", "gpt-4o-2024-08-06")
    assert dated["rows"] == only["rows"] and dated["total"] == only["total"]


def test_csv_table_and_currency(seeded: str) -> None:
    rows = list(
        csv.DictReader(
            io.StringIO(
                run("report", "la", "--from", "2024-03-09", "--to", "2024-03-11", "--format", "csv",
                    "--currency", "JPY", "--database-url", seeded)
            )
        )
    )  # fmt: skip
    assert [r["group"] for r in rows] == ["2024-03-09", "2024-03-10", "total"]
    assert "cost_jpy" in rows[0] and {r["timezone"] for r in rows} == {"America/Los_Angeles"}
    table = run("report", "la", "--from", "2024-03-09", "--to", "2024-03-11", "--database-url", seeded)
    assert "America/Los_Angeles" in table and "2024-03-09" in table and "total" in table


def test_bad_ranges_are_refused(seeded: str) -> None:
    result = runner.invoke(
        app, ["report", "tokyo", "--from", "2024-03-10", "--to", "2024-03-09", "--database-url", seeded]
    )
    assert result.exit_code == 2 and "must be after" in result.output
    result = runner.invoke(
        app,
        [
            "report",
            "tokyo",
            "--by",
            "day",
            "--from",
            "2024-03-09T10:00",
            "--to",
            "2024-03-10",
            "--database-url",
            seeded,
        ],
    )
    assert result.exit_code == 2 and "whole days" in result.output
    result = runner.invoke(app, ["report", "--database-url", seeded])
    assert result.exit_code == 2 and "tokyo" in result.output  # two organisations: name one


def test_one_request_shows_its_itemised_cost(seeded: str) -> None:
    shown = json.loads(run("usage", "show", "tokyo-req-1", "--format", "json", "--database-url", seeded))
    summary, units, items = shown
    facts = {row["field"]: row["value"] for row in summary["rows"]}
    assert facts["model"] == "claude (sim)" and facts["started"] == "2024-03-10T00:30:00+09:00"
    assert facts["key"] == "no key" and facts["project"].startswith("batch")
    assert summary["timezone"] == "Asia/Tokyo" and summary["cost"] == "0.0046"
    assert [(r["unit"], r["quantity"], r["cost"]) for r in units["rows"]] == [
        ("input", "1500", "0.003"),
        ("cached_input", "500", "0.0001"),
        ("output", "100", "0.0015"),
        ("requests", "1", "0"),
    ]
    assert [(r["component"], r["amount"], r["source"], r["effective_from"]) for r in items["rows"]] == [
        ("input", "0.003", "test prices", "2024-01-01"),
        ("cache_read", "0.0001", "test prices", "2024-01-01"),
        ("output", "0.0015", "test prices", "2024-01-01"),
    ]
    hit = json.loads(run("usage", "show", "la-req-2", "--format", "json", "--database-url", seeded))
    assert {r["field"]: r["value"] for r in hit[0]["rows"]}["cache"] == "hit"
    assert hit[0]["cache_saved"] == "0.0045"
    missing = runner.invoke(app, ["usage", "show", "nope", "--database-url", seeded])
    assert missing.exit_code == 2 and "no request" in missing.output


def test_the_request_log_pages_newest_first(seeded: str) -> None:
    first = json.loads(
        run("usage", "list", "tokyo", "--limit", "3", "--format", "json", "--database-url", seeded)
    )
    assert [r["request_id"] for r in first["rows"]] == ["tokyo-req-3", "tokyo-req-2", "tokyo-req-1"]
    rest = json.loads(
        run(
            "usage",
            "list",
            "tokyo",
            "--limit",
            "3",
            "--after",
            first["next"],
            "--format",
            "json",
            "--database-url",
            seeded,
        )
    )
    assert [r["request_id"] for r in rest["rows"]] == ["tokyo-req-0"] and rest["next"] is None
    web = json.loads(
        run("usage", "list", "tokyo", "--project", "web", "--format", "json", "--database-url", seeded)
    )
    assert {r["model"] for r in web["rows"]} == {"gpt-4o"} and len(web["rows"]) == 3


def test_ledger_show_names_the_model_and_tokens_of_each_charge(seeded: str) -> None:
    shown = json.loads(run("ledger", "show", "tokyo", "--format", "json", "--database-url", seeded))
    charges = [r for r in shown["rows"] if r["kind"] == "charge"]
    assert [(r["model"], r["input_tokens"], r["output_tokens"], r["request_id"]) for r in charges] == [
        ("gpt-4o", 1000, 200, "tokyo-req-0"),
        ("claude", 2000, 100, "tokyo-req-1"),
        ("gpt-4o", 100, 10, "tokyo-req-3"),
    ]  # the cache hit charged nothing: no entry


def test_whatif_reprices_each_models_usage_with_the_catalog(seeded: str) -> None:
    from kakin.catalog import Catalog
    from kakin.pricing import Usage, price

    shown = json.loads(
        run("whatif", "tokyo", "--model", "gpt-4o-mini", "--from", "2024-03-09", "--to", "2024-03-11",
            "--format", "json", "--database-url", seeded)
    )  # fmt: skip
    at = datetime(2024, 3, 10, 15, 0, tzinfo=UTC)  # the period's end, 00:00 in Tokyo
    catalog = Catalog.default()

    def cost(usage: Usage) -> Decimal:
        return price(usage, "gpt-4o-mini", at=at, catalog=catalog).total

    # gpt-4o: 3 requests, 1,100 input and 210 output tokens: 3 × the average request + the rest
    on_gpt = 3 * cost(Usage(input_tokens=366, output_tokens=70)) + cost(Usage(input_tokens=2, requests=0))
    on_claude = cost(Usage(input_tokens=2000, cache_read_tokens=500, output_tokens=100))
    rows = {r["model"]: r for r in shown["rows"]}
    assert Decimal(rows["gpt-4o"]["on_0"]) == on_gpt and rows["gpt-4o"]["cost"] == "0.00485"
    assert Decimal(rows["claude"]["on_0"]) == on_claude
    assert Decimal(shown["total"]["on_0"]) == on_gpt + on_claude and shown["total"]["cost"] == "0.00945"
    assert shown["targets"] == {"on_0": "gpt-4o-mini"} and shown["timezone"] == "Asia/Tokyo"
    unknown = runner.invoke(app, ["whatif", "tokyo", "--model", "no-such-model", "--database-url", seeded])
    assert unknown.exit_code == 2


def test_forecast_runs_on_the_organisations_recorded_days(seeded: str) -> None:
    from datetime import date

    from kakin.estimate import forecast_month
    from kakin.money import decimal_str

    shown = json.loads(
        run(
            "forecast",
            "--org",
            "tokyo",
            "--as-of",
            "2024-03-10",
            "--format",
            "json",
            "--database-url",
            seeded,
        )
    )
    # The 28 days up to 3/10 in Tokyo: spend on 3/9 and 3/10, nothing on the other days.
    daily = {
        date(2024, 2, 13): Decimal(0),
        date(2024, 3, 9): Decimal("0.0045"),
        date(2024, 3, 10): Decimal("0.00495"),
    }
    expected = forecast_month(daily, as_of=date(2024, 3, 10))
    figures = {row["figure"]: row["amount"] for row in shown[0]["rows"]}
    assert figures["spent to date"] == decimal_str(expected.spent_to_date) == "0.00945"
    assert figures["projected total"] == decimal_str(expected.projected)
    assert shown[0]["timezone"] == "Asia/Tokyo"
    both = runner.invoke(app, ["forecast", "x.csv", "--org", "tokyo", "--database-url", seeded])
    assert both.exit_code == 2
    # `kakin forecast ORG`, as the other reports take it: a name that is not a file is an org.
    positional = json.loads(
        run("forecast", "tokyo", "--as-of", "2024-03-10", "--format", "json", "--database-url", seeded)
    )
    assert positional == shown


def test_whatif_reprices_cached_tokens_that_do_not_divide_evenly(ledger: Ledger, clock, db_url: str) -> None:  # type: ignore[no-untyped-def]
    """Two requests of 10 input tokens, 9 of them cached in the first: the input tokens
    (20) divide by 2 evenly, the cached ones (9) do not. The rest is repriced part by part."""
    from kakin.catalog import Catalog
    from kakin.pricing import Usage, price

    org = ledger.create_org("odd", timezone="Asia/Tokyo", payment_label="card")
    project = ledger.create_project(org.id, "web")
    clock.set(datetime(2024, 3, 9, 3, 0, tzinfo=UTC))
    for n, cached in enumerate((9, 0)):
        usage = UsageDetail(provider="sim", input_tokens=10, output_tokens=3, cached_tokens=cached)
        ledger.post(
            Scope(org.id, project.id, None, "gpt-4o"), Decimal("0.001"), usage, idempotency_key=f"c{n}"
        )
    shown = json.loads(
        run("whatif", "odd", "--model", "gpt-4o-mini", "--from", "2024-03-09", "--to", "2024-03-10",
            "--format", "json", "--database-url", db_url)
    )  # fmt: skip
    at = datetime(2024, 3, 9, 15, 0, tzinfo=UTC)  # the period's end, 00:00 in Tokyo

    def cost(usage: Usage) -> Decimal:
        return price(usage, "gpt-4o-mini", at=at, catalog=Catalog.default()).total

    # Each: 5 uncached + 4 cached input tokens, 3 output; left over: 1 uncached and 1 cached.
    expected = 2 * cost(Usage(input_tokens=9, cache_read_tokens=4, output_tokens=3)) + cost(
        Usage(input_tokens=2, cache_read_tokens=1, requests=0)
    )
    assert Decimal(shown["rows"][0]["on_0"]) == expected
    assert Decimal(shown["total"]["on_0"]) == expected

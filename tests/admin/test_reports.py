"""The report routes on a known dataset, on SQLite and PostgreSQL: the figures equal what
`kakin report|usage|whatif|forecast --format json` prints for the same data, the request log
walks every request once, and bad input is a 422 or 404 in the admin error shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

# tests/conftest.py: the migrated SQLite template.
from conftest import sqlite_copy
from kakin.admin import create_admin_app
from kakin.cli import app as cli
from kakin.ledger import Ledger, Scope, UsageDetail
from kakin.reports import GROUPINGS

from .conftest import ADMIN_KEY, AUTH, unique
from .helpers import error_of, ok

runner = CliRunner()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 3, 20, 3, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def line(component: str, quantity: int, amount: str, tier: str | None = None) -> dict[str, Any]:
    return {
        "component": component,
        "quantity": str(quantity),
        "unit": "token",
        "unit_price": str(Decimal(amount) / quantity),
        "amount": amount,
        "tier": tier,
        "effective_from": "2024-01-01",
        "source": "test prices",
        "direction": "output" if component == "output" else "input",
    }


# (UTC instant, model, project, with key, input, cached, output, reasoning, cost lines, cache hit, routed from)
CHARGES = [
    # Tokyo 3/9 23:30, Los Angeles 3/9 06:30
    (datetime(2024, 3, 9, 14, 30, tzinfo=UTC), "gpt-4o", "web", True, 1000, 0, 200, 50,
     [line("input", 1000, "0.0025"), line("output", 200, "0.002")], False, None),
    # Tokyo 3/10 00:30, Los Angeles 3/9 07:30
    (datetime(2024, 3, 9, 15, 30, tzinfo=UTC), "claude", "batch", False, 2000, 500, 100, 0,
     [line("input", 1500, "0.003", "<=200k"), line("cache_read", 500, "0.0001", "<=200k"),
      line("output", 100, "0.0015", "<=200k")], False, None),
    # Tokyo 3/10 16:30, Los Angeles 3/9 23:30: a cache hit
    (datetime(2024, 3, 10, 7, 30, tzinfo=UTC), "gpt-4o", "web", True, 0, 0, 0, 0, [], True, None),
    # Tokyo 3/10 21:00, Los Angeles 3/10 05:00 (daylight saving time began at 02:00): routed
    (datetime(2024, 3, 10, 12, 0, tzinfo=UTC), "gpt-4o", "web", True, 100, 0, 10, 0,
     [line("input", 100, "0.00025"), line("output", 10, "0.0001")], False, "gpt-4.1"),
]  # fmt: skip
FROM, TO = "2024-03-09", "2024-03-11"


@dataclass
class World:
    url: str
    ledger: Ledger
    clock: Clock
    client: TestClient
    orgs: dict[str, str]  # "tokyo" / "la" → org id
    key_prefix: str


@contextmanager
def seeded_world(request: pytest.FixtureRequest, folder: Path) -> Iterator[World]:
    """The known dataset on ``request.param``'s backend, with an admin app over it."""
    if request.param == "sqlite":
        url = sqlite_copy(request.getfixturevalue("sqlite_template"), folder)
    else:
        url = request.getfixturevalue("admin_pg_url")
    clock = Clock()
    with Ledger.open(url, migrate=False, clock=clock) as ledger:
        orgs = {}
        prefix = ""
        for name, zone in (("tokyo", "Asia/Tokyo"), ("la", "America/Los_Angeles")):
            clock.now = datetime(2024, 3, 1, tzinfo=UTC)
            org = ledger.create_org(unique(name), timezone=zone, payment_label="card")
            orgs[name] = org.id
            projects = {p: ledger.create_project(org.id, p) for p in ("web", "batch")}
            key, _ = ledger.create_key(projects["web"].id, "server")
            prefix = key.prefix if name == "tokyo" else prefix
            for n, (
                at,
                model,
                project,
                keyed,
                given,
                cached,
                out,
                reasoning,
                items,
                hit,
                routed,
            ) in enumerate(CHARGES):
                clock.now = at
                usage = UsageDetail(
                    provider="sim",
                    input_tokens=given,
                    output_tokens=out,
                    cached_tokens=cached,
                    reasoning_tokens=reasoning,
                    cost_items=items,
                    request_id=f"{org.id}-req-{n}",
                    cache_hit=hit,
                    cache_saved=Decimal("0.0045") if hit else Decimal(0),
                    routed_from=routed,
                    routing_saved=Decimal("0.001") if routed else Decimal(0),
                )
                cost = sum((Decimal(i["amount"]) for i in items), Decimal(0))
                scope = Scope(org.id, projects[project].id, key.id if keyed else None, model)
                ledger.post(scope, cost, usage, idempotency_key=f"c{n}")
        clock.now = datetime(2024, 3, 20, 3, 0, tzinfo=UTC)
        with TestClient(create_admin_app(ledger, admin_key=ADMIN_KEY), headers=AUTH) as client:
            yield World(url, ledger, clock, client, orgs, prefix)


@pytest.fixture(params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """The dataset of the test's own (it may add to it)."""
    with seeded_world(request, tmp_path) as made:
        yield made


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def unchanged_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The dataset shared by the tests that only read it (and check that they changed nothing)."""
    with seeded_world(request, tmp_path_factory.mktemp("reports")) as made:
        yield made


def cli_json(world: World, *args: str) -> Any:
    result = runner.invoke(cli, [*args, "--format", "json", "--database-url", world.url])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


SPEND_FIELDS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cost",
    "saved",
    "uncached_input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "images",
    "audio_seconds",
    "cache_hits",
    "routed_requests",
    "cache_saved",
    "routing_saved",
)


def test_spend_is_what_the_cli_reports(world: World) -> None:
    for place, org in world.orgs.items():
        for by in GROUPINGS:
            params = {"by": by, "from": FROM, "to": TO}
            api = ok(world.client.get(f"/orgs/{org}/reports/spend", params=params))
            printed = cli_json(world, "report", org, "--by", by, "--from", FROM, "--to", TO)
            where = (place, by)
            assert api["timezone"] == printed["timezone"], where
            assert (api["from"], api["to"]) == (printed["from"], printed["to"]), where
            if by == "unit":
                assert [(u["unit"], u["quantity"], u["measure"], u["cost"]) for u in api["units"]] == [
                    (r["unit"], r["quantity"], r["measure"], r["cost"]) for r in printed["rows"]
                ], where
                assert api["total"]["cost"] == printed["total"]["cost"], where
                continue
            assert len(api["lines"]) == len(printed["rows"]), where
            for mine, theirs in zip(api["lines"], printed["rows"], strict=True):
                assert mine["group"] == theirs["group"].replace("—", ""), where
                assert {f: mine[f] for f in SPEND_FIELDS} == {f: theirs[f] for f in SPEND_FIELDS}, where
            assert {f: api["total"][f] for f in SPEND_FIELDS} == {
                f: printed["total"][f] for f in SPEND_FIELDS
            }, where


def test_spend_figures_are_exact_in_each_organisations_days(world: World) -> None:
    tokyo = ok(
        world.client.get(f"/orgs/{world.orgs['tokyo']}/reports/spend", params={"from": FROM, "to": TO})
    )
    la = ok(world.client.get(f"/orgs/{world.orgs['la']}/reports/spend", params={"from": FROM, "to": TO}))
    assert tokyo["timezone"] == "Asia/Tokyo" and la["timezone"] == "America/Los_Angeles"
    assert [(d["group"], d["cost"], d["requests"]) for d in tokyo["lines"]] == [
        ("2024-03-09", "0.0045", 1),
        ("2024-03-10", "0.00495", 3),
    ]
    assert [(d["group"], d["cost"], d["requests"]) for d in la["lines"]] == [
        ("2024-03-09", "0.0091", 3),
        ("2024-03-10", "0.00035", 1),
    ]
    assert la["lines"][0]["start"] == "2024-03-09T00:00:00-08:00"
    assert la["from"] == "2024-03-09T00:00:00-08:00" and la["to"] == "2024-03-11T00:00:00-07:00"
    for report in (tokyo, la):
        total = report["total"]
        assert total["cost"] == "0.00945" == str(sum(Decimal(d["cost"]) for d in report["lines"]))
        assert (total["reasoning_tokens"], total["output_tokens"], total["cache_hits"]) == (50, 310, 1)
        assert (total["routed_requests"], total["routing_saved"], total["saved"]) == (1, "0.001", "0.0055")
        assert report["currency"] is None and total["cost_in_currency"] is None
    units = ok(
        world.client.get(
            f"/orgs/{world.orgs['tokyo']}/reports/spend", params={"by": "unit", "from": FROM, "to": TO}
        )
    )["units"]
    assert {u["unit"]: (u["quantity"], u["cost"]) for u in units}["reasoning"] == ("50", "0.0005")
    only = ok(
        world.client.get(
            f"/orgs/{world.orgs['tokyo']}/reports/spend",
            params={"from": FROM, "to": TO, "project": "web", "key": world.key_prefix, "model": "gpt-4o"},
        )
    )
    assert [(d["group"], d["cost"]) for d in only["lines"]] == [
        ("2024-03-09", "0.0045"),
        ("2024-03-10", "0.00035"),
    ]
    assert only["filters"]["model"] == "gpt-4o" and only["filters"]["key"].startswith("key_")


def test_currency_converts_as_the_cli_does(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAKIN_FX_JPY", "151.25")
    org = world.orgs["la"]
    api = ok(
        world.client.get(f"/orgs/{org}/reports/spend", params={"from": FROM, "to": TO, "currency": "jpy"})
    )
    printed = cli_json(world, "report", org, "--from", FROM, "--to", TO, "--currency", "JPY")
    assert api["currency"] == {"code": "JPY", "per_usd": "151.25", "source": "KAKIN_FX_JPY"}
    assert [d["cost_in_currency"] for d in api["lines"]] == [r["cost"] for r in printed["rows"]]
    assert api["total"]["cost_in_currency"] == printed["total"]["cost"] == "1.4293125"  # 0.00945 × 151.25
    assert api["total"]["cost"] == "0.00945"  # amounts stay USD


def test_one_request_has_its_itemised_cost(world: World) -> None:
    org = world.orgs["tokyo"]
    ref = f"{org}-req-1"
    detail = ok(world.client.get(f"/orgs/{org}/requests/{ref}"))
    printed = cli_json(world, "usage", "show", ref, "--org", org)
    assert detail["timezone"] == "Asia/Tokyo" and detail["started_at"] == "2024-03-10T00:30:00+09:00"
    assert (detail["model"], detail["project_name"], detail["key_id"], detail["cost"]) == (
        "claude",
        "batch",
        None,
        "0.0046",
    )
    assert [(i["component"], i["quantity"], i["amount"], i["tier"], i["effective_from"], i["source"]) for i in detail["items"]] == [
        ("input", "1500", "0.003", "<=200k", "2024-01-01", "test prices"),
        ("cache_read", "500", "0.0001", "<=200k", "2024-01-01", "test prices"),
        ("output", "100", "0.0015", "<=200k", "2024-01-01", "test prices"),
    ]  # fmt: skip
    summary, units, items = printed
    assert detail["cost"] == summary["cost"]
    assert [(i["component"], i["amount"], i["unit_price"]) for i in detail["items"]] == [
        (r["component"], r["amount"], r["unit_price"]) for r in items["rows"]
    ]
    assert [(u["unit"], u["cost"]) for u in detail["units"]] == [
        (r["unit"], r["cost"]) for r in units["rows"]
    ]
    by_reservation = ok(world.client.get(f"/orgs/{org}/requests/{detail['reservation_id']}"))
    assert by_reservation == detail
    # Another organisation's request is not found through this one.
    error = error_of(world.client.get(f"/orgs/{world.orgs['la']}/requests/{ref}"), 404)
    assert ref in error["message"]
    assert error_of(world.client.get(f"/orgs/{org}/requests/no-such-request"), 404)["type"] == "not_found"


def test_the_request_log_walks_every_request_once(world: World) -> None:
    org_id = world.orgs["la"]
    project = world.ledger.create_project(org_id, "walk")
    scope = Scope(org_id, project.id, None, "gpt-4o")
    start = datetime(2024, 3, 12, tzinfo=UTC)
    for n in range(23):  # three at each instant: the cursor must break ties
        world.clock.now = start + timedelta(minutes=n // 3)
        world.ledger.post(
            scope,
            Decimal("0.001"),
            UsageDetail(provider="sim", request_id=f"walk-{n}"),
            idempotency_key=f"w{n}",
        )
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5, "project": "walk"}
        if cursor:
            params["cursor"] = cursor
        page = ok(world.client.get(f"/orgs/{org_id}/requests", params=params))
        assert page["timezone"] == "America/Los_Angeles"
        seen += [line["request_id"] for line in page["items"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 5 and sorted(seen) == sorted(f"walk-{n}" for n in range(23)) and len(set(seen)) == 23
    times = [
        line["started_at"]
        for line in ok(world.client.get(f"/orgs/{org_id}/requests", params={"limit": 500}))["items"]
    ]
    assert times == sorted(times, reverse=True) and len(times) == 27
    first = ok(world.client.get(f"/orgs/{org_id}/requests", params={"limit": 7, "from": FROM, "to": TO}))
    printed = cli_json(world, "usage", "list", org_id, "--limit", "7", "--from", FROM, "--to", TO)
    assert [(line["request_id"], line["cost"]) for line in first["items"]] == [
        (row["request_id"], row["cost"]) for row in printed["rows"]
    ]
    assert first["next"] is None and len(first["items"]) == 4


def test_the_request_log_filters_by_request_id(world: World) -> None:
    org = world.orgs["tokyo"]
    ref = f"{org}-req-3"
    found = ok(world.client.get(f"/orgs/{org}/requests", params={"request_id": ref}))["items"]
    assert [(line["request_id"], line["routed_from"], line["cost"]) for line in found] == [
        (ref, "gpt-4.1", "0.00035")
    ]
    again = ok(world.client.get(f"/orgs/{org}/requests", params={"request_id": found[0]["reservation_id"]}))
    assert again["items"] == found
    assert (
        ok(world.client.get(f"/orgs/{org}/requests", params={"request_id": ref, "model": "claude"}))["items"]
        == []
    )
    other = ok(world.client.get(f"/orgs/{world.orgs['la']}/requests", params={"request_id": ref}))
    assert other["items"] == [] and other["next"] is None


def test_whatif_and_forecast_are_what_the_cli_prints(world: World) -> None:
    org = world.orgs["tokyo"]
    targets = ["gpt-4o-mini", "claude-3-5-haiku-latest"]
    api = ok(world.client.get(f"/orgs/{org}/whatif", params={"model": targets, "from": FROM, "to": TO}))
    printed = cli_json(
        world, "whatif", org, "--model", targets[0], "--model", targets[1], "--from", FROM, "--to", TO
    )
    assert api["timezone"] == "Asia/Tokyo" and api["targets"] == targets and api["cost"] == "0.00945"
    assert [
        (line["model"], line["cost"], line["on"][targets[0]], line["on"][targets[1]]) for line in api["lines"]
    ] == [(row["model"], row["cost"], row["on_0"], row["on_1"]) for row in printed["rows"]]
    assert [api["totals"][t] for t in targets] == [printed["total"]["on_0"], printed["total"]["on_1"]]
    assert all(Decimal(amount) > 0 for amount in api["totals"].values())
    unknown = error_of(world.client.get(f"/orgs/{org}/whatif", params={"model": "no-such-model-x"}), 404)
    assert "no-such-model-x" in unknown["message"]

    forecast = ok(world.client.get(f"/orgs/{org}/forecast", params={"as_of": "2024-03-15"}))
    figures = cli_json(world, "forecast", "--org", org, "--as-of", "2024-03-15")[0]
    by_figure = {row["figure"]: row["amount"] for row in figures["rows"]}
    assert forecast["timezone"] == "Asia/Tokyo" and forecast["spent_to_date"] == "0.00945"
    assert (forecast["spent_to_date"], forecast["projected"], forecast["low"], forecast["high"]) == (
        by_figure["spent to date"],
        by_figure["projected total"],
        by_figure["low"],
        by_figure["high"],
    )


@pytest.mark.parametrize(
    ("path", "params", "status", "words"),
    [
        ("reports/spend", {"from": "2024-13-01"}, 422, "2024-13-01"),
        ("reports/spend", {"from": "0001-01-01"}, 422, "from"),
        ("reports/spend", {"by": "week"}, 422, "by"),
        ("reports/spend", {"from": "2024-03-11", "to": "2024-03-09"}, 422, "must be after"),
        ("reports/spend", {"from": "2024-03-09T10:30", "to": "2024-03-11"}, 422, "whole days"),
        ("reports/spend", {"project": "nope"}, 404, "nope"),
        ("reports/spend", {"key": "nope"}, 404, "nope"),
        ("reports/spend", {"currency": "XYZ"}, 422, "KAKIN_FX_XYZ"),
        ("requests", {"limit": 501}, 422, "limit"),
        ("requests", {"limit": 0}, 422, "limit"),
        ("requests", {"cursor": "bm90LWEtY3Vyc29y"}, 422, "cursor"),
        ("requests", {"cursor": "MjAyNC0wMS0wMVQwMDowMDowMCswMDowMHw5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ"}, 422, "cursor"),
        ("requests", {"cursor": "a b"}, 422, "cursor"),
        ("whatif", {}, 422, "model"),
        ("whatif", {"model": "gpt-4o-mini", "from": "2024-03-11", "to": "2024-03-01"}, 422, "must be after"),
        ("forecast", {"as_of": "2024-02-30"}, 422, "2024-02-30"),
        ("forecast", {"window": 5000}, 422, "window"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_and_changes_nothing(
    unchanged_world: World, path: str, params: dict[str, Any], status: int, words: str
) -> None:
    world = unchanged_world
    org = world.orgs["tokyo"]
    before = world.ledger.reconcile(org)
    error = error_of(world.client.get(f"/orgs/{org}/{path}", params=params), status)
    assert words in error["message"], error
    assert world.ledger.reconcile(org) == before and before.ok


def test_reasoning_tokens_are_settled_and_shown(world: World) -> None:
    org = world.orgs["tokyo"]
    records = ok(world.client.get(f"/orgs/{org}/usage"))["items"]
    assert [r["reasoning_tokens"] for r in records] == [50, 0, 0, 0]
    project = world.ledger.create_project(org, "think")
    held = ok(
        world.client.post(
            "/reservations",
            json={"project_id": project.id, "model": "o3", "amount": "0.5"},
            headers={"Idempotency-Key": "think-1"},
        ),
        201,
    )
    settle = f"/reservations/{held['id']}/settle"
    too_many = {"amount": "0.01", "provider": "openai", "output_tokens": 10, "reasoning_tokens": 11}
    assert "reasoning_tokens" in error_of(world.client.post(settle, json=too_many), 422)["message"]
    body = {
        "amount": "0.01",
        "provider": "openai",
        "input_tokens": 5,
        "output_tokens": 40,
        "reasoning_tokens": 30,
    }
    ok(world.client.post(settle, json=body))
    mine = ok(world.client.get(f"/orgs/{org}/usage", params={"project_id": project.id}))["items"]
    assert [(r["output_tokens"], r["reasoning_tokens"]) for r in mine] == [(40, 30)]
    spend = ok(world.client.get(f"/orgs/{org}/reports/spend", params={"project": "think", "by": "project"}))
    assert (spend["total"]["output_tokens"], spend["total"]["reasoning_tokens"]) == (40, 30)

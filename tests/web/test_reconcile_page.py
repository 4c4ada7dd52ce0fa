"""The provider-bills page in Chromium: a bill uploaded from the page, compared with what
kakin metered for the same UTC days, the disagreement flagged, exported as shown; a malformed
file refused with its reason; a project key never sees the page."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from kakin.ledger import Scope, UsageDetail

from .conftest import ADMIN_KEY, Site
from .test_browser import ARGS, CHROMIUM, Visit, sync_api

DAY = 86_400
FEB_10 = int(datetime(2026, 2, 10, tzinfo=UTC).timestamp())


def line(component: str, quantity: int, amount: str) -> dict[str, str]:
    direction = "output" if component == "output" else "input"
    return {
        "component": component,
        "quantity": str(quantity),
        "unit": "token",
        "amount": amount,
        "direction": direction,
    }


def cost(value: str, what: str) -> dict[str, object]:
    return {"object": "organization.costs.result", "amount": {"value": value, "currency": "usd"},
            "line_item": f"gpt-4o-2024-08-06, {what}", "project_id": "proj_bills"}  # fmt: skip


BILL = [
    {"object": "bucket", "start_time": FEB_10, "end_time": FEB_10 + DAY, "results": [cost("2.50", "input"), cost("1.00", "output")]},
    {"object": "bucket", "start_time": FEB_10 + DAY, "end_time": FEB_10 + 2 * DAY, "results": [cost("2.50", "input"), cost("1.20", "output")]},
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def metered(site: Site) -> None:
    """An organisation of this module's own ("bills", UTC), so the other pages' figures never
    depend on the order tests run in: its gpt-4o traffic to OpenAI on 10 and 11 February."""
    clock = site.ledger.clock
    kept = clock.now  # type: ignore[attr-defined]
    try:
        clock.now = datetime(2026, 2, 1, tzinfo=UTC)  # type: ignore[attr-defined]
        org = site.ledger.create_org("bills", timezone="UTC", payment_label="card")
        project = site.ledger.create_project(org.id, "api")
        for n in range(2):
            clock.now = datetime(2026, 2, 10 + n, 12, tzinfo=UTC)  # type: ignore[attr-defined]
            usage = UsageDetail(
                provider="openai",
                input_tokens=1_000_000,
                output_tokens=100_000,
                cost_items=[line("input", 1_000_000, "2.50"), line("output", 100_000, "1.00")],
            )
            scope = Scope(org.id, project.id, None, "gpt-4o")
            site.ledger.post(scope, Decimal("3.50"), usage, idempotency_key=f"bill-test-{n}")
    finally:
        clock.now = kept  # type: ignore[attr-defined]


def test_upload_compare_flag_and_export(browser: object, site: Site, metered: None, tmp_path: Path) -> None:
    visit = Visit(browser, site, viewport={"width": 1280, "height": 900})
    visit.sign_in(ADMIN_KEY)
    page = visit.go("/reconcile?org=bills")
    assert page.is_visible('[data-testid="no-bill"]')

    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"data": [{**BILL[0], "results": [cost("2,5O", "input")]}]}))
    page.set_input_files('[data-testid="bill-file"]', str(broken))
    page.click('[data-testid="bill-import"]')
    # The status reads "…" while the upload runs; waited for with a locator, since a string
    # predicate would need eval, which the page's CSP forbids.
    sync_api.expect(page.locator('[data-testid="upload-status"]')).to_have_text(
        "broken.json: page 1, data[0].results[0].amount.value: '2,5O' is not an amount"
    )
    assert visit.table("imports-table") == []
    visit.console.clear()  # the browser logs the refused upload (422): expected here

    bill = tmp_path / "costs.json"
    bill.write_text(json.dumps({"object": "page", "data": BILL, "has_more": False, "next_page": None}))
    page.set_input_files('[data-testid="bill-file"]', str(bill))
    with page.expect_navigation():
        page.click('[data-testid="bill-import"]')
    page.wait_for_load_state("networkidle")
    assert "provider=openai" in page.url
    (imported,) = visit.table("imports-table")
    assert (imported["file"], imported["first"], imported["last"], imported["rows"]) == (
        "costs.json", "2026-02-10", "2026-02-11", "4",
    )  # fmt: skip
    assert visit.text('[data-testid="flagged-count"]') == "1"
    rows = visit.table("reconcile-table")
    assert [(r["day"], r["unit"], r["kakin_cost"], r["provider_cost"], r["verdict"]) for r in rows] == [
        ("2026-02-10", "input", "$2.50", "$2.50", "match"),
        ("2026-02-10", "output", "$1.00", "$1.00", "match"),
        ("2026-02-11", "input", "$2.50", "$2.50", "match"),
        ("2026-02-11", "output", "$1.00", "$1.20", "provider higher"),
    ]
    assert page.eval_on_selector_all(
        '[data-testid="reconcile-table"] tbody tr.flagged td[data-key="day"]',
        "cells => cells.map(c => c.innerText)",
    ) == ["2026-02-11"]
    assert "1,100,000" in visit.text('[data-testid="unit-input"]') or "2,000,000" in visit.text(
        '[data-testid="unit-input"]'
    )
    visit.shot("reconcile")

    visit.go("/reconcile?org=bills&provider=openai&flagged=1")
    assert [r["difference"] for r in visit.table("reconcile-table")] == ["$0.20"]
    with page.expect_download() as download:
        page.click('[data-testid="export-csv"]')
    exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [(r["day"], r["unit"], Decimal(r["difference"]), r["timezone"]) for r in exported] == [
        ("2026-02-11", "output", Decimal("0.2"), "UTC")
    ]
    visit.close()


def test_a_project_key_never_sees_the_bills(browser: object, site: Site) -> None:
    visit = Visit(browser, site, viewport={"width": 1280, "height": 900})
    visit.sign_in(site.web_key)
    page = visit.go("/")
    assert page.locator('nav a[href*="/reconcile"]').count() == 0
    answer = page.goto(site.ui + "/reconcile")
    assert answer.status == 404  # type: ignore[union-attr]
    status = page.evaluate(
        "fetch('reconcile/import?provider=openai', {method: 'POST', body: '{}'}).then(r => r.status)"
    )
    assert status == 403
    visit.console.clear()  # the refused page and fetch are logged as errors: expected here
    visit.close()

"""The dashboard in a real browser: Debian's Chromium driven by Playwright, in a timezone
other than the organisation's, with every request off this machine blocked. Sign in, see
the seeded numbers on every page, switch currency and language, open a request's itemised
cost, export CSV and compare it with the page. Screenshots go to test-artifacts/dashboard/.

Chromium comes from the system (``make test`` installs it with apt when it is missing);
Playwright never downloads a browser. Without it the tests skip and say why."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

import pytest

from kakin.estimate import forecast_month
from kakin.money import format_amount
from kakin.reports import Reports

from .conftest import ADMIN_KEY, TOTAL, WEB_TOTAL, Site

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
BROWSER_ZONE = "America/New_York"  # not the organisation's (Asia/Tokyo), and not UTC
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)", allow_module_level=True
    )


def usd(amount: Decimal) -> str:
    return format_amount(amount, "USD")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        print(f"dashboard browser tests: {CHROMIUM} {launched.version}, screenshots in {ARTIFACTS}")
        yield launched
        launched.close()


class Visit:
    """One browser context: its page, what it tried to fetch off this machine, and what the
    console reported (a Content-Security-Policy violation is reported there)."""

    def __init__(self, browser: object, site: Site, **options: object) -> None:
        self.site = site
        self.blocked: list[str] = []
        self.console: list[str] = []
        self.context = browser.new_context(timezone_id=BROWSER_ZONE, accept_downloads=True, **options)  # type: ignore[attr-defined]
        self.context.route("**/*", self._local_only)
        self.page = self.context.new_page()
        self.page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        self.page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))

    def _local_only(self, route: object) -> None:
        host = urlparse(route.request.url).hostname  # type: ignore[attr-defined]
        if host in ("127.0.0.1", "localhost"):
            route.continue_()  # type: ignore[attr-defined]
        else:
            self.blocked.append(route.request.url)  # type: ignore[attr-defined]
            route.abort()  # type: ignore[attr-defined]

    def go(self, path: str) -> object:
        self.page.goto(self.site.ui + path)
        self.page.wait_for_load_state("networkidle")
        return self.page

    def sign_in(self, key: str) -> None:
        self.go("/signin")
        self.page.fill("#key", key)
        self.page.click("button")
        self.page.wait_for_load_state("networkidle")

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector).strip()

    def table(self, testid: str) -> list[dict[str, str]]:
        """A table as on screen: one dict per row, by each cell's column key."""
        return self.page.eval_on_selector_all(
            f'[data-testid="{testid}"] tbody tr',
            "rows => rows.map(r => Object.fromEntries([...r.querySelectorAll('td')].map(c => [c.dataset.key, c.innerText.trim()])))",
        )

    def close(self) -> None:
        assert not self.blocked, f"requests off this machine: {self.blocked}"
        problems = [
            m for m in self.console if "Content Security Policy" in m or m.startswith(("error", "pageerror"))
        ]
        assert not problems, problems
        self.context.close()


@pytest.fixture()
def admin(browser: object, site: Site) -> Iterator[Visit]:
    visit = Visit(browser, site, viewport={"width": 1280, "height": 900})
    visit.sign_in(ADMIN_KEY)
    yield visit
    visit.close()


def test_overview_shows_the_seeded_month(admin: Visit, site: Site) -> None:
    page = admin.go("/?org=tokyo")
    assert admin.text('[data-testid="timezone"]') == "Asia/Tokyo"
    assert admin.text('[data-testid="mtd-cost"]') == usd(TOTAL)
    today = Reports(site.ledger).spend("tokyo", by="unit", start="2026-03-15", end="2026-03-16").total
    assert today.cost == Decimal("0.0046") + Decimal("0.00035") and today.requests == 3
    assert admin.text('[data-testid="today-cost"]') == usd(today.cost)
    assert admin.text('[data-testid="today-requests"]') == "3"
    assert admin.text('[data-testid="today-tokens"]') == f"{2100 + 110:,}"
    expected = forecast_month(
        {date(2026, 3, 1): Decimal(0), date(2026, 3, 10): Decimal("0.0045"), date(2026, 3, 15): today.cost},
        as_of=date(2026, 3, 15),
    )
    assert admin.text('[data-testid="forecast-projected"]') == usd(expected.projected)
    assert admin.text('[data-testid="forecast-low"]') == usd(expected.low)
    assert admin.text('[data-testid="forecast-high"]') == usd(expected.high)
    assert admin.text('[data-testid="budget-monthly"]').startswith(f"{usd(TOTAL)} / $1.00")
    assert admin.text('[data-testid="budget-web monthly"]').startswith(f"{usd(WEB_TOTAL)} / $0.50")
    grants = admin.table("grants")
    assert "starter" in page.inner_text('[data-testid="grants"]')
    assert "2027-01-01 00:00" in page.inner_text('[data-testid="grants"]')  # 2026-12-31 15:00 UTC, in Tokyo
    assert len(grants) == 1
    assert admin.text('[data-testid="postpaid"]') == usd(site.ledger.balance("tokyo").due)
    admin.shot("overview")


def test_spend_over_time_is_in_the_organisations_days(admin: Visit) -> None:
    page = admin.go("/spend?org=tokyo")
    rows = admin.table("spend-table")
    # 2026-03-14 16:30 UTC is 3/15 in Tokyo (and 3/14 in the browser's New York): Tokyo's day counts.
    assert [r["bucket"] for r in rows] == [f"2026-03-{d:02}" for d in range(1, 16)]  # quiet days too
    spent = {r["bucket"]: r["total"] for r in rows if r["total"] != usd(Decimal(0))}
    assert spent == {"2026-03-10": usd(Decimal("0.0045")), "2026-03-15": usd(Decimal("0.00495"))}
    assert rows[-1]["model:claude-sonnet"] == usd(Decimal("0.0046"))
    assert page.locator("#chart .uplot canvas").count() == 1  # the chart was drawn
    assert "Asia/Tokyo" in page.inner_text("figure.chart figcaption")
    admin.shot("spend-daily")
    page.click('[data-testid="measure-tokens"]')
    page.wait_for_load_state("networkidle")
    tokens = {r["bucket"]: r["total"] for r in admin.table("spend-table") if r["total"] != "0"}
    assert tokens == {"2026-03-10": "1,200", "2026-03-15": "2,210"}
    page.goto(admin.site.ui + "/spend?org=tokyo&by=hour&measure=requests")
    hours = admin.table("spend-table")
    assert len(hours) == 24 and hours[0]["bucket"] == "2026-03-15T00:00+09:00"
    spent_hours = [r["bucket"] for r in hours if r["total"] != "0"]
    assert spent_hours == ["2026-03-15T01:00+09:00", "2026-03-15T10:00+09:00", "2026-03-15T11:00+09:00"]
    admin.shot("spend-hourly")


def test_breakdown_sorts_and_exports_what_is_on_screen(admin: Visit) -> None:
    page = admin.go("/breakdown?org=tokyo&by=model")
    rows = admin.table("breakdown-table")
    assert [(r["name"], r["cost"]) for r in rows] == [
        ("gpt-4o", usd(WEB_TOTAL)),
        ("claude-sonnet", usd(Decimal("0.0046"))),
    ]
    page.click('th[data-key="cost"] a')  # descending first: the order stays
    page.click('th[data-key="cost"] a')  # then ascending
    page.wait_for_load_state("networkidle")
    shown = admin.table("breakdown-table")
    assert [r["name"] for r in shown] == ["claude-sonnet", "gpt-4o"]
    with page.expect_download() as download:
        page.click('[data-testid="export-csv"]')
    exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [r["name"] for r in exported] == [r["name"] for r in shown]
    for on_screen, row in zip(shown, exported, strict=True):
        assert usd(Decimal(row["cost"])) == on_screen["cost"]
        assert f"{int(row['requests']):,}" == on_screen["requests"]
        assert row["timezone"] == "Asia/Tokyo" and row["currency"] == "USD"
    admin.shot("breakdown-model")
    admin.go("/breakdown?org=tokyo&by=unit")
    units = {r["unit"]: r["cost"] for r in admin.table("breakdown-table")}
    assert units["cached_input"] == usd(Decimal("0.0001"))
    admin.shot("breakdown-unit")


def test_a_request_opens_its_itemised_cost(admin: Visit) -> None:
    page = admin.go("/requests?org=tokyo")
    rows = admin.table("requests-table")
    assert [r["request"] for r in rows] == ["req-3", "req-2", "req-1", "req-0"]  # newest first
    assert rows[0]["started_at"] == "2026-03-15T11:00:00+09:00"
    page.click('a[data-testid="request-link"]:text("req-1")')
    page.wait_for_selector('[data-testid="request-detail"]')
    assert admin.text('[data-testid="detail-cost"]') == usd(Decimal("0.0046"))
    items = admin.table("items")
    assert [i["amount"] for i in items] == [usd(Decimal(a)) for a in ("0.003", "0.0001", "0.0015")]
    assert {i["source"] for i in items} == {"test prices"}
    assert {i["effective"] for i in items} == {"2026-01-01"}
    admin.shot("request-detail")
    page.goto(admin.site.ui + "/requests?org=tokyo&limit=2")
    page.wait_for_load_state("networkidle")
    page.click('[data-testid="more"]')  # the next page, after the keyset cursor
    page.locator('a[data-testid="request-link"]').nth(3).wait_for()  # (no eval: the page's CSP forbids it)
    assert [r["request"] for r in admin.table("requests-table")] == ["req-3", "req-2", "req-1", "req-0"]


def test_currency_and_language_switch(admin: Visit) -> None:
    page = admin.go("/?org=tokyo")
    page.click('a.toggle:text("JPY")')
    page.wait_for_load_state("networkidle")
    assert admin.text('[data-testid="mtd-cost"]') == format_amount(TOTAL * 150, "JPY")
    assert "150 JPY/USD" in admin.text('[data-testid="rate"]')
    page.click('a.toggle:text("日本語")')
    page.wait_for_load_state("networkidle")
    assert page.inner_text("h1") == "概要"
    assert "今月の利用額" in page.inner_text('[data-testid="mtd"]')
    assert "前払い" in page.inner_text('[data-testid="grants"]')  # the grant's kind, in Japanese too
    admin.shot("overview-ja-jpy")
    admin.go("/breakdown?org=tokyo&by=model")
    with page.expect_download() as download:
        page.click('[data-testid="export-csv"]')
    exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert {r["currency"] for r in exported} == {"JPY"}
    assert sum(Decimal(r["cost"]) for r in exported) == TOTAL * 150
    page.click('a.toggle:text("USD")')
    page.click('a.toggle:text("English")')
    page.wait_for_load_state("networkidle")


def test_alerts_savings_and_whatif(admin: Visit, site: Site) -> None:
    page = admin.go("/alerts?org=tokyo")
    assert "tokyo at 80%" in page.inner_text('[data-testid="fired"]')
    assert "project web" in page.inner_text('[data-testid="fired"]')  # named, not by id
    assert "ops hook" in page.inner_text('[data-testid="deliveries"]')
    assert "delivered" in page.inner_text('[data-testid="deliveries"]')
    admin.shot("alerts")
    admin.go("/savings?org=tokyo")
    assert admin.text('[data-testid="cache-saved"]') == usd(Decimal("0.0045"))
    assert admin.text('[data-testid="routing-saved"]') == usd(Decimal("0.001"))
    assert admin.text('[data-testid="total-saved"]') == usd(Decimal("0.0055"))
    admin.shot("savings")
    admin.go("/whatif?org=tokyo")
    page.fill('input[name="models"]', "gpt-4o-mini")
    page.click("form.filters button")
    page.wait_for_load_state("networkidle")
    expected = Reports(site.ledger).whatif("tokyo", ["gpt-4o-mini"])
    total = admin.table("whatif-table")[-1]
    assert total["cost"] == usd(TOTAL)
    assert total["on:gpt-4o-mini"] == usd(expected.totals["gpt-4o-mini"])
    admin.shot("whatif")


def test_a_project_key_sees_its_project_on_a_phone(browser: object, site: Site) -> None:
    visit = Visit(browser, site, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    visit.sign_in(site.web_key)
    page = visit.go("/")
    assert visit.text('[data-testid="scope"]') == "tokyo / web"
    assert visit.text('[data-testid="mtd-cost"]') == usd(WEB_TOTAL)
    assert "web monthly" in page.inner_text('[data-testid="budgets"]')
    assert "batch monthly" not in page.content()
    visit.shot("phone-overview")
    visit.go("/breakdown?by=project&org=elsewhere&project=batch")
    assert [(r["name"], r["cost"]) for r in visit.table("breakdown-table")] == [("web", usd(WEB_TOTAL))]
    with page.expect_download() as download:
        page.click('[data-testid="export-csv"]')
    exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [(r["name"], Decimal(r["cost"])) for r in exported] == [("web", WEB_TOTAL)]
    visit.shot("phone-breakdown")
    visit.go("/requests")
    assert [r["request"] for r in visit.table("requests-table")] == ["req-3", "req-2", "req-0"]
    visit.shot("phone-requests")
    visit.close()


def test_a_wrong_key_is_refused(browser: object, site: Site) -> None:
    visit = Visit(browser, site)
    visit.sign_in("kk-notarealkey0-secret")
    assert visit.page.locator('[data-testid="refused"]').is_visible()
    assert re.search(r"/ui/signin$", visit.page.url)
    visit.shot("refused")
    assert any("401" in m for m in visit.console)  # the refused sign-in, as the browser saw it
    visit.console.clear()
    visit.close()

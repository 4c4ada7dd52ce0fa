"""The invoice pages in Chromium (the setup of test_browser.py): the admin's list, the
printable invoice with its lines, credits and dates, its print view and Japanese labels."""

from __future__ import annotations

from kakin.money import format_amount

from .conftest import ADMIN_KEY, TOTAL, Site
from .test_browser import Visit, browser  # noqa: F401  (its browser fixture, skipped without Chromium)
from .test_invoices import issued  # noqa: F401  (March issued)


def test_the_invoice_page_in_a_browser(browser: object, site: Site, issued: str) -> None:  # noqa: F811
    visit = Visit(browser, site, viewport={"width": 1280, "height": 900})
    visit.sign_in(ADMIN_KEY)
    page = visit.go("/invoices?org=tokyo")
    rows = visit.table("invoices")
    assert [(r["month"], r["number"], r["status"], r["charges"]) for r in rows] == [
        ("2026-03", issued, "issued", format_amount(TOTAL, "USD"))
    ]
    page.click("text=2026-03")  # type: ignore[attr-defined]
    page.wait_for_load_state("networkidle")  # type: ignore[attr-defined]
    assert visit.text('[data-testid="invoice-number"]') == issued
    assert visit.text('[data-testid="invoice-status"]') == "Issued"
    assert visit.text('[data-testid="recipient"]') == "tokyo"
    assert visit.text('[data-testid="total-charges"]') == format_amount(TOTAL, "USD", significant=6)
    assert visit.text('[data-testid="total-due"]') == "$0.00"  # the prepaid grant paid it all
    assert visit.text('[data-testid="credit"]') == "−" + format_amount(TOTAL, "USD", significant=6)
    assert (
        visit.text('[data-testid="issue-date"]') == "2026-04-02"
        and visit.text('[data-testid="due-date"]') == "2026-05-02"
    )
    amounts = page.eval_on_selector_all('[data-testid="line-amount"]', "cells => cells.map(c => c.innerText)")  # type: ignore[attr-defined]
    # Lines by model, unit and price: gpt-4o's two requests at one price share their lines; its
    # cache hit (no cost lines) is "other".
    assert amounts == ["$0.003", "$0.0001", "$0.0015", "$0.00275", "$0.0021", "$0.00"]
    assert visit.text('[data-testid="invoice-period"]') == "2026-03-01 – 2026-03-31 (Asia/Tokyo)"
    visit.shot("invoice")
    page.emulate_media(media="print")  # type: ignore[attr-defined]
    assert not page.is_visible("header.top")  # type: ignore[attr-defined]
    visit.shot("invoice-print")
    page.emulate_media(media="screen")  # type: ignore[attr-defined]
    page.click('a.toggle:has-text("日本語")')  # type: ignore[attr-defined]
    page.wait_for_load_state("networkidle")  # type: ignore[attr-defined]
    assert visit.text(".invoice h1").startswith("請求書")
    assert "御中" in visit.text(".inv-recipient")
    visit.shot("invoice-ja")
    page.click('a.toggle:has-text("English")')  # type: ignore[attr-defined]
    page.wait_for_load_state("networkidle")  # type: ignore[attr-defined]
    visit.close()

"""Invoices in the dashboard: the admin's list and printable invoice (in Chromium, with its PDF,
CSV and JSON), and a project key, which sees no invoice at all (they are the organisation's
documents), whatever the address asks for."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime

import httpx
import pypdf
import pytest

from kakin.billing import Billing
from kakin.money import format_amount

from .conftest import ADMIN_KEY, NOW, TOTAL, Site
from .test_browser import Visit, browser  # noqa: F401  (the module's browser fixture)


@pytest.fixture(scope="module")
def issued(site: Site) -> Iterator[str]:
    """March issued (on 2 April), with the clock put back to 15 March afterwards."""
    clock = site.ledger.clock
    clock.now = datetime(2026, 4, 2, 0, 0, tzinfo=UTC)  # type: ignore[attr-defined]
    try:
        (done,) = Billing(site.ledger).issue("tokyo", "2026-03")
    finally:
        clock.now = NOW  # type: ignore[attr-defined]
    assert done.invoice.charges == TOTAL
    yield done.invoice.number or ""


def signed_in(site: Site, key: str) -> httpx.Client:
    client = httpx.Client(base_url=site.ui)
    assert client.post("/signin", data={"key": key}).status_code == 303
    return client


def test_a_project_key_sees_no_invoice(site: Site, issued: str) -> None:
    with closing(signed_in(site, site.web_key)) as client:
        assert "/invoices" not in client.get("/").text  # not in its menu
        for path in (
            "/invoices",
            f"/invoices/{issued}",
            "/invoices/2026-03",
            f"/invoices/{issued}?format=pdf",
        ):
            for params in ({}, {"org": "tokyo"}, {"org": "elsewhere"}):
                answer = client.get(path, params=params)
                assert answer.status_code == 404, (path, params)
                assert "shown to the admin key" in answer.text
                text = re.sub(r'href="[^"]*"', "", answer.text)  # links echo the address asked for
                assert issued not in text and "0.00945" not in text


def test_the_admin_downloads_pdf_csv_and_json(site: Site, issued: str) -> None:
    with closing(signed_in(site, ADMIN_KEY)) as client:
        pdf = client.get(f"/invoices/{issued}", params={"org": "tokyo", "format": "pdf"})
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
        assert issued in text and "tokyo" in text and format_amount(TOTAL, "USD", significant=6) in text
        rows = list(
            csv.DictReader(
                io.StringIO(client.get(f"/invoices/{issued}", params={"org": "tokyo", "format": "csv"}).text)
            )
        )
        assert [r["amount_usd"] for r in rows if r["component"] == "charges"] == ["0.00945"]
        document = client.get("/invoices/2026-03", params={"org": "tokyo", "format": "json"}).json()
        assert document["number"] == issued and len(document["content_hash"]) == 64
        assert client.get("/invoices/2027-01", params={"org": "tokyo"}).status_code == 404
        assert client.get(f"/invoices/{issued}", params={"org": "tokyo", "format": "xls"}).status_code == 400


def test_the_invoice_page_in_a_browser(browser: object, site: Site, issued: str) -> None:
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
    assert "2026-03-01 – 2026-03-31 (Asia/Tokyo)" == visit.text('[data-testid="invoice-period"]')
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

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


@pytest.fixture(scope="package")
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
        assert client.get("/invoices/INV-000099", params={"org": "tokyo"}).status_code == 404
        assert client.get(f"/invoices/{issued}", params={"org": "tokyo", "format": "xls"}).status_code == 400

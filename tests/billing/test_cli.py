"""`kakin invoice list|show|issue|export|credit-note` over a ledger with a known month."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pypdf
from typer.testing import CliRunner

from kakin.cli import app
from kakin.ledger import Ledger, Scope

from .conftest import Clock, post, token_items

runner = CliRunner()


def seeded(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'kakin.db'}"
    clock = Clock(datetime(2026, 2, 2, tzinfo=UTC))
    with Ledger.open(url, clock=clock) as ledger:
        org = ledger.create_org("ナナ商店", timezone="Asia/Tokyo", currency="JPY", payment_label="card")
        project = ledger.create_project(org.id, "web")
        scope = Scope(org.id, project.id, None, "gpt-4o")
        ledger.grant(org.id, "promotional", "0.001", idempotency_key="p", note="welcome pack")
        post(ledger, scope, token_items("0.0000025", 1000, output=100), "a")  # 0.0035
    return url


def run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_issue_show_export_and_correct(tmp_path: Path) -> None:
    db = seeded(tmp_path)
    listed = json.loads(
        run("invoice", "list", "ナナ商店", "--format", "json", "--currency", "USD", "--database-url", db)
    )
    assert listed["rows"][0]["status"] == "draft" and listed["rows"][0]["charges"] == "0.0035"
    assert "INV-000001 ナナ商店 2026-02: issued" in run(
        "invoice", "issue", "ナナ商店", "2026-02", "--database-url", db
    )
    assert "already issued" in run("invoice", "issue", "ナナ商店", "2026-02", "--database-url", db)
    document = json.loads(
        run("invoice", "show", "ナナ商店", "INV-000001", "--format", "json", "--database-url", db)
    )
    assert document["totals"] == {
        "charges": "0.0035",
        "credits": "0.001",
        "due": "0.0025",
        "payable_usd": "0",
        "due_display": "0",
        "display_currency": "JPY",
    }
    assert len(document["content_hash"]) == 64 and document["number"] == "INV-000001"
    rows = list(
        csv.DictReader(
            io.StringIO(
                run("invoice", "show", "ナナ商店", "2026-02", "--format", "csv", "--database-url", db)
            )
        )
    )
    assert [(r["section"], r["component"], r["amount_usd"]) for r in rows] == [
        ("current", "input", "0.0025"),
        ("current", "output", "0.001"),
        ("credit", "promotional", "-0.001"),
        ("total", "charges", "0.0035"),
        ("total", "credits", "-0.001"),
        ("total", "due", "0.0025"),
    ]
    table = run("invoice", "show", "ナナ商店", "INV-000001", "--database-url", db)
    assert "welcome pack" in table and "INV-000001" in table
    pdf = tmp_path / "invoice.pdf"
    run("invoice", "export", "ナナ商店", "INV-000001", "-o", str(pdf), "--database-url", db)
    text = pypdf.PdfReader(pdf).pages[0].extract_text()
    assert "ナナ商店" in text and "INV-000001" in text
    page = tmp_path / "invoice.html"
    run("invoice", "export", "ナナ商店", "INV-000001", "-o", str(page), "--lang", "en", "--database-url", db)
    assert "Bill to" in page.read_text(encoding="utf-8")
    out = run(
        "invoice",
        "credit-note",
        "ナナ商店",
        "INV-000001",
        "--reason",
        "duplicate",
        "--line",
        "2",
        "--quantity",
        "50",
        "--database-url",
        db,
    )
    assert out.startswith("CN-000001 for INV-000001: 0.000500000000 USD credited back")
    refused = runner.invoke(
        app,
        [
            "invoice",
            "credit-note",
            "ナナ商店",
            "INV-000001",
            "--reason",
            "x",
            "--amount",
            "1",
            "--database-url",
            db,
        ],
    )
    assert refused.exit_code == 2 and "0.003 USD of charges left" in refused.output
    assert Decimal(
        json.loads(
            run("invoice", "list", "ナナ商店", "-f", "json", "--currency", "USD", "--database-url", db)
        )["rows"][0]["due"]
    ) == Decimal("0.0025")

"""``kakin invoice list|show|issue|export|credit-note``: monthly invoices and their corrections.

The figures come from :mod:`kakin.billing` (the same documents the admin API and the pages
show); this module only prints and writes them. Issued invoices are shown as they were
issued; a month not issued yet is its live draft.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kakin.cli.ledger_cmds import DbOption, OrgArg, _ledger
from kakin.cli.output import (
    Column,
    CurrencyOption,
    FormatOption,
    OutputFormat,
    Report,
    _settings,
    emit,
    resolve_currency,
)

if TYPE_CHECKING:
    from kakin.billing import Billing, Invoice

invoice_app = typer.Typer(help="Monthly invoices: list, show, issue, export, correct with credit notes.")

RefArg = Annotated[
    str, typer.Argument(help="invoice number (INV-000004) or month (YYYY-MM: issued, or its draft)")
]
LangOption = Annotated[str, typer.Option("--lang", help="language of the HTML and PDF: ja or en")]


class ExportFormat(StrEnum):
    pdf = "pdf"
    html = "html"
    csv = "csv"
    json = "json"


def register(app: typer.Typer) -> None:
    invoice_app.info.no_args_is_help = True
    app.add_typer(invoice_app, name="invoice")


@contextmanager
def _billing(database_url: str | None) -> Iterator[Billing]:
    from kakin.billing import Billing
    from kakin.config import BillingSettings

    settings = _settings()
    with _ledger(database_url) as ledger:
        yield Billing(
            ledger,
            settings.billing if settings is not None else BillingSettings(),
            rates=dict(settings.currency.rates) if settings is not None else {},
        )


@invoice_app.command("list")
def list_invoices(
    org: OrgArg,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
    database_url: DbOption = None,
) -> None:
    """The organisation's invoices, oldest first: issued ones, then live drafts."""
    fx = resolve_currency(currency)
    with _billing(database_url) as billing:
        invoices = billing.invoices(org)
    columns = [
        Column("month", "Month"),
        Column("number", "Number"),
        Column("status", "Status"),
        Column("requests", "Requests", "int"),
        Column("charges", "Charges", "money"),
        Column("credits", "Credits", "money"),
        Column("due", "Amount due", "money"),
        Column("issued", "Issued (UTC)"),
        Column("due_date", "Due date"),
    ]
    rows = [
        {
            "month": i.month,
            "number": i.number or "",
            "status": i.status,
            "requests": i.requests,
            "charges": i.charges,
            "credits": i.credits_total,
            "due": i.due,
            "issued": (i.issued_at or "")[:16].replace("T", " "),
            "due_date": i.due_date or "",
        }
        for i in invoices
    ]
    emit(Report(f"Invoices of {org}", columns, rows), fmt, fx)


@invoice_app.command("show")
def show(
    org: OrgArg,
    ref: RefArg,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
    database_url: DbOption = None,
) -> None:
    """One invoice: lines, credit per grant, amount due (json: the document; csv: its rows)."""
    from kakin.billing.render import invoice_csv, invoice_json

    with _billing(database_url) as billing:
        invoice = billing.invoice(org, ref)
        digest = billing.content_hash(org, invoice.number) if invoice.number else None
    if fmt is OutputFormat.json:
        typer.echo(invoice_json(invoice, digest))
    elif fmt is OutputFormat.csv:
        typer.echo(invoice_csv(invoice), nl=False)
    else:
        emit(_report(invoice, digest), fmt, resolve_currency(currency))


def _report(invoice: Invoice, digest: str | None) -> list[Report]:
    from kakin.billing.render import describe

    columns = [
        Column("n", "#", "int"),
        Column("section", "Section", optional=True),
        Column("month", "Cycle", optional=True),
        Column("model", "Model"),
        Column("item", "Item", wrap=True),
        Column("quantity", "Quantity", "decimal"),
        Column("unit_price", "Unit price", "rate"),  # per token: significant digits, never "0.00"
        Column("amount", "Amount", "money"),
        Column("source", "Price source", wrap=True, optional=True),
    ]
    rows = [
        {
            "n": n,
            "section": line.section,
            "month": line.month,
            "model": line.model,
            "item": describe(line),
            "quantity": line.quantity,
            "unit_price": line.unit_price,
            "amount": line.amount,
            "source": f"{line.price_source} {line.effective_from or ''}".strip(),
        }
        for n, line in enumerate(invoice.lines, start=1)
    ]
    title = f"Invoice {invoice.number or '(draft)'} · {invoice.recipient.name} · {invoice.month} ({invoice.timezone})"
    totals = [{"what": "charges", "grant": "", "amount": invoice.charges}]
    totals += [
        {"what": f"credit: {c.kind} {c.note}".strip(), "grant": c.grant_id, "amount": -c.amount}
        for c in invoice.credits
    ]
    totals.append({"what": "amount due (postpaid)", "grant": "", "amount": invoice.due})
    notes = [
        f"status {invoice.status}; "
        + (
            f"issued {invoice.issued_at}, due {invoice.due_date}"
            if invoice.issued_at
            else f"as of {invoice.as_of}"
        ),
        f"payable {invoice.payable} USD; {invoice.display.currency} at {invoice.display.rate.describe()}; {invoice.tax_note}",
    ]
    if digest:
        notes.append(f"sha256 {digest}")
    summary = Report(
        "Totals",
        [Column("what", "", wrap=True), Column("grant", "Grant"), Column("amount", "Amount", "money")],
        totals,
        notes=notes,
    )
    return [Report(title, columns, rows), summary]


@invoice_app.command("issue")
def issue(
    org: Annotated[str | None, typer.Argument(help="organisation id or name (omit with --due)")] = None,
    month: Annotated[
        str | None, typer.Argument(help="the cycle to issue, YYYY-MM; earlier unissued ones go first")
    ] = None,
    due: Annotated[
        bool, typer.Option("--due", help="issue every cycle of every organisation past its grace period")
    ] = False,
    database_url: DbOption = None,
) -> None:
    """Issue (freeze and number) a month's invoice. Issuing an issued month changes nothing."""
    from kakin.cli.output import fail

    if due == (org is not None and month is not None) or (not due and (org is None or month is None)):
        fail("give ORG and MONTH (kakin invoice issue acme 2026-03), or --due alone")
    with _billing(database_url) as billing:
        done = billing.close_due() if due else billing.issue(str(org), str(month))
    for item in done:
        inv = item.invoice
        what = "already issued" if item.repeated else "issued"
        typer.echo(
            f"{inv.number} {inv.recipient.name} {inv.month}: {what}, amount due {inv.due} USD (payable {inv.payable})"
        )
    if not done:
        typer.echo("nothing to issue")


@invoice_app.command("export")
def export(
    org: OrgArg,
    ref: RefArg,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="file to write; its suffix picks the format")
    ],
    as_: Annotated[
        ExportFormat | None, typer.Option("--as", help="pdf, html, csv or json (default: from the suffix)")
    ] = None,
    lang: LangOption = "ja",
    database_url: DbOption = None,
) -> None:
    """Write an invoice as PDF (IPAexGothic), HTML (printable), CSV or JSON."""
    from kakin.billing import render
    from kakin.cli.output import fail

    kind = as_ or ExportFormat.__members__.get(output.suffix.lstrip(".").lower())
    if kind is None:
        fail(
            f"cannot tell the format from {output.name!r}: end it in .pdf, .html, .csv or .json, or give --as"
        )
    if lang not in render.LANGUAGES:
        fail(f"--lang is ja or en, not {lang!r}")
    with _billing(database_url) as billing:
        invoice = billing.invoice(org, ref)
        digest = billing.content_hash(org, invoice.number) if invoice.number else None
        notes = billing.notes.of(org, invoice.number) if invoice.number else []
    if kind is ExportFormat.pdf:
        output.write_bytes(render.invoice_pdf(invoice, lang, notes=notes, digest=digest))
    elif kind is ExportFormat.html:
        page = render.standalone_html(invoice, lang, notes=notes, digest=digest)
        output.write_text(page, encoding="utf-8")
    elif kind is ExportFormat.csv:
        output.write_text(render.invoice_csv(invoice), encoding="utf-8")
    else:
        output.write_text(render.invoice_json(invoice, digest), encoding="utf-8")
    typer.echo(f"wrote {output} ({kind.value}, invoice {invoice.number or invoice.month + ' draft'})")


@invoice_app.command("credit-note")
def credit_note(
    org: OrgArg,
    number: Annotated[str, typer.Argument(help="the issued invoice it corrects (INV-000004)")],
    reason: Annotated[str, typer.Option("--reason", help="why, printed on the note")],
    amount: Annotated[
        str | None, typer.Option("--amount", help="USD to credit (of the invoice, or of --line)")
    ] = None,
    line: Annotated[
        int | None, typer.Option("--line", help="the invoice line it corrects (1-based, as shown)")
    ] = None,
    quantity: Annotated[
        str | None, typer.Option("--quantity", help="how much of the line's quantity, at its unit price")
    ] = None,
    refund: Annotated[
        bool, typer.Option("--refund", help="paid back to the customer, not given back as kakin credit")
    ] = False,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key", help="repeat safely")] = None,
    fmt: FormatOption = OutputFormat.table,
    database_url: DbOption = None,
) -> None:
    """Correct an issued invoice: credited back as promotional credit, or --refund."""
    from kakin.billing.render import credit_note_json

    with _billing(database_url) as billing:
        note, repeated = billing.notes.issue(
            org,
            number,
            reason=reason,
            settlement="refund" if refund else "credit",
            amount=amount,
            line=line,
            quantity=quantity,
            idempotency_key=idempotency_key,
        )
    if fmt is OutputFormat.json:
        typer.echo(credit_note_json(note))
        return
    what = "credited back as promotional credit" if note.settlement == "credit" else "to be refunded"
    again = " (repeated: already issued)" if repeated else ""
    typer.echo(f"{note.number} for {note.invoice_number}: {note.amount} USD {what}{again} — {note.reason}")

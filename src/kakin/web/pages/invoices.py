"""Invoices: the organisation's list (issued ones and live drafts) and one invoice, printable,
with its PDF, CSV and JSON.

What a project key sees: no invoice. An invoice is the organisation's document — its lines
add up every project's usage, its credits and amount due are the organisation's — so showing
even one line of it would show a project what others spent. A project key's reader gets the
"not found" page here, whatever it asks for; the list and each invoice are for the admin key.
"""

from __future__ import annotations

import re

from starlette.responses import Response

from kakin.billing.render import LANGUAGES, invoice_csv, invoice_html, invoice_json, invoice_pdf, stylesheet
from kakin.errors import InvalidInput, NotFound
from kakin.web.dashboard import Context, Dashboard
from kakin.web.responses import SECURITY_HEADERS


def _admin_only(ctx: Context) -> None:
    if not ctx.scope.admin:
        raise NotFound(ctx.words["invoices_admin_only"])


def invoices_page(board: Dashboard, ctx: Context) -> Response:
    _admin_only(ctx)
    invoices = board.billing.invoices(ctx.org.id)
    return board.render(ctx, "invoices.html", active="invoices", invoices=list(reversed(invoices)))


def invoice_page(board: Dashboard, ctx: Context) -> Response:
    _admin_only(ctx)
    ref = ctx.request.path_params["ref"]
    invoice = board.billing.invoice(ctx.org.id, ref)
    digest = board.billing.content_hash(ctx.org.id, invoice.number) if invoice.number else None
    notes = board.billing.notes.of(ctx.org.id, invoice.number) if invoice.number else []
    lang = ctx.lang if ctx.lang in LANGUAGES else "en"
    fmt = ctx.request.query_params.get("format")
    if fmt is not None:
        stem = re.sub(
            r"[^A-Za-z0-9._-]+", "-", f"{ctx.org.name}-{invoice.number or invoice.month + '-draft'}"
        )
        if fmt == "pdf":
            body: bytes | str = invoice_pdf(invoice, lang, notes=notes, digest=digest)
            media = "application/pdf"
        elif fmt == "csv":
            body, media = invoice_csv(invoice), "text/csv; charset=utf-8"
        elif fmt == "json":
            body, media = invoice_json(invoice, digest), "application/json"
        else:
            raise InvalidInput(f"an invoice downloads as pdf, csv or json, not {fmt!r}")
        headers = {
            **SECURITY_HEADERS,
            "cache-control": "no-store",
            "content-disposition": f'attachment; filename="invoice-{stem}.{fmt}"',
        }
        return Response(body, media_type=media, headers=headers)
    document = invoice_html(invoice, lang, notes=notes, digest=digest)
    return board.render(ctx, "invoice.html", active="invoices", invoice=invoice, document=document)


def invoice_stylesheet(_request: object) -> Response:
    """The invoice's styles (kakin.billing's, shared with the PDF), served beside the pages'."""
    return Response(
        stylesheet(), media_type="text/css", headers={**SECURITY_HEADERS, "cache-control": "max-age=3600"}
    )

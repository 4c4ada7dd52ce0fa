"""Invoices: the list, one invoice (issued or its live draft), issuing, credit notes.

Every route calls :class:`kakin.billing.Billing`, the same documents the CLI and the pages
show; PDFs and printable pages are the dashboard's and the CLI's (``kakin invoice export``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from kakin.admin.context import AdminContext
from kakin.admin.errors import declare
from kakin.admin.fields import TEXT_PATTERN
from kakin.admin.routes.params import IdempotencyHeader, OrgRef, idempotency_key
from kakin.admin.schemas.common import Items, money
from kakin.admin.schemas.invoices import CreditNoteCreate, CreditNoteOut, InvoiceOut, IssueCreate, IssuedOut
from kakin.billing import Billing

InvoiceRef = Annotated[
    str,
    Path(
        description="invoice number (INV-000004), or a month (YYYY-MM): issued, or its live draft",
        pattern=TEXT_PATTERN,
        max_length=40,
        examples=["2026-03"],
    ),
]
InvoiceNumber = Annotated[
    str,
    Path(
        description="an issued invoice's number", pattern=TEXT_PATTERN, max_length=40, examples=["INV-000004"]
    ),
]


def router(ctx: AdminContext, billing: Billing) -> APIRouter:
    api = APIRouter(tags=["invoices"])

    @api.get(
        "/orgs/{org}/invoices",
        response_model=Items[InvoiceOut],
        response_model_exclude_none=False,
        summary="List invoices",
        description="The organisation's invoices, oldest first: the issued ones (as issued, never recomputed), "
        "then a live draft for each cycle begun and not issued yet. Listings leave out lines and credits.",
        responses=declare(404),
    )
    def list_invoices(org: OrgRef) -> Items[InvoiceOut]:
        return Items(items=[InvoiceOut.of(i, full=False) for i in billing.invoices(org)])

    @api.get(
        "/orgs/{org}/invoices/{ref}",
        response_model=InvoiceOut,
        summary="One invoice",
        description="An issued invoice by number or month, exactly as issued, with its content hash; or a month's "
        "live draft (the month so far, late charges during its grace period). Lines per model, unit and price "
        "(quantity, unit price, amount, price source and effective date), credit applied per grant, amount due.",
        responses=declare(404),
    )
    def show(org: OrgRef, ref: InvoiceRef) -> InvoiceOut:
        invoice = billing.invoice(org, ref)
        digest = billing.content_hash(org, invoice.number) if invoice.number else None
        return InvoiceOut.of(invoice, digest=digest)

    @api.post(
        "/orgs/{org}/invoices",
        status_code=201,
        response_model=Items[IssuedOut],
        summary="Issue a month",
        description="Issue (freeze and number) the month's invoice, and the organisation's earlier unissued cycles "
        "first, in order. A cycle is issued once it has ended; issuing an issued cycle changes nothing (it is "
        "listed with repeated=true, and the answer is 200 when nothing new was issued). 409 before the cycle ends.",
        responses={200: {"model": Items[IssuedOut], "description": "already issued"}, **declare(404, 409)},
    )
    def issue(org: OrgRef, body: IssueCreate, response: Response) -> Items[IssuedOut]:
        done = billing.issue(org, body.month)
        if all(item.repeated for item in done):
            response.status_code = 200
        return Items(
            items=[
                IssuedOut(
                    number=i.invoice.number or "",
                    month=i.invoice.month,
                    due=money(i.invoice.due),
                    repeated=i.repeated,
                )
                for i in done
            ]
        )

    @api.post(
        "/orgs/{org}/invoices/{number}/credit-notes",
        status_code=201,
        response_model=CreditNoteOut,
        summary="Issue a credit note",
        description="Correct an issued invoice (it never changes itself): a credit note with a reason for an amount, "
        "or for a quantity of one of its lines at that line's unit price; credited back as promotional credit in "
        "the ledger, or refunded. Never more than the invoice (or the line) has left to credit. Numbered gaplessly "
        "per organisation. Idempotent with a key (header or body): a retry answers 200 with the first note.",
        responses={200: {"model": CreditNoteOut, "description": "idempotent repeat"}, **declare(404, 409)},
    )
    def credit_note(
        org: OrgRef,
        number: InvoiceNumber,
        body: CreditNoteCreate,
        response: Response,
        idempotency: IdempotencyHeader = None,
    ) -> CreditNoteOut:
        key = (
            idempotency_key(idempotency, body.idempotency_key)
            if (idempotency or body.idempotency_key)
            else None
        )
        note, repeated = billing.notes.issue(
            org,
            number,
            reason=body.reason,
            settlement=body.settlement,
            amount=body.amount,
            line=body.line,
            quantity=body.quantity,
            idempotency_key=key,
        )
        if repeated:
            response.status_code = 200
        return CreditNoteOut.of(note, repeated)

    @api.get(
        "/orgs/{org}/credit-notes",
        response_model=Items[CreditNoteOut],
        summary="List credit notes",
        description="The organisation's credit notes, in number order, each naming the invoice it corrects.",
        responses=declare(404),
    )
    def credit_notes(org: OrgRef) -> Items[CreditNoteOut]:
        return Items(items=[CreditNoteOut.of(n) for n in billing.notes.of(org)])

    return api

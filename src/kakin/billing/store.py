"""Issued documents in the database: numbering, inserting, reading back (with the hash
checked), listing.

Numbers are gapless per organisation and kind: the ``billing_numbers`` row is incremented
(an upsert, which locks the row until commit) in the same transaction that inserts the
document. Two issuers of one organisation queue on that row; an issuer whose insert fails —
the cycle was issued by the other — rolls back, and its increment with it.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, Table, select, text

from kakin.billing import schema as b
from kakin.billing.document import CreditNote, Invoice, canonical, content_hash
from kakin.errors import KakinError

_NEXT = text(
    "INSERT INTO billing_numbers (org_id, kind, last) VALUES (:org, :kind, 1) "
    "ON CONFLICT (org_id, kind) DO UPDATE SET last = billing_numbers.last + 1 RETURNING last"
)


class TamperedDocument(KakinError):
    """A stored document whose text no longer matches the hash it was issued with."""

    status = 500
    code = "tampered_document"


def next_number(conn: Connection, org_id: str, kind: str) -> int:
    return int(conn.execute(_NEXT, {"org": org_id, "kind": kind}).scalar_one())


def insert_invoice(conn: Connection, invoice: Invoice, seq: int) -> str:
    """Store an issued invoice; returns its content hash."""
    return _insert_hashed(
        conn,
        b.invoices,
        invoice.to_dict(),
        id=invoice.id,
        org_id=invoice.org_id,
        month=invoice.month,
        seq=seq,
        number=invoice.number,
        cycle_start=_utc(invoice.cycle_start),
        cycle_end=_utc(invoice.cycle_end),
        issued_at=_utc(invoice.issued_at or invoice.as_of),
        through_usage_id=invoice.through_usage_id,
        charges_pico=invoice.charges_pico,
        credits_pico=invoice.credits_pico,
        due_pico=invoice.due_pico,
    )


def insert_credit_note(
    conn: Connection, note: CreditNote, seq: int, idempotency_key: str, params_hash: str
) -> str:
    return _insert_hashed(
        conn,
        b.credit_notes,
        note.to_dict(),
        id=note.id,
        org_id=note.org_id,
        invoice_id=note.invoice_id,
        seq=seq,
        number=note.number,
        issued_at=_utc(note.issued_at),
        amount_pico=note.amount_pico,
        settlement=note.settlement,
        idempotency_key=idempotency_key,
        params_hash=params_hash,
    )


def _insert_hashed(conn: Connection, table: Table, snapshot: dict[str, Any], **columns: Any) -> str:
    """Insert a row carrying the document's canonical text and its hash; returns the hash."""
    document = canonical(snapshot)
    digest = content_hash(document)
    conn.execute(table.insert().values(**columns, document=document, content_hash=digest))
    return digest


def invoice_of(row: Any) -> Invoice:
    """The stored invoice, as issued: its text must still hash to its recorded hash."""
    return Invoice.from_dict(_checked(row, "invoice"))


def credit_note_of(row: Any) -> CreditNote:
    return CreditNote.from_dict(_checked(row, "credit note"))


def _checked(row: Any, what: str) -> dict[str, Any]:
    if content_hash(row.document) != row.content_hash:
        raise TamperedDocument(
            f"{what} {row.number} no longer matches the hash it was issued with ({row.content_hash}); "
            "its stored text was changed outside kakin"
        )
    return orjson.loads(row.document)  # type: ignore[no-any-return]


def invoice_row(conn: Connection, org_id: str, ref: str) -> Any:
    """An issued invoice's row by number, or by month (``YYYY-MM``); None if there is none."""
    i = b.invoices
    column = i.c.month if is_month(ref) else i.c.number
    return conn.execute(select(i).where(i.c.org_id == org_id, column == ref)).first()


def is_month(ref: str) -> bool:
    """Whether an invoice reference names a month (``YYYY-MM``) rather than a number."""
    return len(ref) == 7 and ref[4] == "-" and ref[:4].isdigit() and ref[5:].isdigit()


def invoice_rows(conn: Connection, org_id: str) -> list[Any]:
    i = b.invoices
    return list(conn.execute(select(i).where(i.c.org_id == org_id).order_by(i.c.seq)))


def _utc(iso: str) -> Any:
    from datetime import UTC, datetime

    return datetime.fromisoformat(iso).astimezone(UTC)

"""Credit notes: corrections of an issued invoice, which never changes itself.

A note has a reason and credits an amount of the invoice, or a quantity of one of its lines at
that line's unit price — never more than the invoice (or the line) has left to credit. It is
settled by ``credit`` (given back as promotional credit in the ledger, under an idempotency key
the note names) or ``refund`` (paid back outside kakin). Notes are numbered gaplessly per
organisation like invoices, stored with their content hash, and idempotent under a key.
"""

from __future__ import annotations

import uuid
from decimal import Decimal, localcontext

from sqlalchemy import select

from kakin.billing import schema as b
from kakin.billing import store
from kakin.billing.document import CreditNote, Invoice
from kakin.errors import Conflict, InvalidInput, NotFound
from kakin.ledger import Ledger
from kakin.ledger.credit import params_hash
from kakin.ledger.ids import new_id
from kakin.money import EXACT, MoneyError, decimal_str, from_pico, to_decimal, to_pico

SETTLEMENTS = ("credit", "refund")


class CreditNotes:
    """Credit notes over one ledger."""

    def __init__(self, ledger: Ledger, prefix: str) -> None:
        self.ledger = ledger
        self.prefix = prefix

    def issue(
        self,
        org_ref: str,
        invoice_number: str,
        *,
        reason: str,
        settlement: str = "credit",
        amount: object = None,
        line: int | None = None,
        quantity: object = None,
        idempotency_key: str | None = None,
    ) -> tuple[CreditNote, bool]:
        """Correct an issued invoice: credit back (as ledger credit) or refund ``amount`` USD,
        or ``quantity`` of its line number ``line`` at that line's unit price. Returns the
        note and whether it was a repeat of the same ``idempotency_key``."""
        org = self.ledger.get_org(org_ref)
        row = self.ledger.read(lambda c: store.invoice_row(c, org.id, invoice_number))
        if row is None or row.number != invoice_number:
            raise NotFound(f"organisation {org.name!r} has no issued invoice numbered {invoice_number!r}")
        invoice = store.invoice_of(row)
        reason = (reason or "").strip()
        if not reason or len(reason) > 500:
            raise InvalidInput("a credit note needs a reason (1 to 500 characters)")
        if settlement not in SETTLEMENTS:
            raise InvalidInput(f"a credit note is settled by {' or '.join(SETTLEMENTS)}, not {settlement!r}")
        key = idempotency_key or uuid.uuid4().hex
        digest = params_hash(invoice_number, reason, settlement, amount, line, quantity)
        with self.ledger.engine.begin() as conn:
            seq = store.next_number(conn, org.id, "credit_note")  # also queues this org's notes
            n = b.credit_notes
            previous = conn.execute(select(n).where(n.c.org_id == org.id, n.c.idempotency_key == key)).first()
            if previous is not None:
                conn.rollback()  # gives the number back
                if previous.params_hash != digest:
                    raise Conflict(
                        f"idempotency key {key!r} was used for credit note {previous.number} with other parameters"
                    )
                note = store.credit_note_of(previous)
                self._credit_back(note)
                return note, True
            earlier = [
                store.credit_note_of(r) for r in conn.execute(select(n).where(n.c.invoice_id == invoice.id))
            ]
            pico, qty = _credited_amount(invoice, earlier, amount, line, quantity)
            now = self.ledger.now()
            note_id = new_id("cn")
            note = CreditNote(
                id=note_id,
                number=f"{self.prefix}{seq:06d}",
                org_id=org.id,
                invoice_id=str(invoice.id),
                invoice_number=invoice_number,
                issued_at=now.isoformat(),
                issuer=invoice.issuer,
                recipient=invoice.recipient,
                display=invoice.display,
                reason=reason,
                settlement=settlement,
                amount_pico=pico,
                line=line,
                quantity=qty,
                credit_key=f"credit-note:{note_id}" if settlement == "credit" else None,
            )
            store.insert_credit_note(conn, note, seq, key, digest)
        self._credit_back(note)
        return note, False

    def of(self, org_ref: str, invoice_number: str | None = None) -> list[CreditNote]:
        """The organisation's notes (or one invoice's), in number order."""
        org = self.ledger.get_org(org_ref)
        n = b.credit_notes
        query = select(n).where(n.c.org_id == org.id).order_by(n.c.seq)
        notes = [store.credit_note_of(r) for r in self.ledger.read(lambda c: c.execute(query).all())]
        return [note for note in notes if invoice_number is None or note.invoice_number == invoice_number]

    def _credit_back(self, note: CreditNote) -> None:
        """A "credit" note's amount as promotional credit (idempotent: repeated, it is granted once)."""
        if note.credit_key is None:
            return
        self.ledger.grant(
            note.org_id,
            "promotional",
            from_pico(note.amount_pico),
            idempotency_key=note.credit_key,
            note=f"credit note {note.number} for invoice {note.invoice_number}",
        )


def _credited_amount(
    invoice: Invoice, earlier: list[CreditNote], amount: object, line: int | None, quantity: object
) -> tuple[int, Decimal | None]:
    """The picodollars a new credit note may credit, checked against what earlier notes did."""
    try:
        if line is not None:
            if not 1 <= line <= len(invoice.lines):
                raise InvalidInput(
                    f"invoice {invoice.number} has lines 1 to {len(invoice.lines)}; there is no line {line}"
                )
            target = invoice.lines[line - 1]
            on_line = [n for n in earlier if n.line == line]
            if quantity is not None:
                if amount is not None:
                    raise InvalidInput(
                        "give a credit note either an amount or a quantity of a line, not both"
                    )
                qty = to_decimal(quantity, what="quantity")
                if target.unit_price is None:
                    raise InvalidInput(f"line {line} has no unit price; credit an amount of it instead")
                left = target.quantity - sum((n.quantity or Decimal(0) for n in on_line), Decimal(0))
                if not 0 < qty <= left:
                    raise InvalidInput(
                        f"line {line} has {left} {target.measure}s left to credit; {qty} asked"
                    )
                with localcontext(EXACT):
                    pico = to_pico(qty * target.unit_price)
                pico, qty_out = min(pico, target.amount_pico - sum(n.amount_pico for n in on_line)), qty
            else:
                pico = to_pico(to_decimal(amount, what="amount")) if amount is not None else None
                left_pico = target.amount_pico - sum(n.amount_pico for n in on_line)
                if pico is None:
                    pico = left_pico
                if not 0 < pico <= left_pico:
                    raise InvalidInput(
                        f"line {line} has {decimal_str(from_pico(left_pico))} USD left to credit; {decimal_str(from_pico(pico))} asked"
                    )
                qty_out = None
        else:
            if quantity is not None:
                raise InvalidInput("a quantity is credited on a line: give the line number too")
            if amount is None:
                raise InvalidInput("give the amount to credit (USD), or a line and a quantity of it")
            pico, qty_out = to_pico(to_decimal(amount, what="amount")), None
    except MoneyError as exc:
        raise InvalidInput(str(exc)) from None
    left = invoice.charges_pico - sum(n.amount_pico for n in earlier)
    if not 0 < pico <= left:
        raise InvalidInput(
            f"invoice {invoice.number} has {decimal_str(from_pico(left))} USD of charges left to credit; {decimal_str(from_pico(pico))} asked"
        )
    return pico, qty_out

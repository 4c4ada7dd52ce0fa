"""The :class:`Billing` facade: invoices (drafts and issued), issuing, closing cycles, and
credit notes — what the CLI, the admin API, the pages and ``kakin serve`` call.

A cycle's invoice is a **draft** from the cycle's start until it is issued: read live from the
ledger each time (the month so far; after the cycle ends, the late charges of its grace
period). **Issuing** freezes it: the document is stored with its content hash and a number,
and is never read from the ledger again. Cycles are issued in order (issuing a month issues
the organisation's earlier unissued cycles first), which is what makes every usage record
land on exactly one invoice (:mod:`kakin.billing.snapshot`). Issuing an issued cycle returns
it unchanged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from kakin.billing import schema as b
from kakin.billing import store
from kakin.billing.cycles import Cycle, cycle_at, cycle_of, cycles_between
from kakin.billing.document import CreditNote, Display, Invoice, Party
from kakin.billing.snapshot import read_figures, watermark
from kakin.config import BillingSettings
from kakin.errors import Conflict, InvalidInput, NotFound
from kakin.ledger import Ledger, Org
from kakin.ledger.credit import params_hash
from kakin.ledger.ids import new_id
from kakin.money import EXACT, MoneyError, decimal_str, from_pico, fx_rate, to_decimal, to_pico

SETTLEMENTS = ("credit", "refund")


@dataclass(frozen=True, slots=True)
class Issued:
    invoice: Invoice
    content_hash: str
    repeated: bool  # it was already issued


class Billing:
    """Invoices and credit notes over one ledger."""

    def __init__(
        self, ledger: Ledger, settings: BillingSettings | None = None, rates: dict[str, Decimal] | None = None
    ) -> None:
        self.ledger = ledger
        self.settings = settings or BillingSettings()
        self.rates = rates or {}

    @property
    def grace(self) -> timedelta:
        return timedelta(hours=self.settings.grace_hours)

    # Reading -------------------------------------------------------------------------------

    def invoices(self, org_ref: str) -> list[Invoice]:
        """Every invoice of the organisation, oldest first: the issued ones, then a draft for
        each cycle begun and not issued yet."""
        org = self.ledger.get_org(org_ref)
        rows = self.ledger.read(lambda c: store.invoice_rows(c, org.id))
        issued = [store.invoice_of(row) for row in rows]
        return issued + [
            self.draft(org, cycle) for cycle in self._unissued(org, rows[-1].month if rows else None)
        ]

    def invoice(self, org_ref: str, ref: str) -> Invoice:
        """One invoice by number, or by month (``YYYY-MM``: issued, or its live draft)."""
        org = self.ledger.get_org(org_ref)
        row = self._row(org, ref)
        if row is not None:
            return store.invoice_of(row)
        cycle = cycle_of(org.timezone, ref)
        if cycle.start > self.ledger.now() or cycle.end <= self._first_cycle(org).start:
            raise NotFound(
                f"organisation {org.name!r} has no invoice for {ref}: its cycles run from "
                f"{self._first_cycle(org).month} to {cycle_at(org.timezone, self.ledger.now()).month}"
            )
        return self.draft(org, cycle)

    def content_hash(self, org_ref: str, number: str) -> str:
        """The hash an issued invoice was stored with (reading it checks it still holds)."""
        org = self.ledger.get_org(org_ref)
        row = self._row(org, number)
        if row is None:
            raise NotFound(f"organisation {org.name!r} has no issued invoice {number!r}")
        store.invoice_of(row)
        return str(row.content_hash)

    def draft(self, org: Org, cycle: Cycle) -> Invoice:
        """``cycle``'s invoice as it stands now, read live from the ledger."""
        with self.ledger.engine.begin() as conn:
            through = watermark(conn, org.id)
            previous = self._previous(conn, org, cycle)
        # Before the previous cycle is issued its late charges are its own: none are prior here.
        return self._compose(org, cycle, previous or (through, cycle.start), through, None)

    # Issuing -------------------------------------------------------------------------------

    def issue(self, org_ref: str, month: str) -> list[Issued]:
        """Issue ``month`` and every earlier cycle of the organisation not issued yet, in order.
        A cycle is issued once it has ended; issuing one again returns it as it was."""
        org = self.ledger.get_org(org_ref)
        cycle = cycle_of(org.timezone, month)
        now = self.ledger.now()
        if cycle.end > now:
            zone = ZoneInfo(org.timezone)
            raise Conflict(
                f"the {month} cycle of {org.name!r} ends at {cycle.end.astimezone(zone).isoformat()}; "
                "it can be issued from then (its draft shows the month so far)"
            )
        first = self._first_cycle(org)
        if cycle.start < first.start:
            raise NotFound(f"organisation {org.name!r} has no {month} cycle: its first is {first.month}")
        return [self._issue_one(org, each) for each in cycles_between(org.timezone, first, cycle)]

    def close_due(self, org_ref: str | None = None) -> list[Issued]:
        """Issue every cycle, of every organisation (or of ``org_ref``), whose grace period
        has ended: what ``kakin serve`` runs in the background. Returns what it issued."""
        now = self.ledger.now()
        last = dict(
            self.ledger.read(
                lambda c: c.execute(
                    select(b.invoices.c.org_id, func.max(b.invoices.c.month)).group_by(b.invoices.c.org_id)
                ).all()
            )
        )
        issued: list[Issued] = []
        orgs = self.ledger.list_orgs() if org_ref is None else [self.ledger.get_org(org_ref)]
        for org in orgs:
            for cycle in self._unissued(org, last.get(org.id)):
                if cycle.closes_at(self.grace) > now:
                    break
                issued.append(self._issue_one(org, cycle))
        return issued

    def _issue_one(self, org: Org, cycle: Cycle) -> Issued:
        existing = self._row(org, cycle.month)
        if existing is not None:
            return Issued(store.invoice_of(existing), existing.content_hash, True)
        with self.ledger.engine.begin() as conn:  # the watermark's lock ends with this transaction
            through = watermark(conn, org.id)
            previous = self._previous(conn, org, cycle)
        if previous is None:
            raise Conflict(
                f"the cycle before {cycle.month} of {org.name!r} is not issued yet; issue it first"
            )
        draft = self._compose(org, cycle, previous, through, self.ledger.now())
        try:
            with self.ledger.engine.begin() as conn:
                seq = store.next_number(conn, org.id, "invoice")
                invoice = replace(draft, number=f"{self.settings.invoice_prefix}{seq:06d}")
                digest = store.insert_invoice(conn, invoice, seq)
        except IntegrityError:  # issued meanwhile by another process: theirs stands
            existing = self._row(org, cycle.month)
            if existing is None:
                raise
            return Issued(store.invoice_of(existing), existing.content_hash, True)
        return Issued(invoice, digest, False)

    def _compose(
        self, org: Org, cycle: Cycle, previous: tuple[int, datetime], through: int, issued_at: datetime | None
    ) -> Invoice:
        after, covered_end = previous
        figures = self.ledger.read(
            lambda c: read_figures(c, org.id, org.timezone, cycle, after, covered_end, through)
        )
        zone = ZoneInfo(org.timezone)
        now = issued_at or self.ledger.now()
        rate = fx_rate(org.currency, self.rates)
        issuer = self.settings.issuer
        due = (now.astimezone(zone).date() + timedelta(days=self.settings.payment_terms_days)).isoformat()
        return Invoice(
            status="draft" if issued_at is None else "issued",
            id=None if issued_at is None else new_id("inv"),
            number=None,
            org_id=org.id,
            month=cycle.month,
            timezone=org.timezone,
            cycle_start=cycle.start.astimezone(zone).isoformat(),
            cycle_end=cycle.end.astimezone(zone).isoformat(),
            issued_at=None if issued_at is None else issued_at.isoformat(),
            as_of=now.isoformat(),
            due_date=None if issued_at is None else due,
            issuer=Party(issuer.name, issuer.address, issuer.email, issuer.registration),
            recipient=Party(org.name, reference=org.id),
            display=Display(rate.currency, rate.per_usd, rate.source),
            lines=figures.lines,
            credits=figures.credits,
            charges_pico=figures.charges_pico,
            credits_pico=figures.credits_pico,
            due_pico=figures.due_pico,
            requests=figures.requests,
            through_usage_id=through,
            after_usage_id=after,
        )

    # Credit notes --------------------------------------------------------------------------

    def credit_note(
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
        row = self._row(org, invoice_number)
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
                number=f"{self.settings.credit_note_prefix}{seq:06d}",
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

    def credit_notes(self, org_ref: str, invoice_number: str | None = None) -> list[CreditNote]:
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

    # Cycles --------------------------------------------------------------------------------

    def _first_cycle(self, org: Org) -> Cycle:
        return cycle_at(org.timezone, org.created_at)

    def _unissued(self, org: Org, last_month: str | None) -> list[Cycle]:
        """Cycles begun and not issued, oldest first."""
        first = (
            self._first_cycle(org)
            if last_month is None
            else cycle_of(org.timezone, last_month).following(org.timezone)
        )
        now = self.ledger.now()
        if first.start > now:
            return []
        return cycles_between(org.timezone, first, cycle_at(org.timezone, now))

    def _row(self, org: Org, ref: str):  # type: ignore[no-untyped-def]
        i = b.invoices
        column = i.c.month if len(ref) == 7 and ref[4:5] == "-" and ref[:4].isdigit() else i.c.number
        return self.ledger.read(
            lambda c: c.execute(select(i).where(i.c.org_id == org.id, column == ref)).first()
        )

    def _previous(self, conn, org: Org, cycle: Cycle) -> tuple[int, datetime] | None:  # type: ignore[no-untyped-def]
        """The previous invoice's watermark and the end of its cycle; (0, this cycle's start)
        for the first cycle; None while the previous cycle is not issued."""
        if cycle.start <= self._first_cycle(org).start:
            return 0, cycle.start
        i = b.invoices
        previous = cycle.previous(org.timezone).month
        found = conn.execute(
            select(i.c.through_usage_id, i.c.cycle_end).where(i.c.org_id == org.id, i.c.month == previous)
        ).first()
        return None if found is None else (int(found.through_usage_id), found.cycle_end)


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

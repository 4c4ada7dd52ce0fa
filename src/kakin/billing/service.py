"""The :class:`Billing` facade: invoices (drafts and issued), issuing, closing cycles, and
credit notes — what the CLI, the admin API, the pages and ``kakin serve`` call.

A cycle's invoice is a **draft** from the cycle's start until it is issued: read live from the
ledger each time (the month so far; after the cycle ends, the late charges of its grace
period). **Issuing** freezes it: the document is stored with its content hash and a number,
and is never read from the ledger again; corrections are credit notes (``billing.notes``,
:mod:`kakin.billing.credit_notes`). Cycles are issued in order (issuing a month issues
the organisation's earlier unissued cycles first), which is what makes every usage record
land on exactly one invoice (:mod:`kakin.billing.snapshot`). Issuing an issued cycle returns
it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from kakin.billing import schema as b
from kakin.billing import store
from kakin.billing.credit_notes import CreditNotes
from kakin.billing.cycles import Cycle, cycle_at, cycle_of, cycles_between
from kakin.billing.document import Display, Invoice, Party
from kakin.billing.snapshot import read_figures, watermark
from kakin.config import BillingSettings
from kakin.errors import Conflict, NotFound
from kakin.ledger import Ledger, Org
from kakin.ledger.ids import new_id
from kakin.money import fx_rate

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
        self.notes = CreditNotes(ledger, self.settings.credit_note_prefix)

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
        if not store.is_month(ref):
            raise NotFound(f"organisation {org.name!r} has no invoice numbered {ref!r}")
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

    def _row(self, org: Org, ref: str) -> Any:
        return self.ledger.read(lambda c: store.invoice_row(c, org.id, ref))

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

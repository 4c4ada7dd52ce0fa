"""Billing cycles, invoices and credit notes: monthly cycles in the organisation's timezone,
live drafts, immutable issued invoices (a stored snapshot with its content hash and a gapless
number), credit notes that correct them, and their HTML, PDF, CSV and JSON faces.

    billing = Billing(ledger, settings.billing, rates=settings.currency.rates)
    billing.invoices("acme")                  -> [Invoice]   issued ones, then live drafts
    billing.invoice("acme", "2026-03" | "INV-000004") -> Invoice
    billing.issue("acme", "2026-03")          -> [Issued]    earlier unissued cycles first
    billing.close_due()                       -> [Issued]    every cycle past its grace period
    billing.notes.issue("acme", "INV-000004", reason=…, amount="1.20" | line=2, quantity=1000,
                        settlement="credit" | "refund")  -> (CreditNote, repeated)

See docs/billing.md.
"""

from kakin.billing import schema as schema  # the tables join the shared metadata
from kakin.billing.credit_notes import CreditNotes
from kakin.billing.document import CreditApplied, CreditNote, Display, Invoice, Line, Party
from kakin.billing.service import Billing, Issued

__all__ = [
    "Billing",
    "CreditApplied",
    "CreditNote",
    "CreditNotes",
    "Display",
    "Invoice",
    "Issued",
    "Line",
    "Party",
]

"""Reconciliation against the providers' own bills.

    from kakin.reconcile import BillStore, Reconciler
    BillStore(ledger).import_bill("acme", "openai", Path("costs.json").read_bytes(), "costs.json")
    result = Reconciler(ledger).compare("acme", "openai")
    [(l.day, l.model, l.unit, l.verdict, l.explained) for l in result.flagged]

A provider's cost (and usage) export is read into bill lines per UTC day (:mod:`.bills`, one
module per provider's formats), mapped to kakin's models and units by one data file
(:mod:`.mapping`), stored per organisation (:mod:`.store`), and set beside kakin's metering
of the same UTC days (:mod:`.metered`, from the rollups) with a verdict per line
(:mod:`.compare`). See docs/reconcile.md.
"""

from kakin.reconcile.bills import BillFormatError, BillLine, ParsedBill, parse_bill
from kakin.reconcile.compare import VERDICTS, Line, Reconciler, Reconciliation, Tolerance, UnitTotal
from kakin.reconcile.mapping import PROVIDERS, UNITS
from kakin.reconcile.store import BillImport, BillStore

__all__ = [
    "PROVIDERS",
    "UNITS",
    "VERDICTS",
    "BillFormatError",
    "BillImport",
    "BillLine",
    "BillStore",
    "Line",
    "ParsedBill",
    "Reconciler",
    "Reconciliation",
    "Tolerance",
    "UnitTotal",
    "parse_bill",
]

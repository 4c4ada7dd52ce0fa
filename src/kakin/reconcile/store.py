"""Imported bills, kept per organisation: importing, listing, reading lines back.

An import is all or nothing: the file is parsed whole first (a malformed one raises and
writes nothing), then its lines are written in one transaction that holds the organisation's
row, so concurrent imports into one organisation run one after the other. The same bytes
imported again are recognised by their SHA-256 and change nothing; a line imported again in
another file (a later export restating a day) replaces the earlier one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from kakin.ledger import Ledger
from kakin.ledger import schema as ledger_schema
from kakin.ledger.ids import new_id
from kakin.money import from_pico, to_pico
from kakin.reconcile.bills import BillLine, ParsedBill, identity, parse_bill
from kakin.reconcile.schema import provider_bill_imports as imports_table
from kakin.reconcile.schema import provider_bill_lines as lines_table

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class BillImport:
    """One imported file."""

    id: str
    org_id: str
    provider: str
    format: str
    filename: str
    sha256: str
    start_day: date
    end_day: date  # the day after the last
    rows: int
    lines: int
    skipped: int
    imported_at: datetime
    new: bool = True  # False: these bytes were imported before, and nothing changed


class BillStore:
    """Bills imported into the ledger's database."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def import_bill(self, org: str, provider: str, data: bytes, filename: str = "export") -> BillImport:
        """Import one export file of ``provider`` into ``org`` (see the module docstring)."""
        org_id = self.ledger.get_org(org).id
        digest = hashlib.sha256(data).hexdigest()
        known = self._by_digest(org_id, digest)
        if known is not None:
            return known
        parsed = parse_bill(provider, data, filename)
        return self.ledger.write(
            lambda work: self._write(work.conn, work.now, org_id, digest, filename, parsed)
        )

    def _write(
        self, conn: Connection, now: datetime, org_id: str, digest: str, filename: str, parsed: ParsedBill
    ) -> BillImport:
        orgs = ledger_schema.orgs
        # Hold the organisation: imports into it run one at a time (SQLite's writer already does).
        conn.execute(select(orgs.c.id).where(orgs.c.id == org_id).with_for_update())
        known = conn.execute(
            select(imports_table).where(imports_table.c.org_id == org_id, imports_table.c.sha256 == digest)
        ).first()
        if known is not None:  # imported by a concurrent call while this one parsed
            return _import(known._mapping, new=False)
        record = {
            "id": new_id("bil"),
            "org_id": org_id,
            "provider": parsed.provider,
            "format": parsed.format,
            "filename": filename[-300:],
            "sha256": digest,
            "start_day": parsed.start,
            "end_day": parsed.end,
            "rows": parsed.rows,
            "lines": len(parsed.lines),
            "skipped": parsed.skipped,
            "imported_at": now,
        }
        conn.execute(insert(imports_table), [record])
        rows = [_row(org_id, record["id"], parsed.provider, line) for line in parsed.lines]
        for first in range(0, len(rows), _CHUNK):
            chunk = rows[first : first + _CHUNK]
            keys = [row["row_key"] for row in chunk]
            conn.execute(
                delete(lines_table).where(lines_table.c.org_id == org_id, lines_table.c.row_key.in_(keys))
            )
            conn.execute(insert(lines_table), chunk)
        return _import(record, new=True)

    def _by_digest(self, org_id: str, digest: str) -> BillImport | None:
        query = select(imports_table).where(
            imports_table.c.org_id == org_id, imports_table.c.sha256 == digest
        )
        found = self.ledger.read(lambda c: c.execute(query).first())
        return None if found is None else _import(found._mapping, new=False)

    def imports(self, org: str, provider: str | None = None) -> list[BillImport]:
        """The organisation's imports, oldest first."""
        org_id = self.ledger.get_org(org).id
        query = select(imports_table).where(imports_table.c.org_id == org_id)
        if provider is not None:
            query = query.where(imports_table.c.provider == provider)
        query = query.order_by(imports_table.c.imported_at, imports_table.c.id)
        return [_import(row._mapping) for row in self.ledger.read(lambda c: c.execute(query).all())]

    def lines(self, org_id: str, provider: str, start: date, end: date) -> list[BillLine]:
        """The organisation's bill lines of ``provider`` over UTC days ``[start, end)``."""
        t = lines_table
        query = select(
            t.c.day, t.c.report, t.c.kind, t.c.account, t.c.line_item, t.c.model, t.c.unit
        ).add_columns(t.c.cost_pico, t.c.tokens)
        query = query.where(t.c.org_id == org_id, t.c.provider == provider, t.c.day >= start, t.c.day < end)
        found = self.ledger.read(lambda c: c.execute(query).all())
        return [
            BillLine(
                row.day,
                row.report,
                row.kind,
                row.account,
                row.line_item,
                row.model,
                row.unit,
                None if row.cost_pico is None else from_pico(row.cost_pico),
                row.tokens,
            )
            for row in found
        ]


def coverage(found: Sequence[BillImport]) -> tuple[date, date] | None:
    """The UTC days the imports cover, first to the day after the last (None: no import)."""
    if not found:
        return None
    return min(i.start_day for i in found), max(i.end_day for i in found)


def _row(org_id: str, import_id: str, provider: str, line: BillLine) -> dict[str, Any]:
    key = "\x1f".join([provider, *(str(part) for part in identity(line))])
    return {
        "org_id": org_id,
        "row_key": hashlib.sha256(key.encode()).hexdigest(),
        "provider": provider,
        "import_id": import_id,
        "day": line.day,
        "report": line.report,
        "kind": line.kind,
        "account": line.account[:200],
        "line_item": line.line_item[:500],
        "model": line.model[:200] if line.model else None,
        "unit": line.unit,
        "cost_pico": None if line.cost is None else to_pico(Decimal(line.cost)),
        "tokens": line.tokens,
    }


def _import(row: Any, new: bool = True) -> BillImport:
    return BillImport(
        id=row["id"],
        org_id=row["org_id"],
        provider=row["provider"],
        format=row["format"],
        filename=row["filename"],
        sha256=row["sha256"],
        start_day=row["start_day"],
        end_day=row["end_day"],
        rows=row["rows"],
        lines=row["lines"],
        skipped=row["skipped"],
        imported_at=row["imported_at"],
        new=new,
    )

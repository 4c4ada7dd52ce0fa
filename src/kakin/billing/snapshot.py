"""Reading an invoice's figures from the ledger: which usage it covers, its lines, the credit
that paid them and the postpaid rest.

**What an invoice covers.** Usage record ids grow with every commit that writes them, and
every charge of an organisation is written under that organisation's lock. The issuer fixes
a *watermark* — the highest usage record id once it holds the organisation's lock
(:func:`watermark`) — so every record of the organisation at or below it is committed and
every later one is above it. Invoice *N* with watermark ``W(N)`` covers the organisation's
records

* of its own cycle (``start ≤ occurred_at < end``) with ``id ≤ W(N)``: its lines; and
* of earlier cycles with ``W(N−1) < id ≤ W(N)``: charges posted after the previous invoice
  was issued, shown as prior-period adjustment lines.

Issued in cycle order, the invoices of an organisation cover each usage record exactly once.
(Precisely, earlier invoices covered the records with ``id ≤ W(N−1)`` that occurred before the
previous cycle's end; that end is this cycle's start unless the organisation's timezone
changed in between, and the hours a change skips or repeats are counted once all the same.)
Its credits and postpaid amount are the ledger's charge entries of those records'
reservations — the very entries the ledger wrote when it charged them (:mod:`kakin.ledger.credit`),
so charges = credits + postpaid, exactly, to the picodollar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Text, and_, cast, func, not_, or_, select, text

from kakin.billing.cycles import Cycle, cycle_at
from kakin.billing.document import CreditApplied, Line
from kakin.billing.lines import LineBook
from kakin.ledger import schema as s
from kakin.ledger.work import consumption_key


@dataclass(frozen=True, slots=True)
class Figures:
    lines: tuple[Line, ...]
    credits: tuple[CreditApplied, ...]
    charges_pico: int
    credits_pico: int
    due_pico: int
    requests: int


def watermark(conn: Connection, org_id: str) -> int:
    """The highest usage record id with every one of ``org_id``'s records at or below it
    committed, and every later one above it. On PostgreSQL the organisation's row lock (the
    lock every charge takes before it writes) is held until ``conn``'s transaction ends; on
    SQLite there is one writer at a time and a transaction reads one snapshot."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT id FROM orgs WHERE id = :org FOR UPDATE"), {"org": org_id})
    return int(conn.execute(select(func.coalesce(func.max(s.usage_records.c.id), 0))).scalar_one())


def read_figures(
    conn: Connection,
    org_id: str,
    timezone: str,
    cycle: Cycle,
    after: int,
    covered_end: datetime,
    through: int,
) -> Figures:
    """The lines, credits and amount due of ``cycle``'s invoice: the records up to ``through``
    that occurred before the cycle's end and that earlier invoices did not cover — those
    covered the records up to ``after`` (the previous watermark) that occurred before
    ``covered_end`` (the previous cycle's end, which is this cycle's start unless the
    organisation's timezone changed in between)."""
    u = s.usage_records
    items = cast(u.c.cost_items, Text)
    covered = and_(u.c.id <= after, u.c.occurred_at < covered_end)
    in_cycle = and_(
        u.c.occurred_at >= cycle.start, u.c.occurred_at < cycle.end, u.c.id <= through, not_(covered)
    )
    posted_late = and_(
        u.c.occurred_at < cycle.start, u.c.id <= through, or_(u.c.id > after, u.c.occurred_at >= covered_end)
    )
    # This cycle's records, alike ones counted together by the database: a record's lines
    # depend only on its model, cost, cost lines and whether it was a cache hit, so each
    # distinct one is itemised once.
    current = (
        select(
            u.c.model,
            u.c.cost_pico,
            items,
            u.c.cache_hit,
            func.count(),
            func.min(u.c.settled_at),
            func.max(u.c.settled_at),
        )
        .where(u.c.org_id == org_id, in_cycle)
        .group_by(u.c.model, u.c.cost_pico, items, u.c.cache_hit)
    )
    prior = select(u.c.model, u.c.cost_pico, items, u.c.cache_hit, u.c.occurred_at, u.c.settled_at).where(
        u.c.org_id == org_id, posted_late
    )
    book = LineBook()
    settled: list[datetime] = []
    charges = requests = 0
    for model, cost, text_items, hit, count, first, last in conn.execute(current):
        book.add("current", cycle.month, model, cost, text_items, count, hit)
        charges += cost * count
        requests += count
        settled += (first, last)
    months: dict[datetime, str] = {}
    for model, cost, text_items, hit, occurred, at in conn.execute(prior):
        month = months.get(occurred) or months.setdefault(occurred, cycle_at(timezone, occurred).month)
        book.add("prior", month, model, cost, text_items, 1, hit)
        charges += cost
        requests += 1
        settled.append(at)
    by_grant: dict[str | None, int] = {}
    if settled:
        e = s.entries
        # A record's charge entries are dated at its settlement (the entries' occurred_at is
        # the record's settled_at): the organisation's entries in that span hold them all.
        spent = (
            select(e.c.grant_id, func.sum(e.c.amount_pico))
            .select_from(e.join(u, u.c.reservation_id == e.c.reservation_id))
            .where(
                e.c.org_id == org_id,
                e.c.kind == "charge",
                e.c.occurred_at >= min(settled),
                e.c.occurred_at <= max(settled),
                u.c.org_id == org_id,
                or_(in_cycle, posted_late),
            )
            .group_by(e.c.grant_id)
        )
        by_grant = {grant_id: -int(total) for grant_id, total in conn.execute(spent)}
    postpaid = by_grant.pop(None, 0)
    credits = _credits(conn, org_id, by_grant)
    credited = sum(c.amount_pico for c in credits)
    return Figures(book.lines(), credits, charges, credited, postpaid, requests)


def _credits(conn: Connection, org_id: str, by_grant: dict[str | None, int]) -> tuple[CreditApplied, ...]:
    if not by_grant:
        return ()
    g = s.grants
    rows: list[dict[str, Any]] = [
        dict(row._mapping)
        for row in conn.execute(select(g).where(g.c.org_id == org_id, g.c.id.in_(list(by_grant))))
    ]
    rows.sort(key=consumption_key)  # the ledger's consumption order
    return tuple(
        CreditApplied(row["id"], row["kind"], row["note"], by_grant[row["id"]])
        for row in rows
        if by_grant[row["id"]]
    )

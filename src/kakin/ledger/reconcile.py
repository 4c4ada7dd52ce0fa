"""Proof that every counter equals the sum of what it summarises.

Counters are kept in the same transaction as the entries, reservations and usage records
they summarise, so this should never find a difference; it exists to show that, in tests
and on demand (``kakin ledger show --reconcile``). It runs under the organisation lock, so
it sees one consistent state even on PostgreSQL's READ COMMITTED.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, literal, select, true

from kakin.ledger import rollups
from kakin.ledger import schema as s
from kakin.ledger.budgets import _scope_filter
from kakin.ledger.periods import period_bounds
from kakin.ledger.records import Check, Reconciliation
from kakin.ledger.work import Work


def _sum(work: Work, column: object, *conditions: object) -> int:
    value = work.conn.execute(select(func.coalesce(func.sum(column), 0)).where(*conditions)).scalar()
    return int(value or 0)


def reconcile(work: Work, org_id: str) -> Reconciliation:
    org = work.org(org_id)
    work.flush()  # housekeeping done on lock must be visible to the sums below
    oid = org["id"]
    e, g, r, u = s.entries, s.grants, s.reservations, s.usage_records
    checks = [
        Check(
            "credit = Σ grant entries",
            org["credit_pico"],
            _sum(work, e.c.amount_pico, e.c.org_id == oid, e.c.grant_id.is_not(None)),
        ),
        Check(
            "spent = −Σ charge entries",
            org["spent_pico"],
            -_sum(work, e.c.amount_pico, e.c.org_id == oid, e.c.kind == "charge"),
        ),
        Check(
            "spent = Σ usage record costs", org["spent_pico"], _sum(work, u.c.cost_pico, u.c.org_id == oid)
        ),
        Check(
            "spent tokens = Σ usage record tokens",
            org["spent_tokens"],
            _sum(work, u.c.input_tokens + u.c.output_tokens, u.c.org_id == oid),
        ),
        Check(
            "due = −Σ postpaid charges and payments",
            org["due_pico"],
            -_sum(
                work,
                e.c.amount_pico,
                e.c.org_id == oid,
                e.c.grant_id.is_(None),
                e.c.kind.in_(("charge", "payment")),
            ),
        ),
        Check("paid = prepaid grants + payments − refunds", org["paid_pico"], _paid(work, oid)),
        Check(
            "held = Σ open reservations",
            org["held_pico"],
            _sum(work, r.c.amount_pico, r.c.org_id == oid, r.c.status == s.HELD),
        ),
        Check(
            "held tokens = Σ open reservations",
            org["held_tokens"],
            _sum(work, r.c.tokens, r.c.org_id == oid, r.c.status == s.HELD),
        ),
        Check(
            "unbounded holds = open reservations with unbounded output",
            org["held_unbounded"],
            _sum(work, literal(1), r.c.org_id == oid, r.c.status == s.HELD, r.c.unbounded == true()),
        ),
        Check(
            "settled amounts = −Σ charge entries",
            _sum(work, r.c.actual_pico, r.c.org_id == oid, r.c.status == "settled"),
            -_sum(work, e.c.amount_pico, e.c.org_id == oid, e.c.kind == "charge"),
        ),
        Check(
            "grants below zero",
            int(
                work.conn.execute(
                    select(func.count()).where(g.c.org_id == oid, g.c.remaining_pico < 0)
                ).scalar()
                or 0
            ),
            0,
        ),
    ]
    checks += _grant_checks(work, oid)
    checks += _budget_checks(work, org)
    checks += _rollup_checks(work, oid)
    return Reconciliation(org_id=oid, checks=tuple(checks))


def _rollup_checks(work: Work, org_id: str) -> list[Check]:
    """Each rollup table holds every usage record once: same requests, cost and savings, and
    money by unit adding up to the cost; and each narrower table is, row for row, its full
    table summed over the dimensions it leaves out."""
    u = s.usage_records
    recorded = {
        "requests": int(
            work.conn.execute(select(func.count()).select_from(u).where(u.c.org_id == org_id)).scalar() or 0
        ),
        "cost_pico": _sum(work, u.c.cost_pico, u.c.org_id == org_id),
        "cached_tokens": _sum(work, u.c.cached_tokens, u.c.org_id == org_id),
        "cache_saved_pico": _sum(work, u.c.cache_saved_pico, u.c.org_id == org_id),
        "routing_saved_pico": _sum(work, u.c.routing_saved_pico, u.c.org_id == org_id),
    }
    out = []
    for spec in rollups.TABLES:
        table = s.ROLLUPS[spec.name]
        if not spec.full:
            out.append(Check(f"{table.name} rows ≠ its full table summed", _differing(work, spec, org_id), 0))
        for measure, total in recorded.items():
            rolled = _sum(work, table.c[measure], table.c.org_id == org_id)
            out.append(Check(f"{table.name} {measure} = Σ usage records", rolled, total))
        by_unit = sum((table.c[f"{unit}_pico"] for unit in rollups.UNITS[1:]), table.c.input_pico)
        out.append(
            Check(
                f"{table.name} cost = Σ its units",
                _sum(work, table.c.cost_pico, table.c.org_id == org_id),
                _sum(work, by_unit, table.c.org_id == org_id),
            )
        )
    return out


def _differing(work: Work, spec: rollups.Table, org_id: str) -> int:
    """Rows of the narrower table ``spec`` that are not its full table's rows summed, and
    the reverse (a row missing on either side, or any measure different)."""
    narrow = s.ROLLUPS[spec.name]
    full = next(s.ROLLUPS[t.name] for t in rollups.TABLES if t.full and t.grain == spec.grain)
    keys = [full.c[d] for d in spec.dimensions]
    summed = (
        select(*keys, *(func.sum(full.c[m]) for m in rollups.MEASURES))
        .where(full.c.org_id == org_id)
        .group_by(*keys)
    )
    stored = select(*(narrow.c[c] for c in (*spec.dimensions, *rollups.MEASURES))).where(
        narrow.c.org_id == org_id
    )
    count = 0
    for one, other in ((summed, stored), (stored, summed)):
        difference = one.except_(other).subquery()
        count += int(work.conn.execute(select(func.count()).select_from(difference)).scalar() or 0)
    return count


def _paid(work: Work, org_id: str) -> int:
    e, g = s.entries, s.grants
    prepaid = int(
        work.conn.execute(
            select(func.coalesce(func.sum(e.c.amount_pico), 0))
            .select_from(e.join(g, g.c.id == e.c.grant_id))
            .where(e.c.org_id == org_id, g.c.category == "paid", e.c.kind.in_(("grant", "refund")))
        ).scalar()
        or 0
    )
    return prepaid + _sum(work, e.c.amount_pico, e.c.org_id == org_id, e.c.kind == "payment")


def _grant_checks(work: Work, org_id: str) -> list[Check]:
    e, g = s.entries, s.grants
    sums = {
        row.grant_id: int(row.total)
        for row in work.conn.execute(
            select(e.c.grant_id, func.sum(e.c.amount_pico).label("total"))
            .where(e.c.org_id == org_id, e.c.grant_id.is_not(None))
            .group_by(e.c.grant_id)
        )
    }
    out = []
    for row in work.conn.execute(
        select(g.c.id, g.c.remaining_pico).where(g.c.org_id == org_id).order_by(g.c.id)
    ):
        out.append(
            Check(f"grant {row.id} remaining = Σ its entries", row.remaining_pico, sums.get(row.id, 0))
        )
    return out


def _budget_checks(work: Work, org: dict) -> list[Check]:
    bp, u, r = s.budget_periods, s.usage_records, s.reservations
    out = []
    budgets = {b["id"]: b for b in work.budgets_of(org["id"])}
    if not budgets:
        return out
    held_rows = list(
        work.conn.execute(
            select(r.c.amount_pico, r.c.tokens, r.c.holds).where(
                r.c.org_id == org["id"], r.c.status == s.HELD
            )
        )
    )
    for period in work.conn.execute(select(bp).where(bp.c.budget_id.in_(budgets))):
        budget = budgets[period.budget_id]
        start: datetime = period.period_start
        _, end = period_bounds(budget["period"], org["timezone"], start)
        window = [u.c.org_id == org["id"], u.c.occurred_at >= start, _scope_filter(u, budget)]
        if end is not None:
            window.append(u.c.occurred_at < end)
        label = f"budget {budget['name']!r} period {start.isoformat()}"
        out.append(
            Check(f"{label} spent = Σ usage", period.spent_pico, _sum(work, u.c.cost_pico, and_(*window)))
        )
        out.append(
            Check(
                f"{label} spent tokens = Σ usage",
                period.spent_tokens,
                _sum(work, u.c.input_tokens + u.c.output_tokens, and_(*window)),
            )
        )
        marker = [budget["id"], start.isoformat()]
        holding = [row for row in held_rows if marker in (row.holds or [])]
        out.append(
            Check(
                f"{label} held = Σ its open holds", period.held_pico, sum(row.amount_pico for row in holding)
            )
        )
        out.append(
            Check(
                f"{label} held tokens = Σ its open holds",
                period.held_tokens,
                sum(row.tokens for row in holding),
            )
        )
    return out

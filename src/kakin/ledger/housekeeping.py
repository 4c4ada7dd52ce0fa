"""Time-driven work, done when an organisation is locked and before any operation reads it:
grant activations and expiries, expired holds, tier promotions. Each is dated at the instant
it became due, so doing it lazily is exact."""

from __future__ import annotations

from sqlalchemy import func, select

from kakin.ledger import budgets, credit, tiers
from kakin.ledger import schema as s
from kakin.ledger.work import Row, Work


def run(work: Work, org: Row) -> None:
    credit.process_events(work, org)
    expire_holds(work, org)
    tiers.evaluate(work, org)


def expire_holds(work: Work, org: Row) -> None:
    due = org["next_hold_expiry"]
    if due is None or due > work.now:
        return
    r = s.reservations
    rows = work.conn.execute(
        select(r).where(r.c.org_id == org["id"], r.c.status == s.HELD, r.c.expires_at <= work.now)
    )
    for row in rows:
        reservation = work.adopt_reservation(dict(row._mapping))
        if reservation["status"] == "held":
            release_hold(work, org, reservation, "expired", reservation["expires_at"])
    org["next_hold_expiry"] = work.conn.execute(
        select(func.min(r.c.expires_at)).where(
            r.c.org_id == org["id"], r.c.status == s.HELD, r.c.expires_at > work.now
        )
    ).scalar()
    work.touch_org(org)


def release_hold(work: Work, org: Row, reservation: Row, status: str, at: object) -> None:
    """Give a reservation's held room back to the organisation and its budgets."""
    org["held_pico"] -= reservation["amount_pico"]
    org["held_tokens"] -= reservation["tokens"]
    org["held_unbounded"] -= bool(reservation["unbounded"])
    work.touch_org(org)
    budgets.release(work, reservation)
    reservation["status"] = status
    reservation["closed_at"] = at
    work.touch_reservation(reservation)

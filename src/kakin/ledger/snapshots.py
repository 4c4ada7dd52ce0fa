"""Account snapshots: what a shared hold store (kakin.gateway.holds, in Redis) rebuilds an
organisation's spending room from.

A snapshot is the ledger's side of an organisation at one instant, as plain numbers: credit
and held (picodollars), every budget's counters in its current period (in its unit), the
keys that refuse requests and from when, and the instant the figures may change by
themselves (a period boundary, a grant event, a hold expiring) or ``max_age`` at the latest.
The hold store adds what the ledger does not have yet — holds of requests in flight, charges
made durable in a gateway's journal but not yet posted — so it is also told which of those
charges (by idempotency key) the ledger already holds: ``posted``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from kakin.ledger import admission, charges
from kakin.ledger import schema as s
from kakin.ledger.work import Work, min_time

DEFAULT_MAX_AGE = timedelta(seconds=60)
_CHUNK = 1000


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class BudgetSnapshot:
    id: str
    name: str
    scope: str
    scope_ref: str
    period: str
    unit: str
    source: str
    limit: int
    hard_cap: bool
    start_ms: int  # the current period, in epoch milliseconds
    end_ms: int | None  # None: a total budget never resets
    spent: int  # in the budget's unit
    held: int

    def row(self) -> dict[str, object]:
        """As the budget row :func:`kakin.ledger.admission.refusal` words a refusal from."""
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope,
            "scope_ref": self.scope_ref,
            "period": self.period,
            "unit": self.unit,
            "source": self.source,
            "limit_value": self.limit,
        }


@dataclass(frozen=True, slots=True)
class KeyBlock:
    """A key refused from ``since_ms`` on (0: at once), with the error the ledger raises."""

    key_id: str
    since_ms: int
    error: str  # the class name in kakin.ledger.errors: KeyRevoked, KeyExpired, KeySuspended
    message: str


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    org_id: str
    name: str
    timezone: str
    tier: str | None
    tier_rules: str | None
    payment_method: bool
    credit_pico: int
    held_pico: int
    held_unbounded: int  # open reservations whose output is unbounded
    budgets: tuple[BudgetSnapshot, ...]
    blocked: tuple[KeyBlock, ...]
    taken_ms: int
    valid_until_ms: int
    posted: tuple[str, ...]  # the asked idempotency keys the ledger already has

    def org_row(self) -> dict[str, object]:
        """As the organisation row :func:`kakin.ledger.admission.refusal` words a refusal from."""
        return {
            "id": self.org_id,
            "name": self.name,
            "timezone": self.timezone,
            "tier": self.tier,
            "tier_rules": self.tier_rules,
        }


def load(
    work: Work, org_id: str, charge_keys: Sequence[str] = (), max_age: timedelta = DEFAULT_MAX_AGE
) -> AccountSnapshot:
    """Inside a ledger transaction (after the organisation's housekeeping)."""
    org = work.org(org_id)
    now = work.now
    valid_until = now + max_age
    budgets = []
    for budget in work.budgets_of(org["id"]):
        start, end = work.period_bounds(budget["period"], org["timezone"], now)
        room = admission.budget_room(budget, work.period(budget["id"], start, create=False))
        budgets.append(
            BudgetSnapshot(
                id=budget["id"],
                name=budget["name"],
                scope=budget["scope"],
                scope_ref=budget["scope_ref"],
                period=budget["period"],
                unit=budget["unit"],
                source=budget["source"],
                limit=budget["limit_value"],
                hard_cap=bool(budget["hard_cap"]),
                start_ms=epoch_ms(start),
                end_ms=None if end is None else epoch_ms(end),
                spent=room.spent,
                held=room.held,
            )
        )
        valid_until = min_time(valid_until, end) or valid_until
    valid_until = min_time(valid_until, org["next_grant_event"], org["next_hold_expiry"]) or valid_until
    return AccountSnapshot(
        org_id=org["id"],
        name=org["name"],
        timezone=org["timezone"],
        tier=org["tier"],
        tier_rules=org["tier_rules"],
        payment_method=bool(org["payment_method"]),
        credit_pico=org["credit_pico"],
        held_pico=org["held_pico"],
        held_unbounded=org["held_unbounded"],
        budgets=tuple(budgets),
        blocked=_blocked_keys(work, org["id"]),
        taken_ms=epoch_ms(now),
        valid_until_ms=epoch_ms(valid_until),
        posted=_posted(work, org["id"], charge_keys),
    )


def _blocked_keys(work: Work, org_id: str) -> tuple[KeyBlock, ...]:
    k = s.api_keys
    rows = work.conn.execute(
        select(k).where(
            k.c.org_id == org_id,
            or_(k.c.revoked_at.is_not(None), k.c.expires_at.is_not(None), k.c.suspended_at.is_not(None)),
        )
    )
    out = []
    for row in rows:
        key = dict(row._mapping)
        for since, error in charges.key_refusals(key):
            out.append(
                KeyBlock(
                    key["id"], 0 if since is None else epoch_ms(since), type(error).__name__, error.message
                )
            )
    return tuple(out)


def _posted(work: Work, org_id: str, charge_keys: Sequence[str]) -> tuple[str, ...]:
    r = s.reservations
    found: list[str] = []
    keys = list(charge_keys)
    for at in range(0, len(keys), _CHUNK):
        chunk = keys[at : at + _CHUNK]
        found += work.conn.execute(
            select(r.c.idempotency_key).where(r.c.org_id == org_id, r.c.idempotency_key.in_(chunk))
        ).scalars()
    return tuple(found)

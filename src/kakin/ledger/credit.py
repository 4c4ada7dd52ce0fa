"""Credit grants: how credit arrives, burns down in a fixed order, expires and is refunded.

A grant is credited by a ``grant`` entry dated at its effective time and loses what is left
of it by an ``expiry`` entry dated at its expiry time — both written lazily by the first
transaction that touches the organisation after that instant, so they are exact without a
scheduler. Charges burn grants in :func:`kakin.ledger.work.consumption_key` order and may
span several; what no grant covers is a postpaid charge (amount due).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import insert, select

from kakin.errors import Conflict, InvalidInput, NotFound
from kakin.ledger import schema as s
from kakin.ledger.ids import new_id
from kakin.ledger.records import Grant
from kakin.ledger.validate import usd
from kakin.ledger.work import Row, Work, min_time
from kakin.money import from_pico

CATEGORY = {"free_trial": "free", "welcome": "free", "prepaid": "paid", "promotional": "promotional"}
FREE_KINDS = tuple(kind for kind, category in CATEGORY.items() if category == "free")
ANY_FREE = "free"  # the identity claim every free grant also makes
RANK = {"free": 0, "promotional": 0, "paid": 1}
DEFAULT_PRIORITY = 10
FREE_TRIAL_DAYS = 90  # "3 months", as the providers count it


class FreeCreditRefused(Conflict):
    """A free grant this verified identity is not entitled to (again)."""

    code = "free_credit_refused"


# Time-driven events --------------------------------------------------------------------


def process_events(work: Work, org: Row) -> None:
    """Write every grant activation and expiry due by ``work.now``, in time order."""
    due = org["next_grant_event"]
    if due is None or due > work.now:
        return
    grants = work.grants_of(org["id"])
    events: list[tuple[datetime, int, str, Row]] = []
    for grant in grants:
        if grant["activated_at"] is None and grant["effective_at"] <= work.now:
            events.append((grant["effective_at"], 0, grant["id"], grant))
        expires = grant["expires_at"]
        if expires is not None and grant["expired_at"] is None and expires <= work.now:
            events.append((expires, 1, grant["id"], grant))
    for _when, kind, _id, grant in sorted(events, key=lambda e: e[:3]):
        if kind == 0:
            _activate(work, org, grant)
        else:
            _expire(work, org, grant)
    org["next_grant_event"] = next_event(grants)
    work.touch_org(org)


def next_event(grants: list[Row]) -> datetime | None:
    upcoming: list[datetime] = []
    for grant in grants:
        if grant["activated_at"] is None:
            upcoming.append(grant["effective_at"])
        elif grant["expires_at"] is not None and grant["expired_at"] is None and grant["remaining_pico"] > 0:
            upcoming.append(grant["expires_at"])
    return min(upcoming) if upcoming else None


def _activate(work: Work, org: Row, grant: Row) -> None:
    amount = grant["amount_pico"]
    grant["activated_at"] = grant["effective_at"]
    grant["remaining_pico"] += amount
    work.touch_grant(grant)
    detail = {"grant_kind": grant["kind"], "category": grant["category"]}
    work.add_entry(org["id"], "grant", amount, grant["effective_at"], grant_id=grant["id"], detail=detail)
    org["credit_pico"] += amount
    if grant["category"] == "paid":
        org["paid_pico"] += amount
        org["first_payment_at"] = min_time(org["first_payment_at"], grant["effective_at"])
    work.touch_org(org)


def _expire(work: Work, org: Row, grant: Row) -> None:
    grant["expired_at"] = grant["expires_at"]
    left = grant["remaining_pico"]
    if left > 0:
        grant["remaining_pico"] = 0
        work.add_entry(
            org["id"],
            "expiry",
            -left,
            grant["expires_at"],
            grant_id=grant["id"],
            detail={"expired": str(from_pico(left))},
        )
        org["credit_pico"] -= left
    work.touch_grant(grant)
    work.touch_org(org)


# Charging ------------------------------------------------------------------------------


def consume(work: Work, org: Row, amount: int, reservation_id: str) -> tuple[int, int]:
    """Post a charge of ``amount`` picodollars: grants in order, the rest postpaid.
    Returns (from credit, postpaid)."""
    left = amount
    for grant in work.grants_of(org["id"]):
        if left == 0:
            break
        if grant["activated_at"] is None or grant["remaining_pico"] <= 0:
            continue
        take = min(left, grant["remaining_pico"])
        grant["remaining_pico"] -= take
        work.touch_grant(grant)
        work.add_entry(
            org["id"], "charge", -take, work.now, grant_id=grant["id"], reservation_id=reservation_id
        )
        left -= take
    from_credit = amount - left
    org["credit_pico"] -= from_credit
    if left:
        work.add_entry(
            org["id"], "charge", -left, work.now, reservation_id=reservation_id, detail={"postpaid": True}
        )
        org["due_pico"] += left
    org["spent_pico"] += amount
    work.touch_org(org)
    return from_credit, left


# Granting ------------------------------------------------------------------------------


def params_hash(*parts: object) -> str:
    return hashlib.sha256("|".join(["" if p is None else str(p) for p in parts]).encode()).hexdigest()


def create(
    work: Work,
    org: Row,
    *,
    kind: str,
    amount_pico: int,
    idempotency_key: str,
    effective_at: datetime | None,
    expires_at: datetime | None,
    expires_in: timedelta | None,
    priority: int | None,
    note: str,
) -> Row:
    """Add a grant (idempotently). Checks everything before writing anything."""
    if kind not in CATEGORY:
        raise InvalidInput(f"grant kind {kind!r} is not one of: {', '.join(CATEGORY)}")
    if expires_at is not None and expires_in is not None:
        raise InvalidInput("give either expires_at or expires_in for a grant, not both")
    if priority is not None and (
        isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 1000
    ):
        raise InvalidInput(f"grant priority must be a whole number from 0 to 1000, got {priority!r}")
    start = effective_at or work.now
    if expires_in is not None:
        expires_at = start + expires_in
    elif expires_at is None and kind == "free_trial":
        expires_at = start + timedelta(days=FREE_TRIAL_DAYS)
    if expires_at is not None and expires_at <= start:
        raise InvalidInput(
            f"grant expiry {expires_at.isoformat()} must be after its effective time {start.isoformat()}"
        )
    category = CATEGORY[kind]
    prio = DEFAULT_PRIORITY if priority is None else priority
    digest = params_hash(
        kind, amount_pico, effective_at, expires_at if expires_in is None else expires_in, prio
    )
    existing = work.conn.execute(
        select(s.grants).where(s.grants.c.org_id == org["id"], s.grants.c.idempotency_key == idempotency_key)
    ).first()
    if existing is not None:
        if existing.params_hash != digest:
            raise Conflict(
                f"idempotency key {idempotency_key!r} already granted {existing.kind} credit "
                f"{usd(existing.amount_pico)} ({existing.id}) with other parameters; use a new key"
            )
        return {**dict(existing._mapping), "repeated": True}
    identity = _check_free_entitlement(work, org, kind) if category == "free" else None
    grant = {
        "id": new_id("grt"),
        "org_id": org["id"],
        "kind": kind,
        "category": category,
        "rank": RANK[category],
        "priority": prio,
        "amount_pico": amount_pico,
        "remaining_pico": 0,
        "refunded_pico": 0,
        "effective_at": start,
        "expires_at": expires_at,
        "activated_at": None,
        "expired_at": None,
        "identity": identity,
        "idempotency_key": idempotency_key,
        "params_hash": digest,
        "note": note,
        "created_at": work.now,
    }
    work.add_grant(grant)
    if identity is not None:
        _claim(work, identity, kind, org["id"], grant["id"])
        # One row for any free kind too: two organisations claiming different free kinds for
        # the same identity at once collide on it instead of both succeeding.
        _claim(work, identity, ANY_FREE, org["id"], grant["id"])
    if kind == "prepaid":
        mark_billing(work, org)
    org["next_grant_event"] = min_time(org["next_grant_event"], start)
    work.touch_org(org)
    process_events(work, org)
    return grant


def _check_free_entitlement(work: Work, org: Row, kind: str) -> str:
    """The verified identity a free grant is claimed for, or the refusal saying why not:
    one free grant — free trial or welcome — per identity, ever; welcome credit only for an
    organisation that has a billing account, the identity's first."""
    what = "free trial credit" if kind == "free_trial" else "welcome credit"
    phone = org["phone"]
    if phone is None:
        raise InvalidInput(
            f"{what} needs a verified identity: set the organisation's phone number first "
            f"(kakin org update {org['name']} --phone +81…); one free grant per phone number"
        )
    claims = {
        row.kind: row
        for row in work.conn.execute(select(s.identity_claims).where(s.identity_claims.c.identity == phone))
    }
    earlier = min(
        (claims[k] for k in FREE_KINDS if k in claims), key=lambda row: row.claimed_at, default=None
    )
    if earlier is not None:
        had = "free trial credit" if earlier.kind == "free_trial" else "welcome credit"
        who = (
            "this organisation"
            if earlier.org_id == org["id"]
            else f"organisation {_org_name(work, earlier.org_id)!r}"
        )
        then = (
            "its usage is billed to its payment method"
            if org["payment_method"]
            else "add a payment method or buy prepaid credit to continue"
        )
        raise FreeCreditRefused(
            f"no {what} for {org['name']!r}: phone {phone} already received {had} with {who} on "
            f"{earlier.claimed_at:%Y-%m-%d} (one free grant per verified identity); {then}"
        )
    if kind == "welcome":
        if org["billing_since"] is None:
            raise FreeCreditRefused(
                f"no welcome credit for {org['name']!r}: welcome credit is only for new billing accounts, "
                "and this organisation has none (no payment method on file, no prepayment); add a payment "
                f"method (kakin org update {org['name']} --payment-method LABEL) or buy prepaid credit first"
            )
        billing = claims.get("billing")
        if billing is not None and billing.org_id != org["id"]:
            raise FreeCreditRefused(
                f"no welcome credit for {org['name']!r}: welcome credit is only for new billing accounts, "
                f"and phone {phone} has had one since {billing.claimed_at:%Y-%m-%d} "
                f"(organisation {_org_name(work, billing.org_id)!r})"
            )
    return phone


def _org_name(work: Work, org_id: str) -> str:
    name = work.conn.execute(select(s.orgs.c.name).where(s.orgs.c.id == org_id)).scalar()
    return name or org_id


def _claim(work: Work, identity: str, kind: str, org_id: str, grant_id: str | None) -> None:
    work.conn.execute(
        insert(s.identity_claims),
        [
            {
                "identity": identity,
                "kind": kind,
                "org_id": org_id,
                "grant_id": grant_id,
                "claimed_at": work.now,
            }
        ],
    )


def mark_billing(work: Work, org: Row) -> None:
    """Record that this organisation has a billing account (payment method or prepayment),
    and that its verified identity has had one, for the welcome-credit rule."""
    if org["billing_since"] is None:
        org["billing_since"] = work.now
        work.touch_org(org)
    phone = org["phone"]
    if phone is not None:
        taken = work.conn.execute(
            select(s.identity_claims.c.org_id).where(
                s.identity_claims.c.identity == phone, s.identity_claims.c.kind == "billing"
            )
        ).first()
        if taken is None:
            _claim(work, phone, "billing", org["id"], None)


# Refunds and payments ------------------------------------------------------------------


def refund(work: Work, grant_id: str, amount_pico: int | None, idempotency_key: str) -> tuple[Row, int, bool]:
    """Return unused prepaid credit. Returns (grant, refunded amount, repeated)."""
    row = work.conn.execute(select(s.grants.c.org_id).where(s.grants.c.id == grant_id)).first()
    if row is None:
        raise NotFound(f"no grant with id {grant_id!r} (see `kakin credits list`)")
    org = work.org(row.org_id)
    grant = next((g for g in work.grants_of(org["id"]) if g["id"] == grant_id), None)
    if grant is None:
        grant = dict(work.conn.execute(select(s.grants).where(s.grants.c.id == grant_id)).one()._mapping)
    previous = work.conn.execute(
        select(s.entries).where(
            s.entries.c.org_id == org["id"], s.entries.c.idempotency_key == idempotency_key
        )
    ).first()
    if previous is not None:
        same = previous.kind == "refund" and previous.grant_id == grant_id
        if same and (amount_pico is None or -previous.amount_pico == amount_pico):
            return grant, -previous.amount_pico, True
        raise Conflict(
            f"idempotency key {idempotency_key!r} was already used for another {previous.kind}; use a new key"
        )
    if grant["kind"] != "prepaid":
        raise InvalidInput(
            f"grant {grant_id} is {grant['kind']} credit; only prepaid credit is refundable (it is money paid)"
        )
    left = grant["remaining_pico"]
    if left <= 0:
        state = "expired" if grant["expired_at"] else "used up"
        raise Conflict(f"grant {grant_id} has nothing left to refund (its credit is {state})")
    amount = left if amount_pico is None else amount_pico
    if amount <= 0:
        raise InvalidInput("refund amount must be greater than zero")
    if amount > left:
        raise InvalidInput(f"refund {usd(amount)} is more than the {usd(left)} left on grant {grant_id}")
    if not org["payment_method"] and org["credit_pico"] - org["held_pico"] < amount:
        raise Conflict(
            f"{usd(org['held_pico'])} of this organisation's credit is held by requests in flight; "
            "refund less, or wait until they settle"
        )
    grant["remaining_pico"] -= amount
    grant["refunded_pico"] += amount
    work.touch_grant(grant)
    work.add_entry(org["id"], "refund", -amount, work.now, grant_id=grant_id, idempotency_key=idempotency_key)
    org["credit_pico"] -= amount
    org["paid_pico"] -= amount
    work.touch_org(org)
    return grant, amount, False


def record_payment(work: Work, org: Row, amount_pico: int, idempotency_key: str) -> tuple[Row, bool]:
    """A payment of postpaid charges (e.g. a paid invoice). Returns (entry row, repeated)."""
    previous = work.conn.execute(
        select(s.entries).where(
            s.entries.c.org_id == org["id"], s.entries.c.idempotency_key == idempotency_key
        )
    ).first()
    if previous is not None:
        if previous.kind == "payment" and previous.amount_pico == amount_pico:
            return dict(previous._mapping), True
        raise Conflict(
            f"idempotency key {idempotency_key!r} was already used for another {previous.kind}; use a new key"
        )
    if amount_pico > org["due_pico"]:
        raise InvalidInput(
            f"payment {usd(amount_pico)} is more than the {usd(org['due_pico'])} due; "
            "to pay in advance, grant prepaid credit instead"
        )
    entry = work.add_entry(org["id"], "payment", amount_pico, work.now, idempotency_key=idempotency_key)
    org["due_pico"] -= amount_pico
    org["paid_pico"] += amount_pico
    org["first_payment_at"] = min_time(org["first_payment_at"], work.now)
    work.touch_org(org)
    mark_billing(work, org)
    return entry, False


def to_record(row: Row, *, repeated: bool = False) -> Grant:
    return Grant(
        id=row["id"],
        org_id=row["org_id"],
        kind=row["kind"],
        category=row["category"],
        priority=row["priority"],
        amount=from_pico(row["amount_pico"]),
        remaining=from_pico(row["remaining_pico"]),
        refunded=from_pico(row["refunded_pico"]),
        effective_at=row["effective_at"],
        expires_at=row["expires_at"],
        expired_at=row["expired_at"],
        note=row["note"],
        created_at=row["created_at"],
        repeated=repeated or bool(row.get("repeated")),
    )

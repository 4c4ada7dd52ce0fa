"""Two-phase charges: reserve → settle (posted) or void, after TigerBeetle's pending
transfers.

``reserve`` holds credit and budget room for a request's upper-bound cost in one atomic step
under the organisation lock; ``settle`` posts the real cost (lower or higher), burns grants
in consumption order and writes the usage record; ``void`` gives the room back. A hold never
settled expires and its room returns; a settle after that is still charged in full (usage is
never dropped) and the whole amount is recorded as overrun. Idempotency: the same key with the
same parameters returns the first result; with other parameters it is a Conflict.

Each function works on a :class:`~kakin.ledger.work.Work` (one open transaction) and checks
everything before it changes anything, so many can share a transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Connection, select

from kakin.errors import Conflict, InvalidInput, KakinError
from kakin.ledger import admission, budgets, credit, housekeeping, tiers
from kakin.ledger import schema as s
from kakin.ledger import validate as v
from kakin.ledger.errors import KeyExpired, KeyRevoked, KeySuspended, PermissionDenied
from kakin.ledger.ids import new_id
from kakin.ledger.records import (
    PostOp,
    Reservation,
    ReserveOp,
    Scope,
    Settlement,
    SettleOp,
    ThresholdCrossed,
    UsageDetail,
    VoidOp,
)
from kakin.ledger.statements import JsonText, loaded
from kakin.ledger.validate import usd
from kakin.ledger.work import Row, Work, min_time
from kakin.money import from_pico

# Reservations ---------------------------------------------------------------------------


def reserve(work: Work, op: ReserveOp) -> Reservation:
    scope = op.scope
    if not isinstance(scope, Scope):
        raise InvalidInput(
            f"reserve needs a Scope(org_id, project_id, key_id, model), got {type(scope).__name__}"
        )
    amount = v.amount_pico(op.amount, "reservation amount")
    tokens = v.tokens(op.tokens, "reserved tokens")
    key = v.text(op.idempotency_key, "idempotency key")
    model = v.text(scope.model, "model")
    hold_for = (
        timedelta(seconds=work.context.hold_seconds)
        if op.expires_in is None
        else v.duration(op.expires_in, "reservation expires_in", maximum=v.MAX_HOLD)
    )
    org = work.org(scope.org_id)
    digest = credit.params_hash(scope.project_id, scope.key_id, model, amount, tokens)
    previous = work.by_key(org["id"], key)
    if previous is not None:
        if previous["params_hash"] != digest:
            raise Conflict(
                f"idempotency key {key!r} was already used for reservation {previous['id']} "
                f"({usd(previous['amount_pico'])}, model {previous['model']}) with other parameters; "
                "use a new key for a new request"
            )
        return to_record(previous, repeated=True)
    _check_scope(work, org, scope, model)
    applicable = budgets.applicable(work, org, scope.project_id, scope.key_id, model)
    unbounded = bool(op.unbounded)
    room = admission.Room(
        bool(org["payment_method"]),
        org["credit_pico"],
        org["held_pico"],
        budgets.rooms(work, org, applicable),
        org["held_unbounded"],
    )
    decision = admission.decide(room, admission.Ask(amount, tokens, unbounded))
    if not isinstance(decision, admission.Admitted):
        raise admission.refusal(
            decision,
            org,
            {b["id"]: b for b in applicable},
            work.now,
            lambda: last_credit_event(work.conn, org["id"]),
        )
    # Everything checked: write.
    row = {
        "id": new_id("res"),
        "org_id": org["id"],
        "project_id": scope.project_id,
        "key_id": scope.key_id,
        "model": model,
        "idempotency_key": key,
        "params_hash": digest,
        "amount_pico": amount,
        "tokens": tokens,
        "unbounded": unbounded,
        "status": "held",
        "created_at": work.now,
        "expires_at": work.now + hold_for,
        "closed_at": None,
        "actual_pico": None,
        "actual_tokens": None,
        "overrun_pico": None,
        "late": False,
        "settle_hash": None,
        "holds": [],
        "result": None,
    }
    budgets.hold(work, org, row, applicable)
    work.add_reservation(row)
    org["held_pico"] += amount
    org["held_tokens"] += tokens
    org["held_unbounded"] += unbounded
    org["next_hold_expiry"] = min_time(org["next_hold_expiry"], row["expires_at"])
    work.touch_org(org)
    return to_record(row)


def _check_scope(work: Work, org: Row, scope: Scope, model: str, *, usable: bool = True) -> None:
    """The project and key must belong to the organisation, and (``usable``) the key must be
    usable and allowed the model: one project can never spend another's money."""
    if work.project_org(scope.project_id) != org["id"]:
        raise PermissionDenied(
            f"project {scope.project_id!r} does not belong to organisation {org['name']!r}"
        )
    if scope.key_id is None:
        return
    key = work.key(scope.key_id)
    if key is None or key["project_id"] != scope.project_id:
        raise PermissionDenied(f"key {scope.key_id!r} does not belong to project {scope.project_id!r}")
    if not usable:
        return
    for since, refusal in key_refusals(key):
        if since is None or since <= work.now:
            raise refusal
    if key["models"] is not None and model not in key["models"]:
        raise PermissionDenied(f"key {key['prefix']}… may only use {', '.join(key['models'])}; not {model!r}")


def key_refusals(key: Row) -> list[tuple[datetime | None, KakinError]]:
    """What refuses a key's requests and from when (None: at once), in the order checked."""
    out: list[tuple[datetime | None, KakinError]] = []
    if key["revoked_at"] is not None:
        revoked = key["revoked_at"].isoformat()
        out.append(
            (
                key["revoked_at"],
                KeyRevoked(f"key {key['prefix']}… was revoked at {revoked}; create a new key"),
            )
        )
    if key["expires_at"] is not None:
        expired = key["expires_at"].isoformat()
        out.append(
            (
                key["expires_at"],
                KeyExpired(f"key {key['prefix']}… expired at {expired}; rotate or create a key"),
            )
        )
    if key["suspended_at"] is not None:
        message = (
            f"key {key['prefix']}… is suspended since {key['suspended_at'].isoformat()} "
            f"({key['suspend_reason']}); unsuspend it with `kakin keys unsuspend {key['id']}`"
        )
        out.append((None, KeySuspended(message)))
    return out


class CreditEvent(NamedTuple):
    """The journal's last entry that took credit away."""

    kind: str
    occurred_at: datetime
    grant_id: str


def last_credit_event(conn: Connection, org_id: str) -> Any:
    """The journal's last entry that took credit away (kind, occurred_at, grant_id), or None."""
    e = s.entries
    return conn.execute(
        select(e.c.kind, e.c.occurred_at, e.c.grant_id)
        .where(e.c.org_id == org_id, e.c.grant_id.is_not(None), e.c.kind.in_(("expiry", "charge", "refund")))
        .order_by(e.c.occurred_at.desc(), e.c.id.desc())
        .limit(1)
    ).first()


def charged_under(conn: Connection, org_id: str, idempotency_key: str) -> bool:
    """Whether a request was charged under ``idempotency_key`` (settled, or posted in one step)."""
    r = s.reservations
    found = conn.execute(
        select(r.c.id).where(
            r.c.org_id == org_id, r.c.idempotency_key == idempotency_key, r.c.status == "settled"
        )
    ).first()
    return found is not None


# Settling --------------------------------------------------------------------------------


def settle(work: Work, op: SettleOp) -> Settlement:
    actual = v.amount_pico(op.actual_amount, "actual amount")
    usage, extras, parsed = _check_usage(op.usage)
    reservation = work.reservation(op.reservation_id)
    org = work.org(reservation["org_id"])
    digest = credit.params_hash(
        actual, usage.input_tokens, usage.output_tokens, usage.cached_tokens, usage.provider, usage.request_id
    )
    status = reservation["status"]
    if status == "settled":
        if reservation["settle_hash"] == digest:
            return _stored_settlement(reservation)
        raise Conflict(
            f"reservation {reservation['id']} was already settled at {reservation['closed_at'].isoformat()} "
            f"for {usd(reservation['actual_pico'])}; a different settle cannot replace it"
        )
    if status == "voided":
        raise Conflict(
            f"reservation {reservation['id']} was voided at {reservation['closed_at'].isoformat()}; "
            "it cannot be settled (reserve again for a new request)"
        )
    # Everything checked: write.
    late = status == "expired"
    if not late:
        housekeeping.release_hold(work, org, reservation, "settled", work.now)
    tokens = usage.tokens
    from_credit, postpaid = credit.consume(work, org, actual, reservation["id"])
    org["spent_tokens"] += tokens
    crossed = budgets.spend(work, org, reservation, actual, tokens)
    overrun = actual if late else max(actual - reservation["amount_pico"], 0)
    reservation.update(
        status="settled",
        closed_at=work.now,
        actual_pico=actual,
        actual_tokens=tokens,
        overrun_pico=overrun,
        late=late,
        settle_hash=digest,
    )
    settlement = Settlement(
        reservation_id=reservation["id"],
        org_id=org["id"],
        charged=from_pico(actual),
        from_credit=from_pico(from_credit),
        postpaid=from_pico(postpaid),
        overrun=from_pico(overrun),
        late=late,
        thresholds=tuple(crossed),
    )
    reservation["result"] = _stored_result(work, settlement)
    work.touch_reservation(reservation)
    work.add_usage(_usage_row(work, reservation, actual, usage, extras), parsed)
    tiers.evaluate(work, org)
    return settlement


def _check_usage(usage: object) -> tuple[UsageDetail, dict[str, object], Any]:
    """Validate a usage detail; returns it with its normalised JSON and amounts, and its cost
    items as parsed to check them (for the rollups; None if they were not text)."""
    if not isinstance(usage, UsageDetail):
        raise InvalidInput(f"settle needs a UsageDetail, got {type(usage).__name__}")
    v.text(usage.provider, "usage provider", max_length=64)
    v.tokens(usage.input_tokens, "usage input_tokens")
    v.tokens(usage.output_tokens, "usage output_tokens")
    v.tokens(usage.cached_tokens, "usage cached_tokens")
    if usage.cached_tokens > usage.input_tokens:
        raise InvalidInput(
            f"usage cached_tokens ({usage.cached_tokens}) cannot exceed input_tokens ({usage.input_tokens})"
        )
    reasoning = v.tokens(reasoning_tokens(usage), "usage reasoning_tokens")
    if reasoning > usage.output_tokens:
        raise InvalidInput(
            f"usage reasoning_tokens ({reasoning}) cannot exceed output_tokens ({usage.output_tokens})"
        )
    if usage.request_id is not None:
        v.text(usage.request_id, "usage request_id")
    if usage.routed_from is not None:
        v.text(usage.routed_from, "usage routed_from")
    items, parsed = (
        (None, None) if usage.cost_items is None else v.json_document(usage.cost_items, "usage cost_items")
    )
    extras = {
        "cost_items": items,
        "cache_saved_pico": v.amount_pico(usage.cache_saved, "usage cache_saved"),
        "routing_saved_pico": v.amount_pico(usage.routing_saved, "usage routing_saved"),
    }
    return usage, extras, parsed


def reasoning_tokens(usage: UsageDetail) -> int:
    """A detail's reasoning tokens; 0 for one journaled before the field existed (unpickled
    without it)."""
    return getattr(usage, "reasoning_tokens", 0)


def _usage_row(
    work: Work, reservation: Row, actual: int, usage: UsageDetail, extras: dict[str, object]
) -> Row:
    return {
        "org_id": reservation["org_id"],
        "project_id": reservation["project_id"],
        "key_id": reservation["key_id"],
        "reservation_id": reservation["id"],
        "request_id": usage.request_id,
        "model": reservation["model"],
        "provider": usage.provider.strip(),
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens,
        "reasoning_tokens": reasoning_tokens(usage),
        "cost_pico": actual,
        "occurred_at": reservation["created_at"],
        "settled_at": work.now,
        "cache_hit": bool(usage.cache_hit),
        "routed_from": usage.routed_from,
        **extras,
    }


def _stored_result(work: Work, settlement: Settlement) -> object:
    """What a reservation keeps of its settlement. On SQLite, a settlement that reached no
    threshold (nearly all of them) is written straight as JSON text."""
    if work.postgres or settlement.thresholds:
        return _settlement_json(settlement)
    late = "true" if settlement.late else "false"
    return JsonText(
        f'{{"charged": "{settlement.charged}", "from_credit": "{settlement.from_credit}", '
        f'"postpaid": "{settlement.postpaid}", "overrun": "{settlement.overrun}", "late": {late}, '
        '"thresholds": []}'
    )


def _settlement_json(settlement: Settlement) -> dict[str, object]:
    return {
        "charged": str(settlement.charged),
        "from_credit": str(settlement.from_credit),
        "postpaid": str(settlement.postpaid),
        "overrun": str(settlement.overrun),
        "late": settlement.late,
        "thresholds": [
            {
                "budget_id": t.budget_id,
                "budget_name": t.budget_name,
                "scope": t.scope,
                "scope_ref": t.scope_ref,
                "period": t.period,
                "period_start": t.period_start.isoformat(),
                "period_end": t.period_end.isoformat() if t.period_end else None,
                "unit": t.unit,
                "threshold": t.threshold,
                "spent": str(t.spent),
                "limit": str(t.limit),
            }
            for t in settlement.thresholds
        ],
    }


def _stored_settlement(reservation: Row) -> Settlement:
    from datetime import datetime

    stored = loaded(reservation["result"])
    return Settlement(
        reservation_id=reservation["id"],
        org_id=reservation["org_id"],
        charged=Decimal(stored["charged"]),
        from_credit=Decimal(stored["from_credit"]),
        postpaid=Decimal(stored["postpaid"]),
        overrun=Decimal(stored["overrun"]),
        late=stored["late"],
        thresholds=tuple(
            ThresholdCrossed(
                budget_id=t["budget_id"],
                budget_name=t["budget_name"],
                org_id=reservation["org_id"],
                scope=t["scope"],
                scope_ref=t["scope_ref"],
                period=t["period"],
                period_start=datetime.fromisoformat(t["period_start"]),
                period_end=datetime.fromisoformat(t["period_end"]) if t["period_end"] else None,
                unit=t["unit"],
                threshold=t["threshold"],
                spent=Decimal(t["spent"]),
                limit=Decimal(t["limit"]),
            )
            for t in stored["thresholds"]
        ),
        repeated=True,
    )


# Posting ---------------------------------------------------------------------------------


def post(work: Work, op: PostOp) -> Settlement:
    """Record a request already served, in one step (a reservation born settled)."""
    scope = op.scope
    if not isinstance(scope, Scope):
        raise InvalidInput(
            f"post needs a Scope(org_id, project_id, key_id, model), got {type(scope).__name__}"
        )
    actual = v.amount_pico(op.amount, "charged amount")
    tokens = v.tokens(op.tokens, "held tokens")
    key = v.text(op.idempotency_key, "idempotency key")
    model = v.text(scope.model, "model")
    usage, extras, parsed = _check_usage(op.usage)
    org = work.org(scope.org_id)
    digest = credit.params_hash(
        "post",
        scope.project_id,
        scope.key_id,
        model,
        actual,
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_tokens,
        usage.provider,
        usage.request_id,
    )
    previous = work.by_key(org["id"], key)
    if previous is not None:
        if previous["params_hash"] == digest and previous["status"] == "settled":
            return _stored_settlement(previous)
        raise Conflict(
            f"idempotency key {key!r} was already used for reservation {previous['id']} with other parameters; "
            "use a new key for a new request"
        )
    _check_scope(work, org, scope, model, usable=False)
    # Everything checked: write.
    now, used = work.now, usage.tokens
    row = {
        "id": new_id("res"),
        "org_id": org["id"],
        "project_id": scope.project_id,
        "key_id": scope.key_id,
        "model": model,
        "idempotency_key": key,
        "params_hash": digest,
        "amount_pico": actual,
        "tokens": tokens,
        "unbounded": False,
        "status": "settled",
        "created_at": now,
        "expires_at": now,
        "closed_at": now,
        "actual_pico": actual,
        "actual_tokens": used,
        "overrun_pico": 0,
        "late": False,
        "settle_hash": digest,
        "holds": [],
        "result": None,
    }
    from_credit, postpaid = credit.consume(work, org, actual, row["id"])
    org["spent_tokens"] += used
    crossed = budgets.spend(work, org, row, actual, used)
    settlement = Settlement(
        reservation_id=row["id"],
        org_id=org["id"],
        charged=from_pico(actual),
        from_credit=from_pico(from_credit),
        postpaid=from_pico(postpaid),
        overrun=Decimal(0),
        late=False,
        thresholds=tuple(crossed),
    )
    row["result"] = _stored_result(work, settlement)
    work.add_reservation(row)
    work.add_usage(_usage_row(work, row, actual, usage, extras), parsed)
    tiers.evaluate(work, org)
    return settlement


# Voiding ---------------------------------------------------------------------------------


def void(work: Work, op: VoidOp) -> Reservation:
    reservation = work.reservation(op.reservation_id)
    org = work.org(reservation["org_id"])
    status = reservation["status"]
    if status == "voided":
        return to_record(reservation, repeated=True)
    if status == "settled":
        raise Conflict(
            f"reservation {reservation['id']} was settled at {reservation['closed_at'].isoformat()} "
            f"for {usd(reservation['actual_pico'])}; a settled charge cannot be voided"
        )
    if status == "expired":
        raise Conflict(
            f"reservation {reservation['id']} expired at {reservation['closed_at'].isoformat()} and its hold "
            "was already released; there is nothing to void"
        )
    housekeeping.release_hold(work, org, reservation, "voided", work.now)
    return to_record(reservation)


def to_record(row: Row, *, repeated: bool = False) -> Reservation:
    return Reservation(
        id=row["id"],
        org_id=row["org_id"],
        project_id=row["project_id"],
        key_id=row["key_id"],
        model=row["model"],
        amount=from_pico(row["amount_pico"]),
        tokens=row["tokens"],
        status=row["status"],
        idempotency_key=row["idempotency_key"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        closed_at=row["closed_at"],
        repeated=repeated,
    )

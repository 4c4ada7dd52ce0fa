"""Run many reserve / settle / void operations in one open transaction.

This is the entry point for a group committer: the caller owns the connection and the
transaction (and therefore the commit, whose cost is shared by every operation in it).
Before running the operations it loads, with one ``IN (…)`` query per table, everything they
will touch, locking the organisations involved in id order; then it runs them in order, in
memory, and writes the result with one statement per table. An operation refused with a
:class:`~kakin.errors.KakinError` gets that error in its result slot and changes nothing;
the others proceed. Any other exception (a database failure) propagates: the caller rolls
back, and may retry the operations one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection

from kakin.errors import InvalidInput, KakinError
from kakin.ledger import budgets, charges
from kakin.ledger.records import OpResult, PostOp, ReserveOp, Scope, SettleOp, VoidOp
from kakin.ledger.work import Cache, Context, Work


def execute(
    conn: Connection,
    ops: Sequence[object],
    *,
    now: datetime,
    context: Context | None = None,
    cache: Cache | None = None,
) -> list[OpResult | KakinError]:
    """Run ``ops`` on ``conn`` (inside the caller's transaction) as of ``now``. ``cache``:
    rows kept from earlier transactions of this connection (see kakin.ledger.resident);
    it takes what this transaction loaded — the caller drops it if the commit fails."""
    work = Work(conn, now, context or Context(), cache)
    prepare(work, ops)
    results = [run(work, op) for op in ops]
    work.flush()
    if cache is not None:
        cache.absorb(work)
    return results


def run(work: Work, op: object) -> OpResult | KakinError:
    try:
        if isinstance(op, ReserveOp):
            return charges.reserve(work, op)
        if isinstance(op, SettleOp):
            return charges.settle(work, op)
        if isinstance(op, VoidOp):
            return charges.void(work, op)
        if isinstance(op, PostOp):
            return charges.post(work, op)
        raise InvalidInput(
            f"unknown ledger operation {type(op).__name__}; use ReserveOp, SettleOp, VoidOp or PostOp"
        )
    except KakinError as error:
        return error


def prepare(work: Work, ops: Sequence[object]) -> None:
    """Load and lock what ``ops`` will touch, with a few set-based queries."""
    reserves = [op for op in ops if isinstance(op, ReserveOp | PostOp) and isinstance(op.scope, Scope)]
    closing = [op.reservation_id for op in ops if isinstance(op, SettleOp | VoidOp)]
    owners: list[str] = []
    if work.cache is not None:  # holds this connection wrote: their organisations are known
        for reservation_id in closing:
            held = work.cache.held.get(reservation_id) if isinstance(reservation_id, str) else None
            if held is not None:
                work.adopt_reservation(held)
                owners.append(held["org_id"])
    work.lock_orgs([*(op.scope.org_id for op in reserves), *owners], closing)
    work.load_reservations(closing)
    work.load_idempotency(
        (op.scope.org_id, op.idempotency_key.strip())
        for op in reserves
        if op.scope.org_id in work.orgs and isinstance(op.idempotency_key, str)
    )
    work.load_projects(op.scope.project_id for op in reserves)
    work.load_keys(op.scope.key_id for op in reserves if op.scope.key_id is not None)
    # Current budget periods for new holds, and the periods settles will post to.
    periods = []
    for op in reserves:
        org = work.orgs.get(op.scope.org_id)
        if org is not None and isinstance(op.scope.model, str):
            periods += [
                (b["id"], budgets.start_of(work, org, b, work.now))
                for b in budgets.applicable(
                    work, org, op.scope.project_id, op.scope.key_id, op.scope.model.strip()
                )
            ]
    settling_orgs = {
        op.scope.org_id for op in reserves if isinstance(op, PostOp) and op.scope.org_id in work.orgs
    }
    for reservation_id in closing:
        reservation = work.reservations.get(reservation_id) if isinstance(reservation_id, str) else None
        if reservation is None or reservation["status"] == "settled":
            continue
        org = work.orgs[reservation["org_id"]]
        settling_orgs.add(org["id"])
        periods += [
            (b["id"], budgets.start_of(work, org, b, reservation["created_at"]))
            for b in budgets.applicable(
                work, org, reservation["project_id"], reservation["key_id"], reservation["model"]
            )
        ]
    work.prefetch_periods(periods)
    work.load_grants(settling_orgs)

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
    # With the rows of earlier transactions at hand (SQLite), one reserve or one-phase charge
    # loads what little it lacks as it goes: loading up front would only add work. Without them,
    # prepare's set-based queries are fewer round trips; settles and voids go through prepare
    # for the holds this connection already knows.
    if cache is None or len(ops) != 1 or not isinstance(ops[0], _OPENING):
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


_OPENING = (ReserveOp, PostOp)
_CLOSING = (SettleOp, VoidOp)


def prepare(work: Work, ops: Sequence[object]) -> None:
    """Load and lock what ``ops`` will touch, with a few set-based queries."""
    opening: list[ReserveOp | PostOp] = []
    closing: list[str] = []
    for op in ops:
        if isinstance(op, _OPENING):
            if isinstance(op.scope, Scope):
                opening.append(op)
        elif isinstance(op, _CLOSING):
            closing.append(op.reservation_id)
    owners: list[str] = []
    if closing and work.cache is not None:  # holds this connection wrote: their organisations are known
        for reservation_id in closing:
            held = work.cache.held.get(reservation_id) if isinstance(reservation_id, str) else None
            if held is not None:
                work.adopt_reservation(held)
                owners.append(held["org_id"])
    work.lock_orgs([*(op.scope.org_id for op in opening), *owners], closing)
    if closing:
        work.load_reservations(closing)
    periods: list[tuple[str, datetime]] = []
    settling_orgs: set[str] = set()
    if opening:
        locked = work.orgs
        work.load_idempotency(
            (op.scope.org_id, op.idempotency_key.strip())
            for op in opening
            if op.scope.org_id in locked and isinstance(op.idempotency_key, str)
        )
        work.load_projects(op.scope.project_id for op in opening)
        work.load_keys(op.scope.key_id for op in opening if op.scope.key_id is not None)
        # Current budget periods for new holds and one-phase charges: the same for every
        # operation of one project, key and model (a batch has many).
        scopes: set[tuple[object, ...]] = set()
        for op in opening:
            scope = op.scope
            org = locked.get(scope.org_id)
            if org is None:
                continue
            if isinstance(op, PostOp):
                settling_orgs.add(org["id"])
            same = (scope.org_id, scope.project_id, scope.key_id, scope.model)
            if isinstance(scope.model, str) and same not in scopes:
                scopes.add(same)
                periods += [
                    (b["id"], budgets.start_of(work, org, b, work.now))
                    for b in budgets.applicable(
                        work, org, scope.project_id, scope.key_id, scope.model.strip()
                    )
                ]
    if closing:
        # The periods settles will post to.
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

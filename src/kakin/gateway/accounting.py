"""Holding and charging money for one request: the gateway's two accounting modes.

``shared`` (PostgreSQL with several gateway processes): every hold is a ledger reservation,
committed before the request is forwarded, so every process sees every other's holds and a
hard cap holds across machines. Two group-committed transactions per request.

``local`` (the embedded default: one gateway process owns the ledger): the process keeps an
``AccountView`` per organisation — credit, budgets, tier ceiling, loaded from the ledger and
kept current by the charges it posts — and decides holds in memory with the ledger's own
rules and messages. Only the charge is written, once, after the response: one group-committed
transaction per request, committed before the response's last byte is sent. Holds live only
in memory, so a crash releases them with the process, which is exactly right.

Both modes give the same answers to the same traffic; ``gateway.accounting`` chooses.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from kakin.gateway.committer import Committer
from kakin.ledger.records import ReserveOp, Scope, SettleOp, UsageDetail, VoidOp


@dataclass(slots=True)
class Ticket:
    """A hold taken for one request; ``handle`` is the mode's own record of it."""

    scope: Scope
    amount: Decimal
    tokens: int
    idempotency_key: str
    handle: Any = None
    repeated: bool = False  # the idempotency key was seen before (shared mode only)


class Accountant(Protocol):
    async def hold(self, scope: Scope, amount: Decimal, tokens: int, idempotency_key: str) -> Ticket: ...
    async def charge(self, ticket: Ticket, amount: Decimal, usage: UsageDetail) -> Any: ...
    def release(self, ticket: Ticket) -> None: ...
    def forget(self, org_id: str | None = None) -> None: ...
    def credit_left(self, org_id: str) -> Decimal | None: ...


# Failed attempts a retried idempotent request may follow before it is refused as a conflict.
_MAX_ATTEMPTS = 16


class SharedAccountant:
    """Holds are ledger reservations (visible to every process sharing the database)."""

    def __init__(self, committer: Committer, hold_seconds: int) -> None:
        self.committer = committer
        self.hold_seconds = hold_seconds

    async def hold(self, scope: Scope, amount: Decimal, tokens: int, idempotency_key: str) -> Ticket:
        key = idempotency_key
        for _ in range(_MAX_ATTEMPTS):
            reservation = await self.committer.submit(
                ReserveOp(scope, amount, tokens, key, self.hold_seconds)
            )
            if not (reservation.repeated and reservation.status in ("voided", "expired")):
                break
            # That attempt failed and was released unbilled, so a retry is a new attempt. It is
            # keyed after the failed one, so processes retrying at once still agree on one winner.
            key = f"{idempotency_key}~{reservation.id}"
        return Ticket(scope, amount, tokens, idempotency_key, reservation, reservation.repeated)

    async def charge(self, ticket: Ticket, amount: Decimal, usage: UsageDetail) -> Any:
        settlement = await self.committer.submit(SettleOp(ticket.handle.id, amount, usage))
        ticket.handle = None
        return settlement

    def release(self, ticket: Ticket) -> None:
        if ticket.handle is not None:
            self.committer.enqueue(VoidOp(ticket.handle.id))
            ticket.handle = None

    def forget(self, org_id: str | None = None) -> None:
        """Nothing is remembered in this mode."""

    def credit_left(self, org_id: str) -> Decimal | None:
        """Unknown without a read of the ledger, which this mode does not spend per request."""
        return None


class LocalAccountant:
    """Holds decided in memory on per-organisation ``AccountView``s; one write per request."""

    def __init__(self, ledger: Any, committer: Committer) -> None:
        self.ledger = ledger
        self.committer = committer
        self._views: dict[str, Any] = {}
        self._loading: dict[str, asyncio.Future] = {}

    async def view(self, org_id: str) -> Any:
        view = self._views.get(org_id)
        if view is not None and not view.stale(datetime.now(UTC)):
            return view
        pending = self._loading.get(org_id)
        if pending is None:
            pending = asyncio.ensure_future(self._load(org_id, view))
            self._loading[org_id] = pending
            pending.add_done_callback(lambda _: self._loading.pop(org_id, None))
        return await asyncio.shield(pending)

    async def _load(self, org_id: str, previous: Any) -> Any:
        # Loaded by the writer, between batches: the snapshot includes every charge
        # committed before it and none after, and those after are applied to it in order.
        view = await self.committer.call("account_view", org_id)
        view.read_journal_through(self.ledger)
        if previous is not None:
            view.adopt_holds(previous)
        self._views[org_id] = view
        return view

    async def hold(self, scope: Scope, amount: Decimal, tokens: int, idempotency_key: str) -> Ticket:
        view = await self.view(scope.org_id)
        return Ticket(scope, amount, tokens, idempotency_key, view.hold(scope, amount, tokens))

    async def charge(self, ticket: Ticket, amount: Decimal, usage: UsageDetail) -> Any:
        from kakin.ledger.records import PostOp

        settlement = await self.committer.submit(
            PostOp(ticket.scope, amount, usage, ticket.idempotency_key, usage.tokens)
        )
        # Applied synchronously on resumption, so a view reloaded later sees it exactly once.
        self._views[ticket.scope.org_id].posted(ticket.handle, settlement, usage.tokens)
        ticket.handle = None
        return settlement

    def release(self, ticket: Ticket) -> None:
        if ticket.handle is not None:
            view = self._views.get(ticket.scope.org_id)
            if view is not None:
                view.release(ticket.handle)
            ticket.handle = None

    def credit_left(self, org_id: str) -> Decimal | None:
        view = self._views.get(org_id)
        return view.available if view is not None else None

    def forget(self, org_id: str | None = None) -> None:
        """Drop remembered views so the next request reloads them (after an admin change)."""
        if org_id is None:
            for view in self._views.values():
                view.expire()
        elif org_id in self._views:
            self._views[org_id].expire()


def make_accountant(mode: str, ledger: Any, committer: Committer, hold_seconds: int) -> Accountant:
    if mode == "local":
        return LocalAccountant(ledger, committer)
    return SharedAccountant(committer, hold_seconds)

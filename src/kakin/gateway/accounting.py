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
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from kakin.gateway.committer import Committer
from kakin.gateway.journal import ChargeJournal, PostedCharges
from kakin.ledger import Ledger
from kakin.ledger.records import PostOp, ReserveOp, Scope, SettleOp, UsageDetail, VoidOp
from kakin.ledger.views import NO_LIVE_HOLDS, LiveHolds

log = logging.getLogger("kakin.gateway")


class AccountingHealth(StrEnum):
    """Whether holds can be decided now (``Accountant.health()``, for logs and metrics). Only
    shared accounting with holds in Redis is ever anything but healthy."""

    HEALTHY = "healthy"  # holds are decided
    REBUILDING = "rebuilding"  # Redis lost the shared state: rebuilding it from the ledger; requests wait
    FAILING_CLOSED = "failing_closed"  # Redis unreachable or a rebuild too slow: requests refused (503)
    FAILING_OPEN = "failing_open"  # the same, configured to admit requests without a shared hold


@dataclass(slots=True)
class Ticket:
    """A hold taken for one request; ``handle`` is the mode's own record of it."""

    scope: Scope
    amount: Decimal
    tokens: int
    idempotency_key: str
    handle: Any = None
    repeated: bool = False  # the idempotency key was seen before (shared mode only)
    in_flight: bool = False  # (repeated) the first request with the key is still being served
    client_key: bool = False  # idempotency_key is the client's Idempotency-Key, not a request id


class Accountant(Protocol):
    async def hold(
        self,
        scope: Scope,
        amount: Decimal,
        tokens: int,
        idempotency_key: str,
        client_key: bool = False,
        unbounded: bool = False,
    ) -> Ticket:
        """Hold ``amount`` for a request; ``client_key``: ``idempotency_key`` is the client's
        Idempotency-Key (another request may bring it again), not a request id (unique by
        construction); ``unbounded``: its output is not limited, so it may cost more
        (kakin.ledger.admission admits one such hold at a time under a cap)."""
        ...

    async def charge(
        self, ticket: Ticket, amount: Decimal, usage: UsageDetail, then: Callable[[Any], None] | None = None
    ) -> None:
        """Charge ``amount`` for the request; durable when this returns. ``then`` receives the
        ledger's Settlement once the ledger has posted it (at once, or moments later)."""

    async def charged_before(self, org_id: str, idempotency_key: str) -> bool:
        """Whether a request with this Idempotency-Key claim was charged already, where the hold
        would not find it (a charge posted without a reservation under the key)."""
        ...

    def release(self, ticket: Ticket) -> None: ...
    def forget(self, org_id: str | None = None, key_id: str | None = None) -> None:
        """Something changed outside (an admin change, a tier promotion): the organisation's
        (or, without one, every) remembered state, and the state of ``key_id``'s organisation."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def settled(self) -> None: ...
    def credit_left(self, org_id: str) -> Decimal | None: ...
    def live_holds(self, org_id: str) -> LiveHolds:
        """Holds of requests in flight that the ledger's counters do not include (any thread)."""
        ...

    def health(self) -> AccountingHealth:
        """Whether holds can be decided now (any thread)."""
        ...


# Failed attempts a retried idempotent request may follow before it is refused as a conflict.
_MAX_ATTEMPTS = 16


class SharedAccountant:
    """Holds are ledger reservations (visible to every process sharing the database)."""

    def __init__(self, committer: Committer, hold_seconds: int) -> None:
        self.committer = committer
        self.hold_seconds = hold_seconds

    async def hold(
        self,
        scope: Scope,
        amount: Decimal,
        tokens: int,
        idempotency_key: str,
        client_key: bool = False,
        unbounded: bool = False,
    ) -> Ticket:
        key = idempotency_key
        for _ in range(_MAX_ATTEMPTS):
            reservation = await self.committer.submit(
                ReserveOp(scope, amount, tokens, key, self.hold_seconds, unbounded)
            )
            if not (reservation.repeated and reservation.status in ("voided", "expired")):
                break
            # That attempt failed and was released unbilled, so a retry is a new attempt. It is
            # keyed after the failed one, so processes retrying at once still agree on one winner.
            key = f"{idempotency_key}~{reservation.id}"
        return Ticket(
            scope,
            amount,
            tokens,
            idempotency_key,
            reservation,
            reservation.repeated,
            in_flight=reservation.repeated and reservation.status == "held",
            client_key=client_key,
        )

    async def charge(
        self, ticket: Ticket, amount: Decimal, usage: UsageDetail, then: Callable[[Any], None] | None = None
    ) -> None:
        settlement = await self.committer.submit(SettleOp(ticket.handle.id, amount, usage))
        ticket.handle = None
        if then is not None:
            then(settlement)

    async def charged_before(self, org_id: str, idempotency_key: str) -> bool:
        """False: a charge under the key is a reservation under it, which the hold finds."""
        return False

    def release(self, ticket: Ticket) -> None:
        if ticket.handle is not None:
            self.committer.enqueue(VoidOp(ticket.handle.id))
            ticket.handle = None

    def forget(self, org_id: str | None = None, key_id: str | None = None) -> None:
        """Nothing is remembered in this mode."""

    async def start(self) -> None:
        """Nothing to start."""

    async def close(self) -> None:
        """Nothing to close."""

    async def settled(self) -> None:
        """Every charge is in the ledger when ``charge`` returns."""

    def credit_left(self, org_id: str) -> Decimal | None:
        """Unknown without a read of the ledger, which this mode does not spend per request."""
        return None

    def live_holds(self, org_id: str) -> LiveHolds:
        """None: every hold is a ledger reservation, already in its counters."""
        return NO_LIVE_HOLDS

    def health(self) -> AccountingHealth:
        """Holds are decided by the ledger itself: if it fails, requests fail."""
        return AccountingHealth.HEALTHY


class LocalAccountant:
    """Holds decided in memory on per-organisation ``AccountView``s; one write per request.

    With a charge ``journal`` (kakin.gateway.journal) that write is a journal append, applied
    to the ledger moments later by the writer process; the view counts the charge at once.
    """

    def __init__(
        self,
        ledger: Any,
        committer: Committer,
        journal: ChargeJournal | None = None,
        posted: PostedCharges | None = None,
    ) -> None:
        """``posted`` is what ``committer`` tells of the journal charges it posts (given to
        both when they are made)."""
        self.ledger = ledger
        self.committer = committer
        self.journal = journal
        self.posted = posted if posted is not None else PostedCharges()
        self._views: dict[str, Any] = {}
        self._loading: dict[str, asyncio.Future] = {}
        # Charges counted while an organisation's view was reloading: (journal id, hold, amount,
        # tokens), applied to the new view unless its snapshot already includes them.
        self._counted_while_loading: dict[str, list[tuple[asyncio.Future, Any, Decimal, int]]] = {}

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
        # Loaded by the writer, between batches. Without a journal the snapshot includes every
        # charge committed before it and none after, and those after are applied to it as they
        # resume. With one, it includes the journal through ``applied``; charges counted while
        # it loaded and not among those are counted again on the new view.
        if self.journal is None:
            view = await self.committer.call(Ledger.account_view, org_id)
        else:
            self.journal.commit()  # every charge counted so far gets an id the snapshot can include
            counted = self._counted_while_loading[org_id] = []
            try:
                view, applied = await self.committer.snapshot(  # type: ignore[attr-defined]
                    Ledger.account_view, org_id, journal_upto=self.journal.last_id
                )
            finally:
                del self._counted_while_loading[org_id]
            for charge_id, hold, amount, tokens in counted:
                if not (charge_id.done() and not charge_id.exception() and charge_id.result() <= applied):
                    view.charged(hold, amount, tokens)
        view.read_journal_through(self.ledger)
        if previous is not None:
            view.adopt_holds(previous)
        self._views[org_id] = view
        return view

    async def hold(
        self,
        scope: Scope,
        amount: Decimal,
        tokens: int,
        idempotency_key: str,
        client_key: bool = False,
        unbounded: bool = False,
    ) -> Ticket:
        view = await self.view(scope.org_id)
        return Ticket(scope, amount, tokens, idempotency_key, view.hold(scope, amount, tokens, unbounded))

    async def charge(
        self, ticket: Ticket, amount: Decimal, usage: UsageDetail, then: Callable[[Any], None] | None = None
    ) -> None:
        op = PostOp(ticket.scope, amount, usage, ticket.idempotency_key, usage.tokens)
        org_id = ticket.scope.org_id
        hold = ticket.handle
        if self.journal is None:
            settlement = await self.committer.submit(op)  # on failure the hold is released as usual
            # Applied synchronously on resumption, so a view reloaded later sees it exactly once.
            ticket.handle = None
            self._views[org_id].posted(hold, settlement, usage.tokens)
            if then is not None:
                then(settlement)
            return
        # Counted at once, so the next request sees it; durable before this one is answered
        # (if the journal cannot be written the request fails, and the count errs on the safe side).
        ticket.handle = None
        self._views[org_id].charged(hold, amount, usage.tokens)
        charge_id = self.journal.append(op)
        if org_id in self._counted_while_loading:
            self._counted_while_loading[org_id].append((charge_id, hold, amount, usage.tokens))
        if then is not None:
            self.posted.then(await charge_id, then)
        else:
            await charge_id

    async def charged_before(self, org_id: str, idempotency_key: str) -> bool:
        """Asked of the ledger: charges are posted there under the key, with no reservation a
        hold would find. (A charge journaled but not yet posted is this process's own, whose
        answer it still keeps to replay.)"""
        return bool(await self.committer.call(Ledger.was_charged, org_id, idempotency_key))

    async def settled(self) -> None:
        """Wait until every charge made so far is posted to the ledger (for readers that
        must see them there, such as tests; requests never wait for this)."""
        if self.journal is not None:
            await self.journal.all_posted(self.posted)

    def release(self, ticket: Ticket) -> None:
        if ticket.handle is not None:
            view = self._views.get(ticket.scope.org_id)
            if view is not None:
                view.release(ticket.handle)
            ticket.handle = None

    def credit_left(self, org_id: str) -> Decimal | None:
        view = self._views.get(org_id)
        return view.available if view is not None else None

    def live_holds(self, org_id: str) -> LiveHolds:
        """The holds of this organisation's requests in flight, which live only in memory.
        The current view has them all: a fresh view adopts the holds of the one it replaces."""
        view = self._views.get(org_id)
        return view.live_holds() if view is not None else NO_LIVE_HOLDS

    def health(self) -> AccountingHealth:
        """Holds are decided in this process's memory."""
        return AccountingHealth.HEALTHY

    async def start(self) -> None:
        """Nothing to start: views load on demand."""

    async def close(self) -> None:
        """Nothing to close: the journal and the writer belong to the gateway."""

    def forget(self, org_id: str | None = None, key_id: str | None = None) -> None:
        """Drop remembered views so the next request reloads them (after an admin change)."""
        if org_id is None:
            for view in self._views.values():
                view.expire()
        elif org_id in self._views:
            self._views[org_id].expire()


def make_accountant(
    mode: str,
    ledger: Any,
    committer: Committer,
    hold_seconds: int,
    journal: ChargeJournal | None = None,
    posted: PostedCharges | None = None,
) -> Accountant:
    if mode == "local":
        return LocalAccountant(ledger, committer, journal, posted)
    return SharedAccountant(committer, hold_seconds)

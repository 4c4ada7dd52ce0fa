"""Shared accounting with holds in Redis: many gateway processes, no database round trip
before forwarding, PostgreSQL (or any ledger) the record.

- **Hold**: one Lua script (kakin.gateway.holds) decides the hold with the admission rule on
  the organisation's state in Redis and takes it, atomically across every process.
  A client's ``Idempotency-Key`` is claimed in the same script, as a ledger reservation's
  unique key would be: only one process forwards a key's request.
- **Charge**: made durable in this process's charge journal before the response's last byte
  (kakin.gateway.shared_posting), and counted in Redis in the same turn of the event loop (the
  hold released, the charge added to credit and budgets, and kept as *pending* until the
  ledger holds it). The charge script answers with the credit left, for the response's
  ``x-kakin-credit-remaining-usd``.
- **Upkeep** (kakin.gateway.shared_state): the state rebuilt from the ledger when missing or
  out of date, put back after Redis lost it, and the health that follows. Until a rebuild is
  done requests wait (up to ``wait``), then are refused (``redis_unavailable = "closed"``) or
  admitted without a shared hold (``"open"``).

:meth:`RedisAccountant.health` says which of those states the process is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from redis.exceptions import RedisError

from kakin.errors import KakinError
from kakin.gateway.accounting import AccountingHealth, Ticket
from kakin.gateway.cache import REPLAY_SECONDS
from kakin.gateway.committer import Committer, LedgerUnavailable
from kakin.gateway.holds import Held, HoldStore, KeyRefused, Missing, Repeated, Stale
from kakin.gateway.journal import ChargeJournal, PostedCharges
from kakin.gateway.shared_posting import ChargePosting
from kakin.gateway.shared_state import Contribution, Kept, SharedState
from kakin.ledger import Ledger, admission
from kakin.ledger import errors as ledger_errors
from kakin.ledger import validate as v
from kakin.ledger.records import PostOp, Scope, UsageDetail
from kakin.ledger.views import NO_LIVE_HOLDS, LiveHolds
from kakin.money import from_pico, to_pico

log = logging.getLogger("kakin.gateway")


class AccountingUnavailable(KakinError):
    status = 503
    code = "accounting_unavailable"


_KEY_ERRORS: dict[str, type[KakinError]] = {
    "KeyRevoked": ledger_errors.KeyRevoked,
    "KeyExpired": ledger_errors.KeyExpired,
    "KeySuspended": ledger_errors.KeySuspended,
}


class RedisAccountant:
    """An :class:`~kakin.gateway.accounting.Accountant` whose holds live in Redis: takes and
    releases holds and counts charges there; :class:`SharedState` keeps the state usable,
    :class:`ChargePosting` takes the charges to the ledger."""

    def __init__(
        self,
        store: HoldStore,
        committer: Committer,
        journal: ChargeJournal | None,
        posted: PostedCharges,
        *,
        hold_seconds: int,
        fail_open: bool = False,
        grace: float = 1.0,
        wait: float = 5.0,
        max_age: timedelta = timedelta(seconds=5),
    ) -> None:
        """``committer`` posts charges (through ``journal`` when one is given, telling
        ``posted``) and takes snapshots; ``grace``: how long after Redis lost the state every
        gateway has to put back what it knows; ``wait``: how long a request waits for a rebuild;
        ``max_age``: how often a state in use is rebuilt in the background (changes made
        outside any gateway's admin API, such as the CLI's, apply within it)."""
        self.store = store
        self.committer = committer
        self.hold_ms = hold_seconds * 1000
        self.wait = wait
        self.mine = Contribution(store)
        self.state = SharedState(
            store, committer, self.mine, fail_open=fail_open, grace=grace, max_age=max_age
        )
        self.posting = ChargePosting(committer, journal, posted, self.mine)
        # Hold ids: this process's random prefix and a counter (unique without a random draw each).
        self._hold_ids = map(f"{uuid.uuid4().hex[:16]}.{{:x}}".format, itertools.count())
        self._credit_pico: dict[str, int] = {}  # org → credit left after this process's last charge
        self._loop: asyncio.AbstractEventLoop | None = None

    def health(self) -> AccountingHealth:
        """The admission state now (any thread): for logs and metrics."""
        return self.state.health()

    # Life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.state.start()

    async def close(self) -> None:
        await self.state.stop()
        try:
            await asyncio.wait_for(self.settled(), 30)
        except TimeoutError:
            log.error(
                "shared accounting: charges not posted by shutdown stay in the journal for the next start"
            )
        with contextlib.suppress(RedisError):
            await self.mine.tidy()
        await self.store.close()

    async def settled(self) -> None:
        await self.posting.settled()

    # Holding -----------------------------------------------------------------------------

    async def hold(
        self,
        scope: Scope,
        amount: Decimal,
        tokens: int,
        idempotency_key: str,
        client_key: bool = False,
        unbounded: bool = False,
    ) -> Ticket:
        """With ``client_key``, the hold claims the Idempotency-Key in the same script: a
        request bringing it again while it is claimed gets a repeated ticket (as a ledger
        reservation's key would give), so only one process forwards it."""
        org_id = scope.org_id
        claim = idempotency_key if client_key else ""
        pico = v.amount_pico(amount, "reservation amount")
        count = v.tokens(tokens, "reserved tokens")
        hold_id = next(self._hold_ids)
        deadline = time.monotonic() + self.wait
        self.state.known.add(org_id)
        while True:
            try:
                reply = await self.store.hold(
                    org_id, hold_id, scope, pico, count, self.hold_ms, claim, unbounded
                )
                if isinstance(reply, Held):
                    now = int(time.time() * 1000)
                    self.mine.holds[hold_id] = Kept(
                        org_id, scope, pico, count, now, now + self.hold_ms, unbounded, claim
                    )
                    if reply.refresh:
                        self.state.refresh(org_id)
                    return Ticket(scope, amount, tokens, idempotency_key, hold_id, client_key=client_key)
                if isinstance(reply, Repeated):
                    return Ticket(
                        scope,
                        amount,
                        tokens,
                        idempotency_key,
                        repeated=True,
                        in_flight=reply.in_flight,
                        client_key=client_key,
                    )
                if isinstance(reply, KeyRefused):
                    raise _KEY_ERRORS[reply.error](reply.message)
                if not isinstance(reply, Missing | Stale):
                    raise await self._refusal(org_id, reply)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(
                    self.state.rebuild(org_id, missing=isinstance(reply, Missing)), remaining
                )
            except (RedisError, TimeoutError) as exc:
                why = "the shared state is still being rebuilt" if isinstance(exc, TimeoutError) else str(exc)
                if self.state.failing(why) is AccountingHealth.FAILING_CLOSED:
                    raise AccountingUnavailable(
                        f"shared accounting cannot decide holds now ({why}); requests are refused until it "
                        'can (gateway.redis_unavailable = "closed"): retry shortly'
                    ) from None
                # Admitted without a hold (nor a claim of its key).
                return Ticket(scope, amount, tokens, idempotency_key, None, client_key=client_key)

    async def _refusal(self, org_id: str, decision: admission.Refused) -> KakinError:
        meta = await self.store.meta(org_id) or {"org": {"name": org_id}, "budgets": []}
        event = None
        if isinstance(decision, admission.CreditShort) and decision.credit_pico <= 0:
            event = await self.committer.call(Ledger.last_credit_event, org_id)
        budgets = {b["id"]: b for b in meta["budgets"]}
        return admission.refusal(decision, meta["org"], budgets, datetime.now(UTC), lambda: event)

    # Charging ----------------------------------------------------------------------------

    async def charge(
        self, ticket: Ticket, amount: Decimal, usage: UsageDetail, then: Callable[[Any], None] | None = None
    ) -> None:
        scope, org_id, charge_key = ticket.scope, ticket.scope.org_id, ticket.idempotency_key
        hold_id, ticket.handle = ticket.handle, None
        claim = charge_key if ticket.client_key else ""
        self.mine.holds.pop(hold_id or "", None)
        op = PostOp(scope, amount, usage, charge_key, usage.tokens)
        pico = to_pico(amount)
        self.mine.charged(
            charge_key, Kept(org_id, scope, pico, usage.tokens, int(time.time() * 1000), 0, False, claim)
        )
        appended = self.posting.begin(op)  # written with the count below, in this turn of the loop
        try:
            left = await self.store.charge(
                org_id, hold_id or "", charge_key, pico, usage.tokens, scope, claim, REPLAY_SECONDS * 1000
            )
        except RedisError as exc:  # kept in mine.unposted: put back in Redis once it is reachable
            left = None
            self.state.failing(f"Redis is unreachable ({exc})")
            if hold_id:
                self.mine.unreleased.append((org_id, hold_id))
        if left is None:
            self._credit_pico.pop(org_id, None)
        else:
            self._credit_pico[org_id] = left
        await self.posting.finish(op, appended, then)

    async def charged_before(self, org_id: str, idempotency_key: str) -> bool:
        """Asked of the ledger: the claim of a key in Redis lasts until its answer's replay
        window ends (``REPLAY_SECONDS`` after the charge), the ledger's record of it for ever.
        While the ledger cannot be reached, requests are still served: the claims decide alone."""
        try:
            return bool(await self.committer.call(Ledger.was_charged, org_id, idempotency_key))
        except LedgerUnavailable:
            return False

    def release(self, ticket: Ticket) -> None:
        hold_id, ticket.handle = ticket.handle, None
        if hold_id is None:
            return
        self.mine.holds.pop(hold_id, None)
        claim = ticket.idempotency_key if ticket.client_key else ""
        self.state.spawn(self.mine.release(ticket.scope.org_id, hold_id, claim))

    # Changes -----------------------------------------------------------------------------

    def forget(self, org_id: str | None = None, key_id: str | None = None) -> None:
        """Something changed (an admin change, a tier promotion): the organisation's state is
        marked out of date in Redis, so every gateway's next hold rebuilds it from the ledger
        (with the key's refusal, a budget's new limit, a grant). From another thread (the admin
        API's), this returns once Redis has it."""
        work = self.state.outdate(org_id, key_id)
        if self._on_loop():
            self.state.spawn(work)
        elif self._loop is None or self._loop.is_closed():
            work.close()
        else:
            asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=10)

    def _on_loop(self) -> bool:
        """Whether the caller runs on this accountant's event loop (else: another thread)."""
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    # Readers -----------------------------------------------------------------------------

    def credit_left(self, org_id: str) -> Decimal | None:
        """Credit not spent or held (by any gateway), never below zero, as the charge script
        found it after this process's last charge for the organisation; as local accounting's
        view tells it. None before one, or while Redis cannot be reached."""
        left = self._credit_pico.get(org_id)
        return None if left is None else from_pico(left)

    def live_holds(self, org_id: str) -> LiveHolds:
        """The holds of the organisation's requests in flight on every gateway, which the
        ledger never sees: read from Redis (called from the admin API's threads). None when
        Redis cannot say (the ledger's figures are then shown as they are)."""
        loop = self._loop
        if loop is None or loop.is_closed() or self._on_loop():
            return NO_LIVE_HOLDS
        try:
            return asyncio.run_coroutine_threadsafe(self.store.open_holds(org_id), loop).result(timeout=5)
        except (RedisError, TimeoutError) as exc:
            log.warning("shared accounting: the holds in flight of %s could not be read: %s", org_id, exc)
            return NO_LIVE_HOLDS

"""Shared accounting with holds in Redis: many gateway processes, no database round trip
before forwarding, PostgreSQL (or any ledger) the record.

- **Hold**: one Lua script (kakin.gateway.holds) decides the hold with the admission rule on
  the organisation's state in Redis and takes it, atomically across every process.
  A client's ``Idempotency-Key`` is claimed in the same script, as a ledger reservation's
  unique key would be: only one process forwards a key's request.
- **Charge**: made durable in this process's charge journal (kakin.gateway.journal) before the
  response's last byte, as in local accounting, and counted in Redis (the hold released, the
  charge added to credit and budgets, and kept as *pending* until the ledger holds it). The
  ledger writer posts the journal to the ledger in batches moments later.
- **Rebuild**: the state is built from a ledger snapshot (``Ledger.account_snapshot``) plus
  the holds and pending charges Redis keeps. It is rebuilt when it may have changed by itself
  (a period boundary, a grant event, ``max_age``), when an admin change marks it out of date,
  and when Redis lost it (a restart or a flush). After a loss, every gateway puts back the
  holds of its requests in flight and its charges not yet posted — each notices within
  ``TEND_SECONDS`` — and no state is built until ``grace`` after the loss was first noticed,
  so what they put back is in it. Until then requests wait (up to ``wait``), then are refused
  (``redis_unavailable = "closed"``) or admitted without a shared hold (``"open"``).

:meth:`RedisAccountant.health` says which of those states the process is in.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from kakin.gateway.committer import Committer
from kakin.gateway.holds import Held, HoldStore, KeyRefused, Missing, Repeated, Stale, entry
from kakin.gateway.journal import ChargeJournal, PostedCharges
from kakin.ledger import Ledger, admission
from kakin.ledger import errors as ledger_errors
from kakin.ledger import validate as v
from kakin.ledger.records import PostOp, Scope, UsageDetail
from kakin.ledger.views import NO_LIVE_HOLDS, LiveHolds
from kakin.money import to_pico

log = logging.getLogger("kakin.gateway")

TEND_SECONDS = 0.1  # how often a gateway checks Redis for a loss and drops posted charges
REBUILD_MS = 10_000  # the longest a rebuild may keep charges on the pending list
VALID_AT_MOST = timedelta(hours=1)  # a state nothing changed is rebuilt before requests after this


class AccountingUnavailable(KakinError):
    status = 503
    code = "accounting_unavailable"


_KEY_ERRORS: dict[str, type[KakinError]] = {
    "KeyRevoked": ledger_errors.KeyRevoked,
    "KeyExpired": ledger_errors.KeyExpired,
    "KeySuspended": ledger_errors.KeySuspended,
}


class Contribution:
    """What this process has in Redis that only it knows: the holds of its requests in flight
    and its charges the ledger may not hold yet. Kept to put them back if Redis loses them,
    and to drop each charge from Redis's pending list once the ledger holds it."""

    def __init__(self, store: HoldStore) -> None:
        self.store = store
        # hold id → (org, stored entry, the client's Idempotency-Key it claims or "", expiry ms)
        self.holds: dict[str, tuple[str, bytes, str, int]] = {}
        self.unposted: dict[str, dict[str, tuple[bytes, str]]] = {}  # org → charge key → (entry, claim)
        self.to_drop: dict[str, list[str]] = {}  # org → charge keys the ledger now holds
        self.unreleased: list[tuple[str, str]] = []  # (org, hold id) a release failed for

    def charged(self, org_id: str, charge_key: str, stored: bytes, claim: str) -> None:
        self.unposted.setdefault(org_id, {})[charge_key] = (stored, claim)

    def posted(self, org_id: str, charge_key: str) -> None:
        self.to_drop.setdefault(org_id, []).append(charge_key)

    async def release(self, org_id: str, hold_id: str, claim: str) -> None:
        try:
            await self.store.release(org_id, hold_id, claim)
        except RedisError:
            self.unreleased.append((org_id, hold_id))

    async def put_back(self) -> None:
        """Redis lost its state: put back everything this process knows."""
        now = int(time.time() * 1000)
        for hold_id, (org_id, stored, claim, expires) in list(self.holds.items()):
            await self.store.readd(org_id, "h", hold_id, stored, claim, expires - now)
        for org_id, charges in list(self.unposted.items()):
            for charge_key, (stored, claim) in list(charges.items()):
                await self.store.readd(org_id, "p", charge_key, stored, claim, REPLAY_SECONDS * 1000)

    async def tidy(self) -> None:
        """Drop posted charges from the pending lists; retry releases that failed."""
        for org_id in list(self.to_drop):
            keys = self.to_drop.pop(org_id)
            if not await self.store.posted(org_id, keys):
                self.to_drop.setdefault(org_id, []).extend(keys)  # a rebuild runs: later
                continue
            unposted = self.unposted.get(org_id, {})
            for key in keys:
                unposted.pop(key, None)
            if not unposted:
                self.unposted.pop(org_id, None)
        while self.unreleased:
            org_id, hold_id = self.unreleased[-1]
            await self.store.release(org_id, hold_id)
            self.unreleased.pop()


class RedisAccountant:
    """An :class:`~kakin.gateway.accounting.Accountant` whose holds live in Redis."""

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
        self.journal = journal
        self.posted = posted
        self.hold_ms = hold_seconds * 1000
        self.fail_open = fail_open
        self.grace_ms = int(grace * 1000)
        self.wait = wait
        self.max_age = max_age
        self._health = AccountingHealth.HEALTHY
        self._epoch: str | None = None
        self._epoch_lock = asyncio.Lock()
        self.mine = Contribution(store)
        self._rebuilds: dict[str, asyncio.Future] = {}
        self._known: set[str] = set()
        self._tasks: set[asyncio.Future] = set()
        self._tender: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # Health ------------------------------------------------------------------------------

    def health(self) -> AccountingHealth:
        """The admission state now (any thread): for logs and metrics."""
        return self._health

    def _set_health(self, health: AccountingHealth, why: str = "") -> None:
        if health is self._health:
            return
        previous, self._health = self._health, health
        level = logging.INFO if health is AccountingHealth.HEALTHY else logging.WARNING
        log.log(
            level, "shared accounting: %s (was %s)%s", health.value, previous.value, f": {why}" if why else ""
        )

    def _failing(self, why: str) -> AccountingHealth:
        health = AccountingHealth.FAILING_OPEN if self.fail_open else AccountingHealth.FAILING_CLOSED
        self._set_health(health, why)
        return health

    # Life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await self._check_epoch()
        except RedisError as exc:
            self._failing(f"Redis is unreachable ({exc})")
        self._tender = asyncio.ensure_future(self._tend())

    async def close(self) -> None:
        if self._tender is not None:
            self._tender.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
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
        if self.journal is not None:
            self.journal.commit()
            if self.posted.through < self.journal.last_id:
                self.journal.hurry()  # posted at once, not after the writer's delay
                await self.posted.reached(self.journal.last_id)

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
        hold_id = uuid.uuid4().hex
        deadline = time.monotonic() + self.wait
        self._known.add(org_id)
        while True:
            try:
                reply = await self.store.hold(
                    org_id, hold_id, scope, pico, count, self.hold_ms, claim, unbounded
                )
                if isinstance(reply, Held):
                    now = int(time.time() * 1000)
                    expires = now + self.hold_ms
                    self.mine.holds[hold_id] = (
                        org_id,
                        entry(pico, count, now, expires, scope, unbounded),
                        claim,
                        expires,
                    )
                    if reply.refresh and org_id not in self._rebuilds:
                        self._spawn(self._refresh(org_id))
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
                await asyncio.wait_for(self._rebuild(org_id, missing=isinstance(reply, Missing)), remaining)
            except (RedisError, TimeoutError) as exc:
                why = "the shared state is still being rebuilt" if isinstance(exc, TimeoutError) else str(exc)
                if self._failing(why) is AccountingHealth.FAILING_CLOSED:
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

    # Rebuilding --------------------------------------------------------------------------

    async def _rebuild(self, org_id: str, *, missing: bool) -> None:
        """One rebuild of an organisation's state at a time in this process."""
        pending = self._rebuilds.get(org_id)
        if pending is None:
            pending = asyncio.ensure_future(self._build(org_id, missing))
            self._rebuilds[org_id] = pending
            pending.add_done_callback(lambda _: self._rebuilds.pop(org_id, None))
        await asyncio.shield(pending)

    async def _refresh(self, org_id: str) -> None:
        """A rebuild in the background. If it fails (the ledger unreachable), the state stays
        exact, only perhaps not current with changes made outside a gateway: the next hold
        past its refresh time asks again."""
        try:
            await self._rebuild(org_id, missing=False)
        except (KakinError, RedisError) as exc:
            log.warning("shared accounting: refreshing %s from the ledger failed: %s", org_id, exc)

    async def _build(self, org_id: str, missing: bool) -> None:
        if missing:
            await self._check_epoch()
            assert self._epoch is not None
            wait_ms = int(self._epoch.split(":")[0]) + self.grace_ms - await self.store.now_ms()
            if wait_ms > 0:  # the other gateways are still putting back what they know
                await asyncio.sleep(wait_ms / 1000)
        for _ in range(3):
            token = uuid.uuid4().hex
            charge_keys = await self.store.begin_rebuild(org_id, token, REBUILD_MS)
            snapshot = await self.committer.call(Ledger.account_snapshot, org_id, charge_keys, VALID_AT_MOST)
            if (
                await self.store.install(org_id, token, snapshot, int(self.max_age.total_seconds() * 1000))
                >= 0
            ):
                break
        if self._health is not AccountingHealth.HEALTHY and self._settled_epoch():
            self._set_health(AccountingHealth.HEALTHY, "holds are decided in Redis again")

    def _settled_epoch(self) -> bool:
        return (
            self._epoch is not None and int(self._epoch.split(":")[0]) + self.grace_ms <= time.time() * 1000
        )

    async def _check_epoch(self) -> None:
        """Notice a loss of Redis's state (a new epoch) and put back what this process knows."""
        async with self._epoch_lock:
            epoch = await self.store.epoch()
            if epoch == self._epoch:
                return
            if self._epoch is not None:
                self._set_health(
                    AccountingHealth.REBUILDING, "Redis lost the shared state; rebuilding it from the ledger"
                )
            await self.mine.put_back()
            self._epoch = epoch

    async def _tend(self) -> None:
        while True:
            await asyncio.sleep(TEND_SECONDS)
            try:
                await self._check_epoch()
                await self.mine.tidy()
                if (
                    self._health is not AccountingHealth.HEALTHY
                    and self._settled_epoch()
                    and not self._rebuilds
                ):
                    self._set_health(AccountingHealth.HEALTHY, "Redis is reachable")
            except RedisError as exc:
                self._failing(f"Redis is unreachable ({exc})")
            except Exception:  # the tender must outlive any one failure
                log.exception("shared accounting upkeep failed")

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
        now = int(time.time() * 1000)
        self.mine.charged(org_id, charge_key, entry(pico, usage.tokens, now, 0, scope), claim)
        charge_id = self.journal.append(op) if self.journal is not None else None
        try:
            await self.store.charge(
                org_id, hold_id or "", charge_key, pico, usage.tokens, scope, claim, REPLAY_SECONDS * 1000
            )
        except RedisError as exc:  # kept in mine.unposted: put back in Redis once it is reachable
            self._failing(f"Redis is unreachable ({exc})")
            if hold_id:
                self.mine.unreleased.append((org_id, hold_id))
        if charge_id is None:
            settlement = await self.committer.submit(op)
            self._posted_now(org_id, charge_key, then, settlement)
            return
        self.posted.then(await charge_id, lambda result: self._posted_now(org_id, charge_key, then, result))

    def _posted_now(
        self, org_id: str, charge_key: str, then: Callable[[Any], None] | None, result: Any
    ) -> None:
        self.mine.posted(org_id, charge_key)
        if then is not None:
            then(result)

    def release(self, ticket: Ticket) -> None:
        hold_id, ticket.handle = ticket.handle, None
        if hold_id is None:
            return
        self.mine.holds.pop(hold_id, None)
        claim = ticket.idempotency_key if ticket.client_key else ""
        self._spawn(self.mine.release(ticket.scope.org_id, hold_id, claim))

    # Changes -----------------------------------------------------------------------------

    def forget(self, org_id: str | None = None, key_id: str | None = None) -> None:
        """Something changed (an admin change, a tier promotion): the organisation's state is
        marked out of date in Redis, so every gateway's next hold rebuilds it from the ledger
        (with the key's refusal, a budget's new limit, a grant). From another thread (the admin
        API's), this returns once Redis has it."""
        work = self._outdate(org_id, key_id)
        loop = self._loop
        if loop is None or loop.is_closed():
            work.close()
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._spawn(work)
        else:
            asyncio.run_coroutine_threadsafe(work, loop).result(timeout=10)

    async def _outdate(self, org_id: str | None, key_id: str | None) -> None:
        orgs = {org_id} if org_id else set() if key_id else set(self._known)
        if key_id:
            with contextlib.suppress(KakinError):
                orgs.add((await self.committer.call(Ledger.get_key, key_id)).org_id)
        for org in orgs:
            await self.store.outdate(org)

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Readers -----------------------------------------------------------------------------

    def credit_left(self, org_id: str) -> Decimal | None:
        return None

    def live_holds(self, org_id: str) -> LiveHolds:
        """None that the admin API could add: holds live in Redis, shared by every gateway."""
        return NO_LIVE_HOLDS

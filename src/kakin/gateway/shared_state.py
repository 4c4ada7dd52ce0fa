"""Keeping shared accounting's state in Redis usable: built, current, and put back after a loss.

- **Rebuild**: an organisation's state is built from a ledger snapshot
  (``Ledger.account_snapshot``) plus the holds and pending charges Redis keeps. It is rebuilt
  when it may have changed by itself (a period boundary, a grant event, ``max_age``), when an
  admin change marks it out of date (:meth:`SharedState.outdate`), and when Redis lost it (a
  restart or a flush).
- **Loss**: after one, every gateway puts back the holds of its requests in flight and its
  charges not yet posted (its :class:`Contribution`) — each notices within ``TEND_SECONDS`` —
  and no state is built until ``grace`` after the loss was first noticed, so what they put
  back is in it.
- **Health**: whether holds can be decided now (:meth:`SharedState.health`), for logs and
  metrics; the accountant (kakin.gateway.shared_holds) reports failures to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, NamedTuple

from redis.exceptions import RedisError

from kakin.errors import KakinError
from kakin.gateway.accounting import AccountingHealth
from kakin.gateway.cache import REPLAY_SECONDS
from kakin.gateway.committer import Committer
from kakin.gateway.holds import HoldStore, entry
from kakin.ledger import Ledger
from kakin.ledger.records import Scope

log = logging.getLogger("kakin.gateway")

TEND_SECONDS = 0.1  # how often a gateway checks Redis for a loss and drops posted charges
REBUILD_MS = 10_000  # the longest a rebuild may keep charges on the pending list
VALID_AT_MOST = timedelta(hours=1)  # a state nothing changed is rebuilt before requests after this


class Kept(NamedTuple):
    """A hold or a charge of this process, as the scripts stored it: what is put back if Redis
    loses it (encoded only then, not on every request)."""

    org_id: str
    scope: Scope
    amount_pico: int
    tokens: int
    at_ms: int
    expires_ms: int  # 0 for a charge
    unbounded: bool
    claim: str  # the client's Idempotency-Key it claims, or ""

    def stored(self) -> bytes:
        return entry(self.amount_pico, self.tokens, self.at_ms, self.expires_ms, self.scope, self.unbounded)


class Contribution:
    """What this process has in Redis that only it knows: the holds of its requests in flight
    and its charges the ledger may not hold yet. Kept to put them back if Redis loses them,
    and to drop each charge from Redis's pending list once the ledger holds it."""

    def __init__(self, store: HoldStore) -> None:
        self.store = store
        self.holds: dict[str, Kept] = {}  # hold id → the hold
        self.unposted: dict[str, dict[str, Kept]] = {}  # org → charge key → the charge
        self.to_drop: dict[str, list[str]] = {}  # org → charge keys the ledger now holds
        self.unreleased: list[tuple[str, str]] = []  # (org, hold id) a release failed for

    def charged(self, charge_key: str, charge: Kept) -> None:
        self.unposted.setdefault(charge.org_id, {})[charge_key] = charge

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
        for hold_id, hold in list(self.holds.items()):
            await self.store.readd(
                hold.org_id, "h", hold_id, hold.stored(), hold.claim, hold.expires_ms - now
            )
        for org_id, charges in list(self.unposted.items()):
            for charge_key, charge in list(charges.items()):
                await self.store.readd(
                    org_id, "p", charge_key, charge.stored(), charge.claim, REPLAY_SECONDS * 1000
                )

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


class SharedState:
    """The organisations' states in Redis, kept usable for holds: rebuilt from the ledger when
    missing, out of date or due for a refresh, watched for a loss, and the health that follows.
    Use from the gateway's event loop."""

    def __init__(
        self,
        store: HoldStore,
        committer: Committer,
        mine: Contribution,
        *,
        fail_open: bool,
        grace: float,
        max_age: timedelta,
    ) -> None:
        """``committer`` takes the ledger snapshots; ``mine``: what this process puts back after
        a loss; ``grace``, ``max_age``: as :class:`~kakin.gateway.shared_holds.RedisAccountant`."""
        self.store = store
        self.committer = committer
        self.mine = mine
        self.fail_open = fail_open
        self.grace_ms = int(grace * 1000)
        self.max_age = max_age
        self._health = AccountingHealth.HEALTHY
        self._epoch: str | None = None
        self._epoch_lock = asyncio.Lock()
        self._rebuilds: dict[str, asyncio.Future] = {}
        self.known: set[str] = set()  # organisations this process has asked holds of
        self._tasks: set[asyncio.Future] = set()
        self._tender: asyncio.Task | None = None

    # Health ------------------------------------------------------------------------------

    def health(self) -> AccountingHealth:
        """The admission state now (any thread): for logs and metrics."""
        return self._health

    def failing(self, why: str) -> AccountingHealth:
        """Holds cannot be decided now (``why``): failing open or closed, as configured."""
        health = AccountingHealth.FAILING_OPEN if self.fail_open else AccountingHealth.FAILING_CLOSED
        self._set_health(health, why)
        return health

    def _set_health(self, health: AccountingHealth, why: str = "") -> None:
        if health is self._health:
            return
        previous, self._health = self._health, health
        level = logging.INFO if health is AccountingHealth.HEALTHY else logging.WARNING
        log.log(
            level, "shared accounting: %s (was %s)%s", health.value, previous.value, f": {why}" if why else ""
        )

    # Life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._check_epoch()
        except RedisError as exc:
            self.failing(f"Redis is unreachable ({exc})")
        self._tender = asyncio.ensure_future(self._tend())

    async def stop(self) -> None:
        """Stop the upkeep and wait for the work it spawned."""
        if self._tender is not None:
            self._tender.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in the background; :meth:`stop` waits for it."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Rebuilding --------------------------------------------------------------------------

    async def rebuild(self, org_id: str, *, missing: bool) -> None:
        """Build the organisation's state (``missing``: Redis has none); one rebuild of an
        organisation at a time in this process."""
        pending = self._rebuilds.get(org_id)
        if pending is None:
            pending = asyncio.ensure_future(self._build(org_id, missing))
            self._rebuilds[org_id] = pending
            pending.add_done_callback(lambda _: self._rebuilds.pop(org_id, None))
        await asyncio.shield(pending)

    def refresh(self, org_id: str) -> None:
        """Rebuild in the background (the hold script said the state is due for one), unless a
        rebuild runs already. If it fails (the ledger unreachable), the state stays exact, only
        perhaps not current with changes made outside a gateway: the next hold past its refresh
        time asks again."""
        if org_id not in self._rebuilds:
            self.spawn(self._refresh(org_id))

    async def _refresh(self, org_id: str) -> None:
        try:
            await self.rebuild(org_id, missing=False)
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
                self.failing(f"Redis is unreachable ({exc})")
            except Exception:  # the tender must outlive any one failure
                log.exception("shared accounting upkeep failed")

    # Changes -----------------------------------------------------------------------------

    async def outdate(self, org_id: str | None, key_id: str | None) -> None:
        """Mark out of date the state of ``org_id``, of ``key_id``'s organisation, or (neither
        given) of every organisation this process knows: every gateway's next hold rebuilds it."""
        orgs = {org_id} if org_id else set() if key_id else set(self.known)
        if key_id:
            with contextlib.suppress(KakinError):
                orgs.add((await self.committer.call(Ledger.get_key, key_id)).org_id)
        for org in orgs:
            await self.store.outdate(org)

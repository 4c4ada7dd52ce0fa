"""Who is calling: a presented kakin key → its key record and the limits it is held to.

Verifying a key reads the ledger (a hash lookup), so verified keys are remembered for a
short time. Revoking, suspending or rotating a key through the admin API drops its entry at
once (``forget``), so those take effect on the very next request. A change made by another
process is seen within ``ttl`` seconds from memory; but a request that takes no hold is
verified afresh (``fresh``), and one that takes a hold in shared accounting has its key
checked again by the ledger's reservation, so there every request sees it at once. Expiry is
checked on every request from memory. While the ledger database cannot be reached, a key
remembered keeps its last answer past ``ttl`` (nothing can change it meanwhile). The tier is
the organisation's: read once per organisation per ``ttl``, whatever number of its keys
are in use (reading it may promote the organisation, a ledger write).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kakin.gateway.committer import LedgerCall, LedgerUnavailable, in_thread
from kakin.ledger import Ledger
from kakin.ledger.errors import InvalidKey, KeyExpired, KeySuspended
from kakin.ledger.keys import shown_key
from kakin.limits import LimitSet
from kakin.limits.subjects import limits_for_key

log = logging.getLogger("kakin.gateway")


@dataclass(frozen=True, slots=True)
class Caller:
    key: Any  # kakin.ledger.records.KeyRecord
    limits: LimitSet
    tier: str | None


class KeyCache:
    """``call(Ledger.method, *args)`` runs a ledger method; the gateway passes its ledger writer's,
    so verifying a key (a ledger transaction) never holds this process's GIL.

    A key verified again may find its organisation in another tier (promoted by its spending
    or by time, or from another process): then the organisation's other keys are dropped, so
    they too are held to the new tier's limits on their next request, and
    ``on_tier_change(org_id)`` is told (the gateway reloads the organisation's account view,
    which enforces the tier's monthly ceiling)."""

    def __init__(
        self,
        ledger: Any,
        *,
        ttl: float = 2.0,
        call: LedgerCall | None = None,
        on_tier_change: Callable[[str], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.ttl = ttl
        self._on_tier_change = on_tier_change
        self._call = call or in_thread(ledger)
        self._callers: dict[bytes, tuple[float, Caller]] = {}
        self._verifying: dict[bytes, asyncio.Future] = {}
        self._tiers: dict[str, tuple[float, Any]] = {}  # org id → (until, its TierStatus)

    async def caller(self, plaintext: str, *, fresh: bool = False) -> Caller:
        """The caller presenting ``plaintext``. ``fresh``: read the ledger even if the key is
        remembered — for a request that takes no hold, nothing else would check the key."""
        digest = hashlib.sha256(plaintext.encode()).digest()
        cached = self._callers.get(digest)
        now = time.monotonic()
        if fresh:
            try:
                caller = await self._verify(plaintext)
            except (InvalidKey, KeySuspended):
                self._callers.pop(digest, None)  # this process's other requests see it at once too
                raise
        elif cached is None or cached[0] < now:
            try:
                caller = await self._verified(digest, plaintext)
            except LedgerUnavailable:
                # Nothing can change the key while the ledger is unreachable: a key verified
                # before keeps its answer (with holds in Redis, its requests are still served).
                if cached is None:
                    raise
                caller = cached[1]
        else:
            caller = cached[1]
        expires = caller.key.expires_at
        if expires is not None and expires <= datetime.now(UTC):
            self._callers.pop(digest, None)
            raise KeyExpired(
                f"API key {shown_key(caller.key.prefix)} expired at {expires.isoformat()}; create a new one"
            )
        return caller

    async def _verified(self, digest: bytes, plaintext: str) -> Caller:
        # One verification per key at a time: when an entry expires under load, the requests
        # arriving meanwhile wait for it instead of each reading the ledger again.
        pending = self._verifying.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(self._verify(plaintext))
            self._verifying[digest] = pending
            pending.add_done_callback(lambda done: self._remember(digest, done))
        return await asyncio.shield(pending)

    def _remember(self, digest: bytes, done: asyncio.Future) -> None:
        if self._verifying.get(digest) is not done:
            return  # forgotten while it was being verified: the next request verifies again
        del self._verifying[digest]
        if done.cancelled() or done.exception() is not None:
            return
        caller: Caller = done.result()
        previous = self._callers.get(digest)
        if previous is not None and previous[1].tier != caller.tier:
            org_id = caller.key.org_id
            log.debug("org %s is now in tier %s (was %s)", org_id, caller.tier, previous[1].tier)
            for other, (_, remembered) in list(self._callers.items()):
                if remembered.key.org_id == org_id:
                    del self._callers[other]
            if self._on_tier_change is not None:
                self._on_tier_change(org_id)
        self._callers[digest] = (time.monotonic() + self.ttl, caller)

    async def _verify(self, plaintext: str) -> Caller:
        key = await self._call(Ledger.verify_key, plaintext)
        tier = (await self._tier_of(key.org_id)).tier
        limits = limits_for_key(key, tier)
        log.debug(
            "key %s verified: org %s, project %s, tier %s, limits %s",
            key.id,
            key.org_id,
            key.project_id,
            tier.name if tier else "none",
            ", ".join(f"{limit.scope} {limit.describe()}" for limit in limits.limits) or "none",
        )
        return Caller(key=key, limits=limits, tier=tier.name if tier else None)

    async def _tier_of(self, org_id: str) -> Any:
        remembered = self._tiers.get(org_id)
        if remembered is not None and remembered[0] >= time.monotonic():
            return remembered[1]
        status = await self._call(Ledger.tier_of, org_id)
        self._tiers[org_id] = (time.monotonic() + self.ttl, status)
        return status

    def forget(self, kind: str = "", ident: str = "") -> None:
        """Drop remembered keys: one key's entries, one organisation's, or all of them."""
        self._verifying.clear()
        self._tiers.clear()
        if not ident:
            self._callers.clear()
            return
        for digest, (_, caller) in list(self._callers.items()):
            if ident in (caller.key.id, caller.key.org_id, caller.key.project_id):
                del self._callers[digest]

"""Shared accounting's charges on their way to the ledger (holds in Redis).

A charge is made durable in this process's charge journal (kakin.gateway.journal) before the
response's last byte, as in local accounting; the ledger writer posts the journal in batches
moments later. Without a journal (a writer in a thread) it is submitted to the ledger writer
and durable once posted. Either way, once the ledger holds the charge this process's
:class:`~kakin.gateway.shared_state.Contribution` is told, so the charge leaves Redis's pending
list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kakin.gateway.committer import Committer
from kakin.gateway.journal import ChargeJournal, PostedCharges
from kakin.gateway.shared_state import Contribution
from kakin.ledger.records import PostOp

Then = Callable[[Any], None] | None  # told the ledger's Settlement once the charge is posted


class ChargePosting:
    """Charges durable, then posted; use from the gateway's event loop. ``posted`` is what
    ``committer`` tells of the journal charges it posts."""

    def __init__(
        self, committer: Committer, journal: ChargeJournal | None, posted: PostedCharges, mine: Contribution
    ) -> None:
        self.committer = committer
        self.journal = journal
        self.posted = posted
        self.mine = mine

    def begin(self, op: PostOp) -> asyncio.Future | None:
        """Start making ``op`` durable: appended to the journal, written at the end of this turn
        of the event loop, so that it goes out with the charge's count in Redis. None without
        a journal (:meth:`finish` posts it)."""
        return self.journal.append(op) if self.journal is not None else None

    async def finish(self, op: PostOp, appended: asyncio.Future | None, then: Then) -> None:
        """Return once ``op`` is durable (``appended``: what :meth:`begin` returned); ``then``
        receives its Settlement once the ledger has posted it."""
        org_id, charge_key = op.scope.org_id, op.idempotency_key
        if appended is None:
            settlement = await self.committer.submit(op)
            self._posted(org_id, charge_key, then, settlement)
            return
        self.posted.then(await appended, lambda result: self._posted(org_id, charge_key, then, result))

    def _posted(self, org_id: str, charge_key: str, then: Then, result: Any) -> None:
        self.mine.posted(org_id, charge_key)
        if then is not None:
            then(result)

    async def settled(self) -> None:
        """Wait until every charge made so far is posted to the ledger."""
        if self.journal is not None:
            await self.journal.all_posted(self.posted)

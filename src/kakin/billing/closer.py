"""Closing cycles by themselves: ``kakin serve`` runs :class:`CycleCloser` in the background,
issuing every organisation's cycle once its grace period has ended.

It runs once at start-up (catching up on cycles that ended while nothing was serving) and
then every ``close_interval_seconds``. Issuing is idempotent and numbers are taken in the
issuing transaction, so several serving processes closing the same cycles at once issue each
exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from kakin.billing.service import Billing

log = logging.getLogger("kakin.billing")


class CycleCloser:
    def __init__(
        self,
        billing: Billing,
        interval_seconds: float,
        settled: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``settled``: waits until every charge answered so far is in the ledger (a gateway in
        local accounting posts journaled charges moments after answering), so a cycle is
        issued with them rather than carrying them to the next invoice."""
        self.billing = billing
        self.interval = interval_seconds
        self.settled = settled
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="kakin-cycle-closer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close_once(self) -> int:
        """Issue what is due now; returns how many invoices were issued."""
        if self.settled is not None:
            await self.settled()
        done = await asyncio.to_thread(self.billing.close_due)
        issued = [item.invoice for item in done if not item.repeated]
        for invoice in issued:
            log.info("issued invoice %s of %s for %s", invoice.number, invoice.recipient.name, invoice.month)
        return len(issued)

    async def _run(self) -> None:
        while True:
            try:
                await self.close_once()
            except Exception:  # a failed round is retried at the next one; serving goes on
                log.exception("closing billing cycles failed; retrying in %s s", self.interval)
            await asyncio.sleep(self.interval)

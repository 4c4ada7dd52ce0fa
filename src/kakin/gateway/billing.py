"""What one request holds and what it is charged.

Before forwarding: hold the most the request can cost (the price of its worst-case usage).
After: price the usage the provider reported (or kakin's own count, with a note saying why),
charge it — durable on return — tell the alerts, and correct the rate limiter's token count
from the bound to the usage. A request the provider refused, or one that never left, is free:
its hold is released and its tokens given back. How holds and charges are recorded (in the
ledger, or in memory and the charge journal) is :mod:`kakin.gateway.accounting`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from kakin.alerts import SettleEvent
from kakin.catalog import Catalog
from kakin.config import Settings
from kakin.errors import KakinError
from kakin.gateway.accounting import Accountant
from kakin.gateway.call import Call
from kakin.ledger.errors import BudgetExceeded, CreditExhausted, UnboundedOutputBusy
from kakin.ledger.records import UsageDetail
from kakin.limits import RateLimiter
from kakin.metrics import Metrics
from kakin.money import to_pico
from kakin.pricing import Cost, Usage, price
from kakin.providers import output_unlimited

log = logging.getLogger("kakin.gateway")


class Billing:
    """``alerts`` (kakin.alerts, optional) is told of every settlement; ``metrics`` count
    holds, charges and how long each took to be durable (in accounting ``mode``)."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        accounts: Accountant,
        limiter: RateLimiter,
        metrics: Metrics,
        mode: str,
        alerts: Any = None,
    ) -> None:
        self.catalog = catalog
        self.accounts = accounts
        self.limiter = limiter
        self.metrics = metrics
        self.mode = mode
        self.alerts = alerts
        self._to_alert: list[tuple[Call, Any, UsageDetail]] = []  # settled this turn, for the alerts
        self.default_output = settings.gateway.default_max_output_tokens
        # Requests without an output limit are forwarded unchanged: their output is unbounded.
        self.hold_only = settings.gateway.output_limit == "hold_only"

    async def hold(self, call: Call) -> Decimal:
        """Hold the most the request can cost; returns that bound. The input side is first
        bounded without counting tokens (cheap, never below the count); only if that hold
        is refused is the exact count used to try again. A request forwarded with its output
        unbounded holds as much, marked so the admission rule lets one such request at a time
        pass a cap (kakin.ledger.admission)."""
        usage = call.parsed.bound_usage(self.default_output, quick=True)
        key = call.idempotency_key or call.request_id
        client_key = bool(call.idempotency_key)
        bound = self._bound(call, usage)
        unbounded = self.hold_only and output_unlimited(call.parsed)
        started = time.perf_counter()
        try:
            try:
                call.ticket = await self.accounts.hold(
                    call.scope, bound, usage.input_tokens + usage.output_tokens, key, client_key, unbounded
                )
            except (BudgetExceeded, CreditExhausted):
                exact = call.parsed.bound_usage(self.default_output)
                if exact.input_tokens >= usage.input_tokens:
                    raise
                usage, bound = exact, self._bound(call, exact)
                call.ticket = await self.accounts.hold(
                    call.scope, bound, usage.input_tokens + usage.output_tokens, key, client_key, unbounded
                )
        except UnboundedOutputBusy:
            # Asked to come back: its tokens are given back so that waiting costs no token
            # allowance (the request still counted toward the request limits).
            await self.limiter.aadjust_tokens(call.caller.limits, -call.bound_tokens)
            raise
        if self.mode == "shared":  # a ledger reservation; in local accounting a hold is in memory
            self.metrics.wrote("hold", self.mode, time.perf_counter() - started)
        self.metrics.held(1)
        return bound

    def _bound(self, call: Call, usage: Usage) -> Decimal:
        """The most this request can cost: the price of its worst-case usage, or — when it may
        write to a prompt cache, whose rate can be twice the input rate — every input token
        at the dearest input-side rate."""
        cost = self._price(call, usage)
        bound = cost.total if cost else Decimal(0)
        if call.entry is not None and b"cache_control" in call.parsed.body:
            rates = self.catalog.bound_rates(
                call.entry, call.started, call.parsed.mode, input_tokens=usage.input_tokens
            )
            bound = max(bound, rates.bound(usage.input_tokens, usage.output_tokens))
        return bound

    def _price(self, call: Call, usage: Usage) -> Cost | None:
        if call.entry is None:
            return None
        return price(usage, call.entry, at=call.started, mode=call.parsed.mode, catalog=self.catalog)

    async def settle(self, call: Call, usage: Usage, note: str = "") -> Decimal:
        """Charge ``usage`` (durable on return); ``note`` says why it is not the provider's report."""
        cost = self._price(call, usage)
        total = cost.total if cost else Decimal(0)
        items = [item.to_dict() for item in cost.items] if cost else []
        if note:
            items.append({"note": note})
        routing_saved = Decimal(0)
        if call.route.baseline and call.route.baseline != call.route.model:
            try:
                routing_saved = max(
                    Decimal(0),
                    price(usage, call.route.baseline, at=call.started, catalog=self.catalog).total - total,
                )
            except KakinError:
                routing_saved = Decimal(0)
        detail = UsageDetail(
            provider=call.provider.name,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cache_read_tokens,
            reasoning_tokens=min(usage.output_reasoning_tokens, usage.output_tokens),
            cost_items=orjson.dumps(items).decode(),  # the ledger stores a JSON text as it is
            request_id=call.request_id,
            routed_from=call.route.routed_from,
            routing_saved=routing_saved,
        )
        then = (lambda settlement: self._settled(call, settlement, detail)) if self.alerts else None
        started = time.perf_counter()
        await self.accounts.charge(call.ticket, total, detail, then)
        call.ticket = None
        self.metrics.wrote("charge", self.mode, time.perf_counter() - started)
        self.metrics.held(-1)
        self.metrics.billed(
            call.provider.name,
            to_pico(total),
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_tokens,
            detail.reasoning_tokens,
        )
        await self.limiter.aadjust_tokens(
            call.caller.limits, usage.input_tokens + usage.output_tokens - call.bound_tokens
        )
        return total

    def _settled(self, call: Call, settlement: Any, detail: UsageDetail) -> None:
        """A charge is in the ledger (told on the event loop): the alerts evaluate the
        settlements of each turn of the loop together (the ledger writer posts in batches)."""
        self._to_alert.append((call, settlement, detail))
        if len(self._to_alert) == 1:
            asyncio.get_running_loop().call_soon(self._tell_alerts)

    def _tell_alerts(self) -> None:
        batch, self._to_alert = self._to_alert, []
        now = datetime.now(UTC)
        try:
            self.alerts.on_settled(
                [
                    SettleEvent.from_settlement(call.scope, settlement, detail, now, call.caller.key.prefix)
                    for call, settlement, detail in batch
                ]
            )
        except Exception:  # alerts must never fail a request that was served and billed
            log.exception(
                "alert evaluation failed for %s", ", ".join(call.request_id for call, _, _ in batch)
            )

    async def record_hit(self, call: Call, saved: Decimal) -> None:
        """A cache hit costs nothing; record it with the amount it saved."""
        call.ticket = await self.accounts.hold(call.scope, Decimal(0), 0, call.request_id)
        self.metrics.held(1)
        detail = UsageDetail(
            provider=call.provider.name,
            request_id=call.request_id,
            cache_hit=True,
            cache_saved=saved,
            routed_from=call.route.routed_from,
        )
        await self.accounts.charge(call.ticket, Decimal(0), detail)
        call.ticket = None
        self.metrics.held(-1)

    async def void(self, call: Call) -> None:
        """The request is not billed: release its hold, give its tokens back to the limiter
        (the request itself still counted toward the request limits)."""
        self.release(call)
        await self.limiter.aadjust_tokens(call.caller.limits, -call.bound_tokens)

    def release(self, call: Call) -> None:
        """Release the hold if the request still has one (every exit that did not charge)."""
        if call.ticket is not None:
            self.accounts.release(call.ticket)
            call.ticket = None
            self.metrics.held(-1)

    def disown(self, call: Call) -> None:
        """The hold found belongs to the first request with the same idempotency key: this one
        neither charges nor releases it."""
        if call.ticket is not None:
            call.ticket = None
            self.metrics.held(-1)

    def credit_left(self, call: Call) -> Decimal | None:
        return self.accounts.credit_left(call.caller.key.org_id)

"""Account views: one organisation's spending room, held in memory by a process that owns
the ledger (the embedded, single-gateway deployment).

Such a process need not write a reservation for every request: it loads the organisation's
counters once (credit, what other holders already hold, every budget's current period and
the tier ceiling), decides holds in memory with the rule :func:`kakin.ledger.charges.reserve` applies
(:mod:`kakin.ledger.admission`), and writes only the charge, afterwards, as a
:class:`~kakin.ledger.records.PostOp`. Holds then live only in memory, so a crash releases
them with the process — which is what a reservation's expiry would do anyway.

A view is exact only while nothing else changes the organisation, so it goes stale at the
first instant its figures could change by themselves (a budget period boundary, a grant's
activation or expiry, another holder's hold expiring), after ``max_age`` at the latest (to
pick up changes made by other processes, such as the CLI), or when :meth:`expire` is called.
Replace a stale view with a fresh one and let it :meth:`adopt_holds` of the old.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from kakin.errors import InvalidInput
from kakin.ledger import admission, budgets, charges
from kakin.ledger import validate as v
from kakin.ledger.records import Balance, BudgetStatus, Scope, Settlement
from kakin.ledger.work import Row, Work, min_time
from kakin.money import from_pico, to_pico

DEFAULT_MAX_AGE = timedelta(seconds=60)
_handles = itertools.count(1)


@dataclass(slots=True, eq=False)
class Hold:
    """One request's room, taken by :meth:`AccountView.hold`."""

    scope: Scope
    amount_pico: int
    tokens: int
    unbounded: bool = False  # the request's output is not limited (kakin.ledger.admission)
    id: int = field(default_factory=lambda: next(_handles))


@dataclass(frozen=True, slots=True)
class LiveHolds:
    """Holds an account view keeps in memory, which the ledger's counters never see: what a
    reader of balances and budget gauges adds to them to be exact while requests are in flight."""

    holds: tuple[Hold, ...] = ()

    def on_balance(self, balance: Balance) -> Balance:
        """``balance`` with these holds added to ``held`` (and taken from ``available``)."""
        if not self.holds:
            return balance
        held = balance.held + from_pico(sum(hold.amount_pico for hold in self.holds))
        return replace(balance, held=held, available=max(balance.credit - held, Decimal(0)))

    def on_budget(self, status: BudgetStatus) -> BudgetStatus:
        """``status`` with the holds its budget counts added to ``held`` (and taken from
        ``remaining``), in the budget's unit."""
        budget = status.budget
        counted = [
            hold
            for hold in self.holds
            if budgets.scope_matches(
                budget.scope,
                budget.scope_ref,
                hold.scope.project_id,
                hold.scope.key_id,
                hold.scope.model.strip(),
            )
        ]
        if not counted:
            return status
        if budget.unit == "usd":
            extra = from_pico(sum(hold.amount_pico for hold in counted))
        else:
            extra = Decimal(sum(hold.tokens for hold in counted))
        held = status.held + extra
        return replace(status, held=held, remaining=max(status.limit - status.spent - held, Decimal(0)))


NO_LIVE_HOLDS = LiveHolds()


class AccountView:
    """Spending room of one organisation; not thread-safe (use it from one thread or loop)."""

    def __init__(
        self,
        org: Row,
        budget_rows: list[Row],
        periods: dict[str, Row],
        last_credit_event: Callable[[], Any],
        now: datetime,
        valid_until: datetime,
    ) -> None:
        self.org = dict(org)
        self.org_id: str = org["id"]
        self._budgets = [dict(b) for b in budget_rows]
        self._periods = {budget_id: dict(period) for budget_id, period in periods.items()}
        self._last_credit_event = last_credit_event
        self._journal: tuple[int, Any] | None = None  # (credit when read, last credit event)
        self.loaded_at = now
        self.valid_until = valid_until
        self._expired = False
        self._holds: dict[int, Hold] = {}

    # Life cycle ----------------------------------------------------------------------------

    def stale(self, now: datetime) -> bool:
        return self._expired or now >= self.valid_until

    def expire(self) -> None:
        """Mark the view out of date (after a change made elsewhere, e.g. a new budget)."""
        self._expired = True

    def adopt_holds(self, previous: AccountView) -> None:
        """Take over the holds still open in the view this one replaces."""
        for hold in previous._holds.values():
            self._add(hold)
        previous._holds.clear()

    def __getstate__(self) -> dict[str, Any]:
        # The journal reader belongs to the loading process's ledger; a view that crossed
        # a process boundary is given this process's with read_journal_through().
        return {**self.__dict__, "_last_credit_event": None, "_journal": None}

    def read_journal_through(self, ledger: Any) -> None:
        """Read the credit journal, when a refusal must say what ran out, through ``ledger``."""
        org_id = self.org_id
        self._last_credit_event = lambda: ledger.read(lambda conn: charges.last_credit_event(conn, org_id))

    @property
    def open_holds(self) -> int:
        return len(self._holds)

    def live_holds(self) -> LiveHolds:
        """The holds open now. Safe to call from another thread: copying a dict's values is
        one step under CPython's GIL, so it never sees the dict change halfway."""
        return LiveHolds(tuple(self._holds.values()))

    @property
    def available(self) -> Decimal:
        """Credit not yet spent or held (in this view), in USD."""
        return from_pico(max(0, self.org["credit_pico"] - self.org["held_pico"]))

    # Holding -------------------------------------------------------------------------------

    def hold(self, scope: Scope, amount: object, tokens: object, unbounded: bool = False) -> Hold:
        """Room for one request, or the error ``reserve`` would raise (CreditExhausted,
        BudgetExceeded, TierLimitExceeded, UnboundedOutputBusy, InvalidInput)."""
        if not isinstance(scope, Scope) or scope.org_id != self.org_id:
            raise InvalidInput(f"this account view is for organisation {self.org_id}, not {scope!r}")
        pico = v.amount_pico(amount, "reservation amount")
        count = v.tokens(tokens, "reserved tokens")
        model = v.text(scope.model, "model")
        org = self.org
        applicable = self._applicable(scope.project_id, scope.key_id, model)
        room = admission.Room(
            bool(org["payment_method"]),
            org["credit_pico"],
            org["held_pico"],
            tuple(admission.budget_room(b, self._periods[b["id"]]) for b in applicable),
            org["held_unbounded"],
        )
        decision = admission.decide(room, admission.Ask(pico, count, unbounded))
        if not isinstance(decision, admission.Admitted):
            by_id = {b["id"]: b for b in applicable}
            raise admission.refusal(decision, org, by_id, self.loaded_at, self._last_event)
        hold = Hold(scope, pico, count, unbounded)
        self._add(hold)
        return hold

    def release(self, hold: Hold) -> None:
        """Give a hold's room back (the request failed, or it is about to be posted)."""
        if self._holds.pop(hold.id, None) is None:
            return
        self._shift(hold, -1)

    def posted(self, hold: Hold | None, settlement: Settlement, tokens: int) -> None:
        """Apply a committed :class:`PostOp` for ``hold``: release the hold, count the charge.
        A repeated post (same idempotency key) was counted the first time and is not again."""
        if hold is not None:
            self.release(hold)
        if not settlement.repeated:
            self._count(hold, to_pico(settlement.charged), to_pico(settlement.from_credit), tokens)

    def charged(self, hold: Hold, amount: Decimal, tokens: int) -> None:
        """Count a charge the ledger will post later (see kakin.gateway.journal): release the
        hold and take the charge from credit first, as the ledger will."""
        self.release(hold)
        pico = to_pico(amount)
        self._count(hold, pico, min(pico, max(0, self.org["credit_pico"])), tokens)

    def _count(self, hold: Hold | None, charged: int, from_credit: int, tokens: int) -> None:
        org = self.org
        org["credit_pico"] -= from_credit
        org["spent_pico"] += charged
        if hold is None:
            return
        for budget in self._applicable(hold.scope.project_id, hold.scope.key_id, hold.scope.model.strip()):
            period = self._periods[budget["id"]]
            period["spent_pico"] += charged
            period["spent_tokens"] += tokens

    # Internals -----------------------------------------------------------------------------

    def _last_event(self) -> Any:
        """The journal's last credit event, read once per credit figure (it changes only
        when credit does), so a refusal says what is true when it is made."""
        credit = self.org["credit_pico"]
        if self._journal is None or self._journal[0] != credit:
            self._journal = (credit, self._last_credit_event())
        return self._journal[1]

    def _applicable(self, project_id: str, key_id: str | None, model: str) -> list[Row]:
        return [b for b in self._budgets if budgets.matches(b, project_id, key_id, model)]

    def _add(self, hold: Hold) -> None:
        self._holds[hold.id] = hold
        self._shift(hold, +1)

    def _shift(self, hold: Hold, sign: int) -> None:
        self.org["held_pico"] += sign * hold.amount_pico
        self.org["held_tokens"] += sign * hold.tokens
        self.org["held_unbounded"] += sign * hold.unbounded
        for budget in self._applicable(hold.scope.project_id, hold.scope.key_id, hold.scope.model.strip()):
            period = self._periods[budget["id"]]
            period["held_pico"] += sign * hold.amount_pico
            period["held_tokens"] += sign * hold.tokens


def load(
    work: Work,
    org_id: str,
    max_age: timedelta = DEFAULT_MAX_AGE,
    last_credit_event: Callable[[], Any] | None = None,
) -> AccountView:
    """Build the view inside a ledger transaction (after the organisation's housekeeping).
    ``last_credit_event`` reads the journal when a refusal must say what ran out; it runs
    outside this transaction, later (the ledger passes one with its own connection)."""
    org = work.org(org_id)
    now = work.now
    periods: dict[str, Row] = {}
    valid_until = now + max_age
    rows = work.budgets_of(org["id"])
    for budget in rows:
        start, end = work.period_bounds(budget["period"], org["timezone"], now)
        period = work.period(budget["id"], start, create=False)
        periods[budget["id"]] = dict(period) if period else _empty_period(budget["id"], start)
        valid_until = min_time(valid_until, end) or valid_until
    valid_until = min_time(valid_until, org["next_grant_event"], org["next_hold_expiry"]) or valid_until
    if last_credit_event is None:
        event = charges.last_credit_event(work.conn, org["id"])

        def last_credit_event() -> Any:
            return event

    return AccountView(org, rows, periods, last_credit_event, now, valid_until)


def _empty_period(budget_id: str, start: datetime) -> dict[str, Any]:
    return {
        "budget_id": budget_id,
        "period_start": start,
        "spent_pico": 0,
        "spent_tokens": 0,
        "held_pico": 0,
        "held_tokens": 0,
        "fired": [],
    }

"""The admission rule: whether an organisation has room for one more hold.

One rule, called by every hold store: the ledger's ``reserve`` (on its counters, under the
organisation's lock), an :class:`~kakin.ledger.views.AccountView` (in a process's memory)
and the Redis hold store of shared accounting (whose Lua copy of this rule is tested against
this one: same numbers in, same decision out). :func:`decide` is pure: numbers in, a
:data:`Decision` out. A refusal carries the numbers it was decided on, and :func:`refusal`
turns it into the exact error (and message) the caller raises, adding the words only an
organisation's and a budget's rows hold (names, timezone, reset time).

Amounts are integer picodollars; a token budget counts tokens. Without a payment method a
hold must fit in the credit not already held (``credit - held >= amount``, with something
left); every applicable hard-capped budget must fit it too (``spent + held + need <= limit``,
need being the amount or the tokens in the budget's unit). Credit is checked first, then the
budgets in the order given.

A hold whose output is *unbounded* (the gateway's ``output_limit = "hold_only"`` forwards a
request that sets no output limit unchanged, so it may cost more than it holds) is admitted
only while no other unbounded hold of the organisation is open — when a cap could be passed
at all: without a payment method (credit is the cap), or under a hard-capped budget that
applies. Every other hold costs at most what it holds, so a cap is then passed by at most the
one unbounded request's overrun, which is less than its actual cost (the "no overspend"
guarantee). The scope is the organisation, the smallest that covers every cap a request can
count against (credit is the organisation's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from kakin.ledger.errors import BudgetExceeded, CreditExhausted, TierLimitExceeded, UnboundedOutputBusy
from kakin.ledger.periods import period_bounds
from kakin.ledger.validate import usd

Row = dict[str, Any]


# The inputs are NamedTuples: made on every hold, and a tuple is the cheapest record to make.


class BudgetRoom(NamedTuple):
    """One applicable budget's counters in its current period, in its unit (pico or tokens)."""

    id: str
    hard_cap: bool
    unit: str  # "usd" | "tokens"
    limit: int
    spent: int
    held: int


class Room(NamedTuple):
    """An organisation's state as far as admission reads it."""

    payment_method: bool
    credit_pico: int
    held_pico: int
    budgets: tuple[BudgetRoom, ...] = ()  # those that apply to the request, in checking order
    unbounded_held: int = 0  # open holds of the organisation whose output is unbounded


class Ask(NamedTuple):
    """The hold asked: its amount (pico) and tokens, and whether the request's output is
    unbounded (it may cost more than the amount)."""

    amount_pico: int
    tokens: int
    unbounded: bool = False


@dataclass(frozen=True, slots=True)
class Admitted:
    pass


@dataclass(frozen=True, slots=True)
class CreditShort:
    """No payment method, and the credit not already held cannot take the hold."""

    credit_pico: int
    held_pico: int
    amount_pico: int

    @property
    def available(self) -> int:
        return self.credit_pico - self.held_pico


@dataclass(frozen=True, slots=True)
class BudgetFull:
    """A hard-capped budget cannot take the hold (counters in the budget's unit)."""

    budget_id: str
    spent: int
    held: int
    need: int


@dataclass(frozen=True, slots=True)
class UnboundedBusy:
    """The request's output is unbounded, a cap could be passed, and ``held`` other unbounded
    holds of the organisation are open."""

    held: int


Decision = Admitted | CreditShort | BudgetFull | UnboundedBusy
Refused = CreditShort | BudgetFull | UnboundedBusy
ADMITTED = Admitted()


def decide(room: Room, ask: Ask) -> Decision:
    """The rule itself."""
    if not room.payment_method:
        available = room.credit_pico - room.held_pico
        if not (available > 0 and ask.amount_pico <= available):
            return CreditShort(room.credit_pico, room.held_pico, ask.amount_pico)
    for budget in room.budgets:
        if not budget.hard_cap:
            continue
        need = ask.amount_pico if budget.unit == "usd" else ask.tokens
        if budget.spent + budget.held + need > budget.limit:
            return BudgetFull(budget.id, budget.spent, budget.held, need)
    if ask.unbounded and room.unbounded_held > 0 and capped(room):
        return UnboundedBusy(room.unbounded_held)
    return ADMITTED


def capped(room: Room) -> bool:
    """Whether a hold could pass a cap: credit without a payment method, or a hard-capped budget."""
    return not room.payment_method or any(budget.hard_cap for budget in room.budgets)


def budget_room(budget: Row, period: Row | None) -> BudgetRoom:
    """A budget row and its current period's counter row (None: nothing counted yet)."""
    money = budget["unit"] == "usd"
    spent = 0 if period is None else period["spent_pico" if money else "spent_tokens"]
    held = 0 if period is None else period["held_pico" if money else "held_tokens"]
    return BudgetRoom(
        budget["id"], bool(budget["hard_cap"]), budget["unit"], budget["limit_value"], spent, held
    )


# Refusals ----------------------------------------------------------------------------------


def refusal(
    decision: Refused,
    org: Row,
    budgets: dict[str, Row],
    now: datetime,
    last_credit_event: Callable[[], Any],
) -> CreditExhausted | BudgetExceeded | UnboundedOutputBusy:
    """The error for a refusal: ``org`` and ``budgets`` (by id) give names, timezone and
    period; ``last_credit_event`` reads the journal, only when no credit is left at all."""
    if isinstance(decision, UnboundedBusy):
        return unbounded_busy(org)
    if isinstance(decision, CreditShort):
        story = describe_credit(decision.credit_pico, decision.held_pico, last_credit_event)
        return credit_exhausted(org, decision.amount_pico, decision.available, story)
    return exceeded(org, budgets[decision.budget_id], decision.spent, decision.held, decision.need, now)


def credit_exhausted(org: Row, amount: int, available: int, story: str) -> CreditExhausted:
    """The refusal when credit runs out and no payment method is on file."""
    return CreditExhausted(
        f"organisation {org['name']!r} is out of credit: {story}; this request needs up to "
        f"{usd(amount)} and {usd(max(available, 0))} is available. There is no payment method on "
        f'file, so usage stops here: add one (`kakin org update {org["name"]} --payment-method "card"`) to '
        f"continue on postpaid billing, or buy prepaid credit (`kakin credits grant {org['name']} --kind prepaid`)"
    )


# How long a refused unbounded request is asked to wait before it is sent again.
UNBOUNDED_RETRY_SECONDS = 1


def unbounded_busy(org: Row) -> UnboundedOutputBusy:
    """The refusal of an unbounded request while another is in flight."""
    return UnboundedOutputBusy(
        f"organisation {org['name']!r} already has a request without an output limit in flight. "
        "Such a request may cost more than kakin can hold for it, so under a hard cap or prepaid "
        "credit they run one at a time: set an output limit (max_tokens, max_completion_tokens, "
        "max_output_tokens or generationConfig.maxOutputTokens) to send this request now, or retry "
        f"after {UNBOUNDED_RETRY_SECONDS} s",
        retry_after_seconds=UNBOUNDED_RETRY_SECONDS,
    )


def describe_credit(credit: int, held: int, last_event: Callable[[], Any]) -> str:
    """Why there is no room for a hold, from the credit and held counters; the journal
    (``last_event``: kind, occurred_at, grant_id of the last entry that took credit away, or
    None) is read only when no credit is left."""
    if credit > 0:
        if held > 0:
            return f"{usd(held)} of its {usd(credit)} credit is held by requests in flight"
        return f"only {usd(credit)} of credit is left"
    last = last_event()
    if last is None:
        return "it has never had any credit"
    verb = {"expiry": "expired", "charge": "was used up", "refund": "was refunded"}[last.kind]
    return f"its last credit (grant {last.grant_id}) {verb} at {last.occurred_at.isoformat()}"


def exceeded(org: Row, budget: Row, spent: int, held: int, need: int, now: datetime) -> BudgetExceeded:
    """The refusal of a hard-capped budget (or the tier's ceiling) with no room."""
    _start, end = period_bounds(budget["period"], org["timezone"], now)
    fmt = _format(budget["unit"])
    left = max(budget["limit_value"] - spent - held, 0)
    resets = (
        f"it resets at {end.astimezone(ZoneInfo(org['timezone'])).isoformat()}"
        if end is not None
        else "it never resets (total budget)"
    )
    state = f"spent {fmt(spent)}, held by requests in flight {fmt(held)}, left {fmt(left)}"
    if budget["source"] == "tier":
        return TierLimitExceeded(
            f"usage tier {org['tier']!r} ({org['tier_rules']} rules) caps monthly spend at "
            f"{fmt(budget['limit_value'])}: {state}; this request needs up to {fmt(need)}. "
            f"{resets[0].upper()}{resets[1:]}; a higher tier raises the cap (see `kakin tier show {org['name']}`)",
            budget_id=budget["id"],
            period_end=end,
        )
    where = "organisation" if budget["scope"] == "org" else f"{budget['scope']} {budget['scope_ref']}"
    return BudgetExceeded(
        f"budget {budget['name']!r} ({where}, {budget['period']}, hard cap {fmt(budget['limit_value'])}) "
        f"has no room: {state}; this request needs up to {fmt(need)}. {resets[0].upper()}{resets[1:]}; "
        "raise the limit with `kakin budget set` to continue now",
        budget_id=budget["id"],
        period_end=end,
    )


def _format(unit: str) -> Callable[[int], str]:
    if unit == "usd":
        return lambda pico: f"{usd(pico)}"
    return lambda count: f"{count:,} tokens"

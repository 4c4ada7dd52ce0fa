"""The ledger's public value types: what its functions take and return.

Amounts are exact ``Decimal`` USD (stored as picodollars); token counts are ``int``;
times are timezone-aware UTC. Records are frozen: a changed balance is a new record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

GrantKind = Literal["free_trial", "welcome", "prepaid", "promotional"]
Category = Literal["free", "promotional", "paid"]
BudgetScope = Literal["org", "project", "key", "model"]
Period = Literal["day", "month", "total"]
Unit = Literal["usd", "tokens"]
ReservationStatus = Literal["held", "settled", "voided", "expired"]
EntryKind = Literal["grant", "charge", "expiry", "refund", "payment", "tier"]


@dataclass(frozen=True, slots=True)
class Org:
    id: str
    name: str
    currency: str
    timezone: str
    phone: str | None
    payment_method: bool
    payment_label: str | None
    billing_since: datetime | None
    first_payment_at: datetime | None
    tier_rules: str | None
    tier: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    org_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ObjectName:
    """A provider-side object by name: the API it lives in, its kind, the provider's id, the
    model it was made with ("" when none), and the input tokens it brings to a request that
    names it (None when not known)."""

    api: str
    kind: str
    object_id: str
    model: str = ""
    tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ProviderObject:
    """A provider-side object (``kind`` "cached_content", "response", "response_item")
    created through the gateway, and the project that owns it. ``tokens``: the input tokens
    it brings to a request that names it — a stored response's conversation, a cache's
    contents, at most an item's response's output (None: not recorded)."""

    api: str
    kind: str
    object_id: str
    org_id: str
    project_id: str
    model: str
    tokens: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A virtual API key as stored: never the secret, only its public prefix."""

    id: str
    org_id: str
    project_id: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    suspended_at: datetime | None
    suspend_reason: str | None
    models: tuple[str, ...] | None
    rpm: int | None
    tpm: int | None
    rotated_from: str | None
    replaced_by: str | None

    def status(self, now: datetime) -> str:
        """active | expired | revoked | suspended, as of ``now``."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if self.suspended_at is not None:
            return "suspended"
        return "active"


@dataclass(frozen=True, slots=True)
class Grant:
    id: str
    org_id: str
    kind: GrantKind
    category: Category
    priority: int
    amount: Decimal
    remaining: Decimal
    refunded: Decimal
    effective_at: datetime
    expires_at: datetime | None
    expired_at: datetime | None
    note: str
    created_at: datetime
    repeated: bool = False  # True when an idempotent repeat returned the first result


@dataclass(frozen=True, slots=True)
class Balance:
    """An organisation's money position, as of ``as_of``."""

    org_id: str
    credit: Decimal  # unexpired grant balances
    held: Decimal  # open reservations
    available: Decimal  # credit − held, never below zero
    due: Decimal  # postpaid charges not yet paid
    spent: Decimal  # everything ever charged
    paid: Decimal  # prepayments + payments − refunds
    payment_method: bool
    grants: tuple[Grant, ...]  # grants with credit left, in consumption order
    as_of: datetime


@dataclass(frozen=True, slots=True)
class Scope:
    """Who spends: the organisation, its project, the key used, and the model called."""

    org_id: str
    project_id: str
    key_id: str | None
    model: str


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    org_id: str
    project_id: str
    key_id: str | None
    model: str
    amount: Decimal
    tokens: int
    status: ReservationStatus
    idempotency_key: str
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    repeated: bool = False


@dataclass(frozen=True, slots=True)
class UsageDetail:
    """What a settled request used; becomes its usage record."""

    provider: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_items: Any = None  # JSON-able pricing explanation, or one already serialised (a str)
    request_id: str | None = None
    cache_hit: bool = False
    cache_saved: Decimal = Decimal(0)
    routed_from: str | None = None
    routing_saved: Decimal = Decimal(0)
    reasoning_tokens: int = 0  # part of output_tokens (billed as output)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class ThresholdCrossed:
    """A soft threshold a settle reached for the first time in a budget period."""

    budget_id: str
    budget_name: str
    org_id: str
    scope: BudgetScope
    scope_ref: str
    period: Period
    period_start: datetime
    period_end: datetime | None
    unit: Unit
    threshold: int  # percent
    spent: Decimal  # USD, or tokens for token budgets
    limit: Decimal


@dataclass(frozen=True, slots=True)
class Settlement:
    reservation_id: str
    org_id: str
    charged: Decimal
    from_credit: Decimal
    postpaid: Decimal
    overrun: Decimal  # charged beyond the hold (all of it when the hold had expired)
    late: bool  # settled after the hold expired
    thresholds: tuple[ThresholdCrossed, ...]
    repeated: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its fields, amounts as text: a settlement crosses the ledger writer's pipe
        for every charge, and a dataclass's own pickling, and a Decimal's, cost several times
        as much."""
        return (
            _settlement,
            (
                self.reservation_id,
                self.org_id,
                str(self.charged),
                str(self.from_credit),
                str(self.postpaid),
                str(self.overrun),
                self.late,
                self.thresholds,
                self.repeated,
            ),
        )


def _settlement(
    reservation_id: str,
    org_id: str,
    charged: str,
    from_credit: str,
    postpaid: str,
    overrun: str,
    late: bool,
    thresholds: tuple[ThresholdCrossed, ...],
    repeated: bool,
) -> Settlement:
    """A :class:`Settlement` unpickled (``Decimal(str(d))`` is ``d``, to its last zero)."""
    return Settlement(
        reservation_id,
        org_id,
        Decimal(charged),
        Decimal(from_credit),
        Decimal(postpaid),
        Decimal(overrun),
        late,
        thresholds,
        repeated,
    )


@dataclass(frozen=True, slots=True)
class Budget:
    id: str
    org_id: str
    name: str
    scope: BudgetScope
    scope_ref: str
    period: Period
    unit: Unit
    limit: Decimal  # USD, or tokens for token budgets
    thresholds: tuple[int, ...]
    hard_cap: bool
    source: str  # "user", or "tier" for the tier's monthly ceiling
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    budget: Budget
    period_start: datetime
    period_end: datetime | None
    spent: Decimal
    held: Decimal
    limit: Decimal
    percent: Decimal  # spent / limit × 100
    remaining: Decimal  # limit − spent − held, never below zero
    fired: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    requests_per_minute: int | None
    tokens_per_minute: int | None
    monthly_limit: Decimal | None
    requires: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TierStatus:
    org_id: str
    rules: str | None
    tier: Tier | None
    since: datetime | None
    next_tier: Tier | None
    missing: tuple[str, ...]  # what the next tier still needs, in words


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    org_id: str
    kind: EntryKind
    grant_id: str | None
    reservation_id: str | None
    amount: Decimal  # + credits the organisation, − debits it
    occurred_at: datetime
    recorded_at: datetime
    detail: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class UsageRecord:
    id: int
    org_id: str
    project_id: str
    key_id: str | None
    reservation_id: str
    request_id: str | None
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost: Decimal
    cost_items: Any
    occurred_at: datetime
    settled_at: datetime
    cache_hit: bool
    cache_saved: Decimal
    routed_from: str | None
    routing_saved: Decimal
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Refund:
    grant_id: str
    amount: Decimal
    remaining: Decimal
    repeated: bool = False


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    counter: int
    computed: int

    @property
    def ok(self) -> bool:
        return self.counter == self.computed


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """Every counter of one organisation next to the sum of the entries it summarises."""

    org_id: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def mismatches(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)


# Operations for Ledger.batch / kakin.ledger.ops.execute -------------------------------


@dataclass(frozen=True, slots=True)
class ReserveOp:
    scope: Scope
    amount: Decimal
    tokens: int
    idempotency_key: str
    expires_in: timedelta | None = None
    unbounded: bool = False  # the request's output is not limited (kakin.ledger.admission)


@dataclass(frozen=True, slots=True)
class SettleOp:
    reservation_id: str
    actual_amount: Decimal
    usage: UsageDetail


@dataclass(frozen=True, slots=True)
class VoidOp:
    reservation_id: str


@dataclass(frozen=True, slots=True)
class PostOp:
    """A one-phase charge: record a request already served, without a reservation.

    For a process that decided the hold itself (see :class:`kakin.ledger.views.AccountView`).
    Nothing is refused for lack of room — the usage happened — but the scope must be
    consistent, and the idempotency key works as for reserve: a repeat returns the first
    settlement, other parameters under the same key are a Conflict."""

    scope: Scope
    amount: Decimal
    usage: UsageDetail
    idempotency_key: str
    tokens: int = 0  # the request's token hold, kept on its record like a reservation's


Op = ReserveOp | SettleOp | VoidOp | PostOp
OpResult = Reservation | Settlement

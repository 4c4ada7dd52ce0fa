"""Credit: grants, refunds, payments, balances and the ledger's entries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kakin.admin.fields import Amount, IdempotencyKey, Moment, text
from kakin.admin.schemas.common import TIME_EXAMPLE, Strict, example, maybe_utc, money, usd_field, utc
from kakin.ledger.records import Balance, Entry, Grant, Refund

GrantKind = Literal["free_trial", "welcome", "prepaid", "promotional"]
Note = text(500, examples=["spring campaign"])
MAX_EXPIRES_IN = 100 * 366 * 86400  # a century: longer is a typo, not a plan


class GrantCreate(Strict):
    kind: GrantKind = Field(
        description="free_trial and welcome need the organisation's phone number (one free grant of either "
        "kind per identity); welcome also needs a billing account; prepaid is refundable money paid"
    )
    amount: Amount = Field(description="USD, decimal string, greater than zero")
    expires_at: Moment | None = Field(None, description="when unused credit expires")
    expires_in_seconds: int | None = Field(
        None, ge=1, le=MAX_EXPIRES_IN, description="alternative to expires_at, counted from effective_at"
    )
    effective_at: Moment | None = Field(None, description="when the credit becomes usable (default now)")
    priority: int | None = Field(
        None, ge=0, le=1000, description="lower burns first among equals (default 10)"
    )
    note: Note | None = None
    idempotency_key: IdempotencyKey | None = Field(
        None, description="or the Idempotency-Key header; required in one of the two"
    )

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"kind": "free_trial", "amount": "5", "expires_in_seconds": 7776000, "note": "trial"}
            ]
        },
    )


class GrantOut(BaseModel):
    id: str = Field(examples=["grt_01hx3k9v2a7bq4c8m0zp"])
    org_id: str
    kind: GrantKind
    category: Literal["free", "promotional", "paid"]
    priority: int = Field(examples=[10])
    amount: str = usd_field("granted", "5")
    remaining: str = usd_field("left to spend", "3.75")
    refunded: str = usd_field("refunded so far", "0")
    effective_at: datetime = Field(examples=[TIME_EXAMPLE])
    expires_at: datetime | None
    expired_at: datetime | None
    note: str
    created_at: datetime = Field(examples=[TIME_EXAMPLE])
    repeated: bool = Field(description="true when an idempotent retry returned the first result")

    @classmethod
    def of(cls, grant: Grant) -> GrantOut:
        return cls(
            id=grant.id,
            org_id=grant.org_id,
            kind=grant.kind,
            category=grant.category,
            priority=grant.priority,
            amount=money(grant.amount),
            remaining=money(grant.remaining),
            refunded=money(grant.refunded),
            effective_at=utc(grant.effective_at),
            expires_at=maybe_utc(grant.expires_at),
            expired_at=maybe_utc(grant.expired_at),
            note=grant.note,
            created_at=utc(grant.created_at),
            repeated=grant.repeated,
        )


class RefundCreate(Strict):
    amount: Amount | None = Field(None, description="USD to refund; omit to refund everything left")
    idempotency_key: IdempotencyKey | None = Field(None, description="or the Idempotency-Key header")

    model_config = example(amount="5", idempotency_key="refund-2025-05-01")


class RefundOut(BaseModel):
    grant_id: str
    amount: str = usd_field("refunded by this call")
    remaining: str = usd_field("left on the grant", "0")
    repeated: bool

    @classmethod
    def of(cls, refund: Refund) -> RefundOut:
        return cls(
            grant_id=refund.grant_id,
            amount=money(refund.amount),
            remaining=money(refund.remaining),
            repeated=refund.repeated,
        )


class PaymentCreate(Strict):
    amount: Amount = Field(description="USD paid against postpaid charges (at most the amount due)")
    idempotency_key: IdempotencyKey | None = Field(
        None, description="or the Idempotency-Key header; required in one of the two"
    )

    model_config = example(amount="42.5", idempotency_key="invoice-2025-04")


class EntryOut(BaseModel):
    id: int
    org_id: str
    kind: Literal["grant", "charge", "expiry", "refund", "payment", "tier"]
    grant_id: str | None
    reservation_id: str | None
    amount: str = Field(
        description="signed USD decimal string: + credits the organisation, − debits it", examples=["-0.0042"]
    )
    occurred_at: datetime = Field(examples=[TIME_EXAMPLE])
    recorded_at: datetime = Field(examples=[TIME_EXAMPLE])
    detail: dict[str, Any] | None

    @classmethod
    def of(cls, entry: Entry) -> EntryOut:
        return cls(
            id=entry.id,
            org_id=entry.org_id,
            kind=entry.kind,
            grant_id=entry.grant_id,
            reservation_id=entry.reservation_id,
            amount=money(entry.amount),
            occurred_at=utc(entry.occurred_at),
            recorded_at=utc(entry.recorded_at),
            detail=entry.detail,
        )


class BalanceOut(BaseModel):
    org_id: str
    credit: str = usd_field("unexpired credit")
    held: str = usd_field("held by requests in flight", "0.2")
    available: str = usd_field("credit − held, never below zero", "12.3")
    due: str = usd_field("postpaid charges not yet paid", "0")
    spent: str = usd_field("everything ever charged", "7.5")
    paid: str = usd_field("prepayments + payments − refunds", "20")
    payment_method: bool
    grants: list[GrantOut] = Field(description="grants with credit left, in consumption order")
    as_of: datetime = Field(examples=[TIME_EXAMPLE])

    @classmethod
    def of(cls, balance: Balance) -> BalanceOut:
        return cls(
            org_id=balance.org_id,
            credit=money(balance.credit),
            held=money(balance.held),
            available=money(balance.available),
            due=money(balance.due),
            spent=money(balance.spent),
            paid=money(balance.paid),
            payment_method=balance.payment_method,
            grants=[GrantOut.of(g) for g in balance.grants],
            as_of=utc(balance.as_of),
        )

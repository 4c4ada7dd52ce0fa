"""Two-phase charges: reserve an upper bound, then settle the actual cost or void."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kakin.admin.fields import Amount, IdempotencyKey, text
from kakin.admin.schemas.common import TIME_EXAMPLE, Strict, maybe_utc, money, usd_field, utc
from kakin.ledger.records import Reservation, Settlement, ThresholdCrossed

MAX_TOKENS = 10**12
MAX_HOLD_SECONDS = 7 * 86400
Ident = text(200, examples=["prj_01hx3k9v2a7bq4c8m0zp"])
ModelName = text(200, examples=["gpt-4o-mini"])
Provider = text(64, examples=["openai"])


class ReserveCreate(Strict):
    project_id: Ident = Field(description="the project that spends (its organisation pays)")
    key_id: Ident | None = Field(
        None, description="the virtual key used, if any (checked: active, same project)"
    )
    model: ModelName
    amount: Amount = Field(description="upper bound of the cost to hold (USD, decimal string)")
    tokens: int = Field(0, ge=0, le=MAX_TOKENS, description="upper bound of tokens, for token budgets")
    expires_in_seconds: int | None = Field(
        None, ge=1, le=MAX_HOLD_SECONDS, description="hold lifetime (default: the ledger's, 15 minutes)"
    )
    idempotency_key: IdempotencyKey | None = Field(
        None, description="or the Idempotency-Key header; required in one of the two"
    )

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "project_id": "prj_01hx3k9v2a7bq4c8m0zp",
                    "model": "gpt-4o-mini",
                    "amount": "0.02",
                    "tokens": 4000,
                    "idempotency_key": "req-7f3a",
                }
            ]
        },
    )


class ReservationOut(BaseModel):
    id: str = Field(examples=["res_01hx3k9v2a7bq4c8m0zp"])
    org_id: str
    project_id: str
    key_id: str | None
    model: str = Field(examples=["gpt-4o-mini"])
    amount: str = usd_field("held", "0.02")
    tokens: int = Field(examples=[4000])
    status: Literal["held", "settled", "voided", "expired"]
    idempotency_key: str
    created_at: datetime = Field(examples=[TIME_EXAMPLE])
    expires_at: datetime = Field(examples=[TIME_EXAMPLE])
    closed_at: datetime | None
    repeated: bool = Field(description="true when an idempotent retry returned the first result")

    @classmethod
    def of(cls, reservation: Reservation) -> ReservationOut:
        return cls(
            id=reservation.id,
            org_id=reservation.org_id,
            project_id=reservation.project_id,
            key_id=reservation.key_id,
            model=reservation.model,
            amount=money(reservation.amount),
            tokens=reservation.tokens,
            status=reservation.status,
            idempotency_key=reservation.idempotency_key,
            created_at=utc(reservation.created_at),
            expires_at=utc(reservation.expires_at),
            closed_at=maybe_utc(reservation.closed_at),
            repeated=reservation.repeated,
        )


class SettleCreate(Strict):
    amount: Amount = Field(description="the actual cost (USD, decimal string); may exceed the hold")
    provider: Provider
    input_tokens: int = Field(0, ge=0, le=MAX_TOKENS)
    output_tokens: int = Field(0, ge=0, le=MAX_TOKENS)
    cached_tokens: int = Field(0, ge=0, le=MAX_TOKENS, description="part of input_tokens read from cache")
    reasoning_tokens: int = Field(
        0,
        ge=0,
        le=MAX_TOKENS,
        description="part of output_tokens the model spent reasoning (billed as output)",
    )
    request_id: Ident | None = Field(None, description="the provider's request id", examples=["req_abc123"])
    cache_hit: bool = Field(False, description="served from kakin's response cache")
    cache_saved: Amount | None = Field(None, description="USD the response cache saved")
    routed_from: ModelName | None = Field(None, description="the model asked for, when routing changed it")
    routing_saved: Amount | None = Field(None, description="USD routing saved")
    cost_items: dict[str, Any] | None = Field(
        None, description="pricing explanation kept with the usage record"
    )

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"amount": "0.0123", "provider": "openai", "input_tokens": 1200, "output_tokens": 300}
            ]
        },
    )

    def savings(self) -> tuple[Decimal, Decimal]:
        return self.cache_saved or Decimal(0), self.routing_saved or Decimal(0)


class ThresholdOut(BaseModel):
    budget_id: str
    budget_name: str
    scope: Literal["org", "project", "key", "model"]
    scope_ref: str
    period: Literal["day", "month", "total"]
    period_start: datetime
    period_end: datetime | None
    unit: Literal["usd", "tokens"]
    threshold: int = Field(description="percent", examples=[80])
    spent: str = Field(description="USD or tokens, decimal string", examples=["8.1"])
    limit: str = Field(description="USD or tokens, decimal string", examples=["10"])

    @classmethod
    def of(cls, crossed: ThresholdCrossed) -> ThresholdOut:
        return cls(
            budget_id=crossed.budget_id,
            budget_name=crossed.budget_name,
            scope=crossed.scope,
            scope_ref=crossed.scope_ref,
            period=crossed.period,
            period_start=utc(crossed.period_start),
            period_end=maybe_utc(crossed.period_end),
            unit=crossed.unit,
            threshold=crossed.threshold,
            spent=money(crossed.spent),
            limit=money(crossed.limit),
        )


class SettlementOut(BaseModel):
    reservation_id: str
    org_id: str
    charged: str = usd_field("charged", "0.0123")
    from_credit: str = usd_field("paid from credit grants", "0.0123")
    postpaid: str = usd_field("added to the amount due", "0")
    overrun: str = usd_field("charged beyond the hold", "0")
    late: bool = Field(description="settled after the hold had expired")
    thresholds: list[ThresholdOut] = Field(description="budget thresholds first reached by this charge")
    repeated: bool

    @classmethod
    def of(cls, settlement: Settlement) -> SettlementOut:
        return cls(
            reservation_id=settlement.reservation_id,
            org_id=settlement.org_id,
            charged=money(settlement.charged),
            from_credit=money(settlement.from_credit),
            postpaid=money(settlement.postpaid),
            overrun=money(settlement.overrun),
            late=settlement.late,
            thresholds=[ThresholdOut.of(t) for t in settlement.thresholds],
            repeated=settlement.repeated,
        )

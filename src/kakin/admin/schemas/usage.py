"""Usage records (one per settled request) and the reconciliation proof."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from kakin.admin.schemas.common import TIME_EXAMPLE, money, usd_field, utc
from kakin.ledger.records import Reconciliation, UsageRecord


class UsageOut(BaseModel):
    id: int
    org_id: str
    project_id: str
    key_id: str | None
    reservation_id: str
    request_id: str | None
    model: str = Field(examples=["gpt-4o-mini"])
    provider: str = Field(examples=["openai"])
    input_tokens: int = Field(examples=[1200])
    output_tokens: int = Field(examples=[300])
    cached_tokens: int = Field(examples=[0], description="part of input_tokens read from cache")
    reasoning_tokens: int = Field(
        examples=[0], description="part of output_tokens the model spent reasoning (billed as output)"
    )
    cost: str = usd_field("charged", "0.00036")
    cost_items: Any = Field(description="the pricing explanation recorded at settle")
    occurred_at: datetime = Field(examples=[TIME_EXAMPLE])
    settled_at: datetime = Field(examples=[TIME_EXAMPLE])
    cache_hit: bool
    cache_saved: str = usd_field("saved by the response cache", "0")
    routed_from: str | None
    routing_saved: str = usd_field("saved by routing", "0")

    @classmethod
    def of(cls, record: UsageRecord) -> UsageOut:
        return cls(
            id=record.id,
            org_id=record.org_id,
            project_id=record.project_id,
            key_id=record.key_id,
            reservation_id=record.reservation_id,
            request_id=record.request_id,
            model=record.model,
            provider=record.provider,
            input_tokens=record.input_tokens,
            output_tokens=record.output_tokens,
            cached_tokens=record.cached_tokens,
            reasoning_tokens=record.reasoning_tokens,
            cost=money(record.cost),
            cost_items=record.cost_items,
            occurred_at=utc(record.occurred_at),
            settled_at=utc(record.settled_at),
            cache_hit=record.cache_hit,
            cache_saved=money(record.cache_saved),
            routed_from=record.routed_from,
            routing_saved=money(record.routing_saved),
        )


class CheckOut(BaseModel):
    name: str = Field(examples=["credit = Σ grant entries"])
    counter: str = Field(
        description="the stored counter, in storage units (picodollars or tokens)", examples=["9999876543211"]
    )
    computed: str = Field(description="the sum of what it summarises, same units", examples=["9999876543211"])
    ok: bool


class ReconciliationOut(BaseModel):
    org_id: str
    ok: bool = Field(description="every counter equals the sum of its entries", examples=[True])
    checks: list[CheckOut]

    @classmethod
    def of(cls, result: Reconciliation) -> ReconciliationOut:
        return cls(
            org_id=result.org_id,
            ok=result.ok,
            checks=[
                CheckOut(name=c.name, counter=str(c.counter), computed=str(c.computed), ok=c.ok)
                for c in result.checks
            ],
        )

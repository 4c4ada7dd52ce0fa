"""Budgets: USD or token limits per organisation, project, key or model and period."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kakin.admin.fields import Amount, text
from kakin.admin.schemas.common import TIME_EXAMPLE, Strict, maybe_utc, money, utc
from kakin.ledger.records import Budget, BudgetStatus

Scope = Literal["org", "project", "key", "model"]
Period = Literal["day", "month", "total"]
ScopeRef = text(200, examples=["prj_01hx3k9v2a7bq4c8m0zp"])
BudgetName = text(200, examples=["chatbot monthly"])
MAX_TOKENS = 10**12


class BudgetSet(Strict):
    """Creates the budget for (scope, scope_ref, period, unit) or changes the existing one."""

    scope: Scope = "org"
    scope_ref: ScopeRef | None = Field(
        None, description="project id, key id or model name; omitted for an organisation budget"
    )
    period: Period = Field(
        "month", description="calendar day or month in the organisation's timezone, or total"
    )
    limit: Amount | None = Field(None, description="USD limit (decimal string); or give limit_tokens")
    limit_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS, description="token limit instead of USD")
    thresholds: list[int] = Field(
        [50, 80, 100],
        max_length=20,
        description="alert at these percents of the limit, once per period (1..1000 each)",
    )
    hard_cap: bool = Field(False, description="refuse requests that would pass the limit")
    name: BudgetName | None = None

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"scope": "org", "period": "month", "limit": "100", "hard_cap": True}]
        },
    )


class BudgetOut(BaseModel):
    id: str = Field(examples=["bud_01hx3k9v2a7bq4c8m0zp"])
    org_id: str
    name: str = Field(examples=["org month spend"])
    scope: Scope
    scope_ref: str = Field(description="empty for an organisation budget")
    period: Period
    unit: Literal["usd", "tokens"]
    limit: str = Field(description="USD or tokens (unit), decimal string", examples=["100"])
    thresholds: list[int] = Field(examples=[[50, 80, 100]])
    hard_cap: bool
    source: Literal["user", "tier"] = Field(description="tier: the usage tier's monthly ceiling")
    created_at: datetime = Field(examples=[TIME_EXAMPLE])
    updated_at: datetime = Field(examples=[TIME_EXAMPLE])

    @classmethod
    def of(cls, budget: Budget) -> BudgetOut:
        return cls(
            id=budget.id,
            org_id=budget.org_id,
            name=budget.name,
            scope=budget.scope,
            scope_ref=budget.scope_ref,
            period=budget.period,
            unit=budget.unit,
            limit=money(budget.limit),
            thresholds=list(budget.thresholds),
            hard_cap=budget.hard_cap,
            source=budget.source,  # type: ignore[arg-type]
            created_at=utc(budget.created_at),
            updated_at=utc(budget.updated_at),
        )


class BudgetStatusOut(BaseModel):
    budget: BudgetOut
    period_start: datetime = Field(examples=[TIME_EXAMPLE])
    period_end: datetime | None = Field(description="null for a total budget")
    spent: str = Field(description="USD or tokens this period", examples=["42.1"])
    held: str = Field(description="held by requests in flight", examples=["0.3"])
    limit: str = Field(examples=["100"])
    percent: str = Field(description="spent ÷ limit × 100", examples=["42.10"])
    remaining: str = Field(description="limit − spent − held, never below zero", examples=["57.6"])
    fired: list[int] = Field(description="thresholds already alerted this period", examples=[[]])

    @classmethod
    def of(cls, status: BudgetStatus) -> BudgetStatusOut:
        return cls(
            budget=BudgetOut.of(status.budget),
            period_start=utc(status.period_start),
            period_end=maybe_utc(status.period_end),
            spent=money(status.spent),
            held=money(status.held),
            limit=money(status.limit),
            percent=money(status.percent),
            remaining=money(status.remaining),
            fired=list(status.fired),
        )

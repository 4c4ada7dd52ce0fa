"""Spend reports, the request log, one request's itemised cost, what-if and the month-end
forecast, as JSON: the figures of :mod:`kakin.reports`, money as exact decimal strings,
times in the organisation's zone (each answer names it)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel, Field

from kakin.admin.schemas.common import money, usd_field
from kakin.estimate import MonthForecast
from kakin.money import decimal_str
from kakin.reports import (
    CostLine,
    RequestDetail,
    RequestLine,
    RequestPage,
    Spend,
    SpendReport,
    UnitLine,
    WhatIf,
)

ZONE = Field(
    description="the organisation's timezone: every day, hour and time here is in it", examples=["Asia/Tokyo"]
)


class SpendOut(BaseModel):
    requests: int
    cache_hits: int
    routed_requests: int
    input_tokens: int = Field(description="uncached input")
    cached_tokens: int
    cache_write_tokens: int
    output_tokens: int = Field(description="output other than reasoning")
    reasoning_tokens: int
    tokens: int = Field(description="every token, input and output")
    images: int
    audio_seconds: str
    cost: str = usd_field("charged", "0.0045")
    cache_saved: str = usd_field("saved by the response cache", "0")
    routing_saved: str = usd_field("saved by routing", "0")

    @classmethod
    def of(cls, spend: Spend) -> SpendOut:
        return cls(
            requests=spend.requests,
            cache_hits=spend.cache_hits,
            routed_requests=spend.routed_requests,
            input_tokens=spend.input_tokens,
            cached_tokens=spend.cached_tokens,
            cache_write_tokens=spend.cache_write_tokens,
            output_tokens=spend.output_tokens,
            reasoning_tokens=spend.reasoning_tokens,
            tokens=spend.tokens,
            images=spend.images,
            audio_seconds=decimal_str(spend.audio_seconds),
            cost=money(spend.cost),
            cache_saved=money(spend.cache_saved),
            routing_saved=money(spend.routing_saved),
        )


class SpendLineOut(BaseModel):
    group: str = Field(
        description='local date, local hour with its offset, model, project id or key id ("" without a key)',
        examples=["2026-03-15"],
    )
    label: str = Field(description="what a reader sees: a project's name, a key's name and prefix")
    start: datetime | None = Field(description="for days and hours: the local instant the group begins")
    spend: SpendOut


class UnitOut(BaseModel):
    unit: str = Field(examples=["cached_input"])
    quantity: str | None = Field(description="null for `other`: no common measure")
    measure: str | None = Field(examples=["token"])
    cost: str = usd_field("charged for this unit", "0.0001")

    @classmethod
    def of(cls, line: UnitLine) -> UnitOut:
        quantity = None if line.quantity is None else decimal_str(line.quantity)
        return cls(unit=line.unit, quantity=quantity, measure=line.measure, cost=money(line.cost))


class SpendReportOut(BaseModel):
    org_id: str
    org_name: str
    timezone: str = ZONE
    by: str
    start: datetime = Field(description="local, inclusive")
    end: datetime = Field(description="local, exclusive")
    project_id: str | None
    key_id: str | None
    model: str | None
    lines: list[SpendLineOut]
    units: list[UnitOut] = Field(description="the whole period's money and quantities by unit")
    total: SpendOut

    @classmethod
    def of(cls, report: SpendReport) -> SpendReportOut:
        return cls(
            org_id=report.org_id,
            org_name=report.org_name,
            timezone=report.timezone,
            by=report.by,
            start=report.start,
            end=report.end,
            project_id=report.project_id,
            key_id=report.key_id,
            model=report.model,
            lines=[
                SpendLineOut(
                    group=line.group, label=line.label, start=line.start, spend=SpendOut.of(line.spend)
                )
                for line in report.lines
            ],
            units=[UnitOut.of(u) for u in report.units],
            total=SpendOut.of(report.total),
        )


class RequestLineOut(BaseModel):
    request_id: str | None
    reservation_id: str
    started_at: datetime = Field(description="local")
    project_id: str
    key_id: str | None
    model: str
    input_tokens: int = Field(description="all input, cached included")
    cached_tokens: int
    output_tokens: int
    cost: str = usd_field("charged", "0.0046")
    cache_hit: bool
    routed_from: str | None

    @classmethod
    def of(cls, line: RequestLine) -> RequestLineOut:
        return cls(
            request_id=line.request_id,
            reservation_id=line.reservation_id,
            started_at=line.started_at,
            project_id=line.project_id,
            key_id=line.key_id,
            model=line.model,
            input_tokens=line.input_tokens,
            cached_tokens=line.cached_tokens,
            output_tokens=line.output_tokens,
            cost=money(line.cost),
            cache_hit=line.cache_hit,
            routed_from=line.routed_from,
        )

    @classmethod
    def of_detail(cls, detail: RequestDetail) -> RequestLineOut:
        return cls(
            request_id=detail.request_id,
            reservation_id=detail.reservation_id,
            started_at=detail.started_at,
            project_id=detail.project_id,
            key_id=detail.key_id,
            model=detail.model,
            input_tokens=detail.input_tokens,
            cached_tokens=detail.cached_tokens,
            output_tokens=detail.output_tokens,
            cost=money(detail.cost),
            cache_hit=detail.cache_hit,
            routed_from=detail.routed_from,
        )


class RequestPageOut(BaseModel):
    org_id: str
    timezone: str = ZONE
    items: list[RequestLineOut] = Field(description="newest first")
    next: str | None = Field(description="pass as `after` for the next page; null on the last page")

    @classmethod
    def of(cls, page: RequestPage) -> RequestPageOut:
        return cls(
            org_id=page.org_id,
            timezone=page.timezone,
            items=[RequestLineOut.of(line) for line in page.lines],
            next=page.next,
        )

    @classmethod
    def found(cls, found: tuple[str, str, RequestDetail | None]) -> RequestPageOut:
        """The log filtered to one request id: that request, or nothing."""
        org_id, timezone, detail = found
        items = [] if detail is None else [RequestLineOut.of_detail(detail)]
        return cls(org_id=org_id, timezone=timezone, items=items, next=None)


class CostLineOut(BaseModel):
    component: str = Field(examples=["cache_read"])
    quantity: str
    unit: str
    unit_price: str = usd_field("per unit", "0.0000002")
    amount: str = usd_field("this line", "0.0001")
    tier: str | None = Field(description="the context tier the price came from, if tiered")
    effective_from: str | None = Field(description="ISO date the price took effect")
    source: str = Field(description="where the price came from")

    @classmethod
    def of(cls, line: CostLine) -> CostLineOut:
        return cls(
            component=line.component,
            quantity=decimal_str(line.quantity),
            unit=line.unit,
            unit_price=money(line.unit_price),
            amount=money(line.amount),
            tier=line.tier,
            effective_from=line.effective_from,
            source=line.source,
        )


class RequestDetailOut(BaseModel):
    request_id: str | None
    reservation_id: str
    org_id: str
    timezone: str = ZONE
    project_id: str
    project_name: str
    key_id: str | None
    key_label: str | None = Field(description="the key's name and public prefix, never the key")
    model: str
    provider: str
    started_at: datetime
    settled_at: datetime
    latency_seconds: str | None = Field(
        description="start to settle, when the request was held before it ran"
    )
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    units: list[UnitOut]
    cost: str = usd_field("charged", "0.0046")
    items: list[CostLineOut] = Field(description="the itemised cost, as priced when it was settled")
    notes: list[str]
    cache_hit: bool
    cache_saved: str = usd_field("saved by the response cache", "0")
    routed_from: str | None
    routing_saved: str = usd_field("saved by routing", "0")

    @classmethod
    def of(cls, detail: RequestDetail) -> RequestDetailOut:
        latency = None
        if detail.latency is not None:  # exact: whole microseconds
            latency = decimal_str(Decimal(detail.latency // timedelta(microseconds=1)).scaleb(-6))
        return cls(
            request_id=detail.request_id,
            reservation_id=detail.reservation_id,
            org_id=detail.org_id,
            timezone=detail.timezone,
            project_id=detail.project_id,
            project_name=detail.project_name,
            key_id=detail.key_id,
            key_label=detail.key_label,
            model=detail.model,
            provider=detail.provider,
            started_at=detail.started_at,
            settled_at=detail.settled_at,
            latency_seconds=latency,
            input_tokens=detail.input_tokens,
            cached_tokens=detail.cached_tokens,
            output_tokens=detail.output_tokens,
            units=[UnitOut.of(u) for u in detail.units],
            cost=money(detail.cost),
            items=[CostLineOut.of(i) for i in detail.items],
            notes=list(detail.notes),
            cache_hit=detail.cache_hit,
            cache_saved=money(detail.cache_saved),
            routed_from=detail.routed_from,
            routing_saved=money(detail.routing_saved),
        )


class RepricedOut(BaseModel):
    model: str = Field(description="the model the requests ran on")
    requests: int
    input_tokens: int
    output_tokens: int
    cost: str = usd_field("what it was charged", "0.0045")
    on: dict[str, str] = Field(description="target model → what the same usage would have cost (USD)")


class WhatIfOut(BaseModel):
    org_id: str
    org_name: str
    timezone: str = ZONE
    start: datetime
    end: datetime
    targets: list[str]
    priced_at: datetime = Field(description="the catalog's prices in force at this instant")
    lines: list[RepricedOut]
    cost: str = usd_field("what the period cost", "0.00945")
    totals: dict[str, str] = Field(description="target model → the whole period's cost on it (USD)")
    unpriced: list[str] = Field(description="units a token reprice leaves out (images, audio, other)")

    @classmethod
    def of(cls, result: WhatIf) -> WhatIfOut:
        return cls(
            org_id=result.org_id,
            org_name=result.org_name,
            timezone=result.timezone,
            start=result.start,
            end=result.end,
            targets=list(result.targets),
            priced_at=result.priced_at,
            lines=[
                RepricedOut(
                    model=line.model,
                    requests=line.requests,
                    input_tokens=line.input_tokens,
                    output_tokens=line.output_tokens,
                    cost=money(line.cost),
                    on={m: money(v) for m, v in line.on.items()},
                )
                for line in result.lines
            ],
            cost=money(result.cost),
            totals={m: money(v) for m, v in result.totals.items()},
            unpriced=list(result.unpriced),
        )


class ForecastOut(BaseModel):
    timezone: str = ZONE
    month: date
    as_of: date
    days_elapsed: int
    days_in_month: int
    spent_to_date: str = usd_field("spent this month", "0.00945")
    projected: str = usd_field("projected month-end total", "0.02")
    low: str = usd_field("10th percentile, never below what is spent", "0.00945")
    high: str = usd_field("90th percentile", "0.03")
    burn_rate: str = usd_field("mean per day over the window", "0.0003")
    pattern: str = Field(examples=["per-weekday"])

    @classmethod
    def of(cls, result: MonthForecast, timezone: str) -> ForecastOut:
        return cls(
            timezone=timezone,
            month=result.month,
            as_of=result.as_of,
            days_elapsed=result.days_elapsed,
            days_in_month=result.days_in_month,
            spent_to_date=money(result.spent_to_date),
            projected=money(result.projected),
            low=money(result.low),
            high=money(result.high),
            burn_rate=money(result.burn_rate),
            pattern=result.pattern,
        )

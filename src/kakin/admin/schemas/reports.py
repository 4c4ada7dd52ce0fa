"""Spend reports, the request log, one request's itemised cost, what-if and the forecast.

Built from :mod:`kakin.reports` results only, field for field the figures ``kakin report
--format json`` prints. Days and hours are the organisation's own: each result names its
``timezone`` and its times carry that zone's offset.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kakin.admin.schemas.common import money, usd_field
from kakin.estimate import MonthForecast
from kakin.money import FxRate, decimal_str
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

ZONE_EXAMPLE = "Asia/Tokyo"
LOCAL_EXAMPLE = "2025-05-01T00:00:00+09:00"


def _zone() -> Any:
    return Field(description="the IANA timezone the days, hours and times are in", examples=[ZONE_EXAMPLE])


class CurrencyOut(BaseModel):
    """The rate a ``currency`` query converted the costs with (amounts stay USD too)."""

    code: str = Field(examples=["JPY"])
    per_usd: str = Field(description="units of the currency per USD (decimal string)", examples=["150"])
    source: str = Field(
        description="where the rate comes from (KAKIN_FX_<CODE>, or the labelled default)",
        examples=["KAKIN_FX_JPY"],
    )

    @classmethod
    def of(cls, rate: FxRate) -> CurrencyOut:
        return cls(code=rate.currency, per_usd=decimal_str(rate.per_usd), source=rate.source)


def _converted(rate: FxRate | None, usd: Decimal) -> str | None:
    return None if rate is None else decimal_str(rate.convert(usd))


class SpendOut(BaseModel):
    requests: int = Field(examples=[42])
    input_tokens: int = Field(description="all input: uncached, cached and cache-written", examples=[51200])
    output_tokens: int = Field(description="all output, reasoning included", examples=[8300])
    cost: str = usd_field("charged", "1.2345")
    cost_in_currency: str | None = Field(
        description="the cost in the `currency` asked for (exact, unrounded); null without one",
        examples=["185.175"],
    )
    saved: str = usd_field("saved by the cache and by routing", "0.05")
    uncached_input_tokens: int = Field(examples=[40000])
    cached_tokens: int = Field(examples=[10000])
    cache_write_tokens: int = Field(examples=[1200])
    reasoning_tokens: int = Field(description="part of output_tokens spent reasoning", examples=[2000])
    images: int = Field(examples=[0])
    audio_seconds: str = Field(description="decimal string", examples=["0"])
    cache_hits: int = Field(examples=[3])
    routed_requests: int = Field(examples=[1])
    cache_saved: str = usd_field("saved by the response cache", "0.04")
    routing_saved: str = usd_field("saved by routing", "0.01")

    @classmethod
    def fields_of(cls, spend: Spend, rate: FxRate | None) -> dict[str, Any]:
        return {
            "requests": spend.requests,
            "input_tokens": spend.input_tokens + spend.cached_tokens + spend.cache_write_tokens,
            "output_tokens": spend.output_tokens + spend.reasoning_tokens,
            "cost": money(spend.cost),
            "cost_in_currency": _converted(rate, spend.cost),
            "saved": money(spend.saved),
            "uncached_input_tokens": spend.input_tokens,
            "cached_tokens": spend.cached_tokens,
            "cache_write_tokens": spend.cache_write_tokens,
            "reasoning_tokens": spend.reasoning_tokens,
            "images": spend.images,
            "audio_seconds": decimal_str(spend.audio_seconds),
            "cache_hits": spend.cache_hits,
            "routed_requests": spend.routed_requests,
            "cache_saved": money(spend.cache_saved),
            "routing_saved": money(spend.routing_saved),
        }


class SpendLineOut(SpendOut):
    group: str = Field(
        description="a local date, a local hour start with its offset, a model, a project id or a key id "
        '("" for requests without a key)',
        examples=["2025-05-01"],
    )
    label: str = Field(description="what a reader sees: a project's name, a key's name and prefix")
    start: datetime | None = Field(
        description="for days and hours: the local instant the group begins", examples=[LOCAL_EXAMPLE]
    )


class UnitOut(BaseModel):
    unit: str = Field(
        description="input, cached_input, cache_write, output, reasoning, images, audio, requests or other",
        examples=["input"],
    )
    quantity: str | None = Field(description="decimal string; null for other", examples=["40000"])
    measure: str | None = Field(description="token, image, second or request", examples=["token"])
    cost: str = usd_field("charged for this unit", "0.1")
    cost_in_currency: str | None = Field(description="in the `currency` asked for", examples=["15"])

    @classmethod
    def of(cls, line: UnitLine, rate: FxRate | None) -> UnitOut:
        return cls(
            unit=line.unit,
            quantity=None if line.quantity is None else decimal_str(line.quantity),
            measure=line.measure,
            cost=money(line.cost),
            cost_in_currency=_converted(rate, line.cost),
        )


class FiltersOut(BaseModel):
    project: str | None = Field(description="project id", examples=[None])
    key: str | None = Field(description="key id", examples=[None])
    model: str | None = Field(examples=[None])


class SpendReportOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    org_id: str = Field(examples=["org_01hx3k9v2a7bq4c8m0zp"])
    org_name: str = Field(examples=["acme"])
    timezone: str = _zone()
    by: Literal["day", "hour", "model", "project", "key", "unit"]
    start: datetime = Field(
        alias="from", description="first local instant (included)", examples=[LOCAL_EXAMPLE]
    )
    end: datetime = Field(
        alias="to", description="local instant after the last (excluded)", examples=[LOCAL_EXAMPLE]
    )
    filters: FiltersOut
    lines: list[SpendLineOut] = Field(description="days and hours in order; the rest by cost, highest first")
    units: list[UnitOut] = Field(description="the whole period's money and quantities by unit")
    total: SpendOut
    currency: CurrencyOut | None

    @classmethod
    def of(cls, report: SpendReport, rate: FxRate | None) -> SpendReportOut:
        return cls(
            org_id=report.org_id,
            org_name=report.org_name,
            timezone=report.timezone,
            by=report.by,
            start=report.start,
            end=report.end,
            filters=FiltersOut(project=report.project_id, key=report.key_id, model=report.model),
            lines=[
                SpendLineOut(
                    group=line.group,
                    label=line.label,
                    start=line.start,
                    **SpendOut.fields_of(line.spend, rate),
                )
                for line in report.lines
            ],
            units=[UnitOut.of(unit, rate) for unit in report.units],
            total=SpendOut(**SpendOut.fields_of(report.total, rate)),
            currency=None if rate is None else CurrencyOut.of(rate),
        )


# The request log and one request ---------------------------------------------------------------


class RequestLineOut(BaseModel):
    request_id: str | None = Field(description="x-kakin-request-id", examples=["req_01hx3k9v2a7bq4c8m0zp"])
    reservation_id: str = Field(examples=["res_01hx3k9v2a7bq4c8m0zp"])
    started_at: datetime = Field(description="local, with its offset", examples=[LOCAL_EXAMPLE])
    project_id: str
    key_id: str | None
    model: str = Field(examples=["gpt-4o-mini"])
    input_tokens: int = Field(description="all input, cached included", examples=[1200])
    cached_tokens: int = Field(examples=[0])
    output_tokens: int = Field(examples=[300])
    cost: str = usd_field("charged", "0.00036")
    cache_hit: bool
    routed_from: str | None = Field(description="the model asked for, when routing changed it")

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


class RequestPageOut(BaseModel):
    org_id: str = Field(examples=["org_01hx3k9v2a7bq4c8m0zp"])
    timezone: str = _zone()
    items: list[RequestLineOut] = Field(description="newest first")
    next: str | None = Field(
        description="opaque cursor of the next page (pass it as `cursor`); null on the last page",
        examples=["MjAyNS0wNS0wMVQwMDowMDowMCswMDowMHwxMjM"],
    )

    @classmethod
    def of(cls, page: RequestPage) -> RequestPageOut:
        return cls(
            org_id=page.org_id,
            timezone=page.timezone,
            items=[RequestLineOut.of(line) for line in page.lines],
            next=page.next,
        )


class CostLineOut(BaseModel):
    component: str = Field(examples=["input"])
    quantity: str = Field(description="decimal string", examples=["1200"])
    unit: str = Field(examples=["token"])
    unit_price: str = usd_field("per unit", "0.00000015")
    amount: str = usd_field("quantity × unit price", "0.00018")
    tier: str | None = Field(description="the context tier the provider served, if the price has tiers")
    effective_from: str | None = Field(description="ISO date the price took effect", examples=["2024-07-18"])
    source: str = Field(description="where the price comes from", examples=["genai-prices"])

    @classmethod
    def of(cls, line: CostLine) -> CostLineOut:
        return cls(
            component=line.component,
            quantity=decimal_str(line.quantity),
            unit=line.unit,
            unit_price=decimal_str(line.unit_price),
            amount=money(line.amount),
            tier=line.tier,
            effective_from=line.effective_from,
            source=line.source,
        )


class RequestDetailOut(BaseModel):
    request_id: str | None = Field(examples=["req_01hx3k9v2a7bq4c8m0zp"])
    reservation_id: str = Field(examples=["res_01hx3k9v2a7bq4c8m0zp"])
    org_id: str
    timezone: str = _zone()
    project_id: str
    project_name: str = Field(examples=["chatbot"])
    key_id: str | None
    key_label: str | None = Field(
        description="the key's name and public prefix", examples=["prod (kk-ab12-…)"]
    )
    model: str = Field(examples=["gpt-4o-mini"])
    provider: str = Field(examples=["openai"])
    started_at: datetime = Field(description="local, with its offset", examples=[LOCAL_EXAMPLE])
    settled_at: datetime = Field(description="local, with its offset", examples=[LOCAL_EXAMPLE])
    latency_ms: int | None = Field(
        description="start to settle, when the request was held before it ran", examples=[840]
    )
    input_tokens: int = Field(description="all input, cached included", examples=[1200])
    cached_tokens: int = Field(examples=[0])
    output_tokens: int = Field(description="all output, reasoning included", examples=[300])
    units: list[UnitOut] = Field(description="money and quantity by unit")
    cost: str = usd_field("charged", "0.00036")
    items: list[CostLineOut] = Field(description="the itemised cost, as priced when it was settled")
    notes: list[str] = Field(description="what the pricing noted next to the lines")
    cache_hit: bool
    cache_saved: str = usd_field("saved by the response cache", "0")
    routed_from: str | None
    routing_saved: str = usd_field("saved by routing", "0")

    @classmethod
    def of(cls, detail: RequestDetail) -> RequestDetailOut:
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
            latency_ms=None if detail.latency is None else round(detail.latency.total_seconds() * 1000),
            input_tokens=detail.input_tokens,
            cached_tokens=detail.cached_tokens,
            output_tokens=detail.output_tokens,
            units=[UnitOut.of(unit, None) for unit in detail.units],
            cost=money(detail.cost),
            items=[CostLineOut.of(item) for item in detail.items],
            notes=list(detail.notes),
            cache_hit=detail.cache_hit,
            cache_saved=money(detail.cache_saved),
            routed_from=detail.routed_from,
            routing_saved=money(detail.routing_saved),
        )


# What if and the forecast ----------------------------------------------------------------------


class RepricedOut(BaseModel):
    model: str = Field(description="the model the requests ran on", examples=["gpt-4o"])
    requests: int = Field(examples=[42])
    input_tokens: int = Field(description="all input", examples=[51200])
    output_tokens: int = Field(description="all output", examples=[8300])
    cost: str = usd_field("what it was charged", "0.2110")
    on: dict[str, str] = Field(
        description="target model → what the same usage would have cost (USD, decimal string)",
        examples=[{"gpt-4o-mini": "0.0126"}],
    )


class WhatIfOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    org_id: str = Field(examples=["org_01hx3k9v2a7bq4c8m0zp"])
    org_name: str = Field(examples=["acme"])
    timezone: str = _zone()
    start: datetime = Field(alias="from", examples=[LOCAL_EXAMPLE])
    end: datetime = Field(alias="to", examples=[LOCAL_EXAMPLE])
    targets: list[str] = Field(examples=[["gpt-4o-mini"]])
    priced_at: datetime = Field(description="the catalog's prices in force at this instant (UTC)")
    lines: list[RepricedOut]
    cost: str = usd_field("what the period cost", "0.2110")
    totals: dict[str, str] = Field(
        description="target model → the whole period's cost on it", examples=[{"gpt-4o-mini": "0.0126"}]
    )
    unpriced: list[str] = Field(
        description="units a token reprice leaves out (images, audio, other)", examples=[[]]
    )

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
                    on={model: money(amount) for model, amount in line.on.items()},
                )
                for line in result.lines
            ],
            cost=money(result.cost),
            totals={model: money(amount) for model, amount in result.totals.items()},
            unpriced=list(result.unpriced),
        )


class ForecastOut(BaseModel):
    org_id: str = Field(examples=["org_01hx3k9v2a7bq4c8m0zp"])
    timezone: str = _zone()
    project: str | None = Field(
        description="the project asked for (id or name); null for the whole organisation"
    )
    month: date = Field(description="first day of the forecast month", examples=["2025-05-01"])
    as_of: date = Field(examples=["2025-05-20"])
    days_in_month: int = Field(examples=[31])
    days_elapsed: int = Field(examples=[20])
    days_remaining: int = Field(examples=[11])
    spent_to_date: str = usd_field("spent this month up to as_of", "120.5")
    burn_rate: str = usd_field("mean daily spend over the window", "6.02")
    burn_rate_7d: str = usd_field("mean daily spend over the window's last 7 days", "6.4")
    observed_days: int = Field(examples=[28])
    pattern: Literal["per-weekday", "weekday/weekend", "flat"] = Field(
        description="how the remaining days are projected", examples=["per-weekday"]
    )
    daily_stdev: str = usd_field("standard deviation of daily spend", "1.1")
    remaining_projection: str = usd_field("projected for the remaining days", "70.1")
    projected: str = usd_field("spent + remaining", "190.6")
    low: str = usd_field("10th percentile (never below spent)", "175")
    high: str = usd_field("90th percentile", "205")

    @classmethod
    def of(cls, org_id: str, timezone: str, project: str | None, result: MonthForecast) -> ForecastOut:
        return cls(
            org_id=org_id,
            timezone=timezone,
            project=project,
            month=result.month,
            as_of=result.as_of,
            days_in_month=result.days_in_month,
            days_elapsed=result.days_elapsed,
            days_remaining=result.days_remaining,
            spent_to_date=money(result.spent_to_date),
            burn_rate=money(result.burn_rate),
            burn_rate_7d=money(result.burn_rate_7d),
            observed_days=result.observed_days,
            pattern=result.pattern,
            daily_stdev=money(result.daily_stdev),
            remaining_projection=money(result.remaining_projection),
            projected=money(result.projected),
            low=money(result.low),
            high=money(result.high),
        )

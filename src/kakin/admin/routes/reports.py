"""Spend reports, the request log, one request's itemised cost, what-if and the forecast.

Every route calls :mod:`kakin.reports`, the queries behind ``kakin report`` and the pages,
so the figures are the same everywhere; this module only reads parameters and shapes JSON.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import StringConstraints

from kakin.admin.context import AdminContext
from kakin.admin.errors import declare
from kakin.admin.fields import TEXT_PATTERN
from kakin.admin.routes.params import (
    DAY_PATTERN,
    Currency,
    FilterText,
    From,
    KeyRef,
    OrgRef,
    ProjectRef,
    To,
)
from kakin.admin.schemas.reports import (
    ForecastOut,
    RequestDetailOut,
    RequestPageOut,
    SpendReportOut,
    WhatIfOut,
)
from kakin.errors import InvalidInput
from kakin.estimate.forecast import MAX_WINDOW, MIN_WINDOW
from kakin.money import FxRate, MoneyError, fx_rate
from kakin.reports import Grouping, Reports
from kakin.reports.forecast import month_forecast
from kakin.reports.queries import MAX_PAGE

MAX_TARGETS = 10

ModelName = Annotated[str, StringConstraints(pattern=TEXT_PATTERN, max_length=200)]


def router(ctx: AdminContext) -> APIRouter:
    api = APIRouter(tags=["reports"])
    reports = Reports(ctx.ledger)

    @api.get(
        "/orgs/{org}/reports/spend",
        response_model=SpendReportOut,
        response_model_by_alias=True,
        summary="Spend report",
        description="Spend over [from, to) grouped by the organisation's local day or hour, model, project, "
        "key or unit: requests, tokens by kind, exact cost and savings per group, the period's money by unit "
        "and its total. Read from the rollups written with each charge; the figures `kakin report --format "
        "json` prints. Days and hours are the organisation's timezone, which the answer names; `by=day` "
        "needs whole local days, the others whole local hours.",
        responses=declare(404),
    )
    def spend(
        org: OrgRef,
        by: Annotated[Grouping, Query(description="how to group the spend")] = "day",
        start: From = None,
        end: To = None,
        project: ProjectRef = None,
        key: KeyRef = None,
        model: FilterText = None,
        currency: Currency = None,
    ) -> SpendReportOut:
        rate = _rate(currency)
        report = reports.spend(org, by=by, start=start, end=end, project=project, key=key, model=model)
        return SpendReportOut.of(report, rate)

    @api.get(
        "/orgs/{org}/requests",
        response_model=RequestPageOut,
        summary="Request log",
        description="Requests newest first, a page at a time: pass the answer's `next` as `cursor` for the "
        "following page (keyset pagination: every page costs the same at any depth, and a walk sees every "
        "request once). Filters: [from, to) in the organisation's timezone, project, key, model, and "
        "`request_id` (a request id or a reservation id). Times carry the organisation's offset.",
        responses=declare(404),
    )
    def request_log(
        org: OrgRef,
        start: From = None,
        end: To = None,
        project: ProjectRef = None,
        key: KeyRef = None,
        model: FilterText = None,
        request_id: Annotated[
            str | None,
            Query(pattern=TEXT_PATTERN, max_length=200, description="only this request id or reservation id"),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="requests per page")] = 50,
        cursor: Annotated[
            str | None,
            Query(pattern="^[A-Za-z0-9_-]+$", max_length=200, description="the `next` of the previous page"),
        ] = None,
    ) -> RequestPageOut:
        page = reports.requests(
            org,
            start=start,
            end=end,
            project=project,
            key=key,
            model=model,
            limit=limit,
            after=cursor,
            request_id=request_id,
        )
        return RequestPageOut.of(page)

    @api.get(
        "/orgs/{org}/requests/{request_id}",
        response_model=RequestDetailOut,
        summary="One request",
        description="Everything recorded about one request of the organisation, by its request id "
        "(x-kakin-request-id) or reservation id: model, provider, tokens and money by unit, the itemised cost "
        "(quantity, unit price, amount, context tier, the date the price took effect, its source), key, "
        "project, start and settle times, latency, cache and routing.",
        responses=declare(404),
    )
    def request_detail(
        org: OrgRef,
        request_id: Annotated[
            str,
            Path(
                pattern=TEXT_PATTERN,
                max_length=200,
                description="request id or reservation id",
                examples=["req_01hx3k9v2a7bq4c8m0zp"],
            ),
        ],
    ) -> RequestDetailOut:
        return RequestDetailOut.of(reports.request(request_id, org=org))

    @api.get(
        "/orgs/{org}/whatif",
        response_model=WhatIfOut,
        response_model_by_alias=True,
        summary="What if",
        description="The period's usage, model by model, repriced on each `model` given (repeat the parameter "
        "to compare several), beside what it cost; prices in force at the period's end. Each request is taken "
        "to be its model's average request of the period; images, audio and other units are left out and "
        "named in `unpriced`.",
        responses=declare(404),
    )
    def whatif(
        org: OrgRef,
        model: Annotated[
            list[ModelName],
            Query(min_length=1, max_length=MAX_TARGETS, description="a model to reprice on (repeatable)"),
        ],
        start: From = None,
        end: To = None,
        project: ProjectRef = None,
        key: KeyRef = None,
    ) -> WhatIfOut:
        return WhatIfOut.of(reports.whatif(org, model, start=start, end=end, project=project, key=key))

    @api.get(
        "/orgs/{org}/forecast",
        response_model=ForecastOut,
        summary="Month-end forecast",
        description="The month-end forecast on the organisation's (or one project's) recorded spend per local "
        "day: spent to date, the projection with its low–high range and the weekday pattern it used. Days "
        "without spend count as zero; days before the organisation existed are left out.",
        responses=declare(404),
    )
    def forecast(
        org: OrgRef,
        as_of: Annotated[
            str | None,
            Query(
                pattern=DAY_PATTERN,
                description="the local day to forecast from (default: today in the organisation's timezone)",
                examples=["2025-05-20"],
            ),
        ] = None,
        window: Annotated[
            int, Query(ge=MIN_WINDOW, le=MAX_WINDOW, description="days of history to learn the pattern from")
        ] = 28,
        project: ProjectRef = None,
    ) -> ForecastOut:
        record = ctx.ledger.get_org(org)
        day = _day(as_of)
        result = month_forecast(reports, record.id, project=project, as_of=day, window=window)
        return ForecastOut.of(record.id, record.timezone, project, result)

    return api


def _rate(currency: str | None) -> FxRate | None:
    if currency is None:
        return None
    try:
        return fx_rate(currency)
    except MoneyError as error:
        raise InvalidInput(str(error)) from None


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"as_of must be a date (YYYY-MM-DD), not {text!r}") from None

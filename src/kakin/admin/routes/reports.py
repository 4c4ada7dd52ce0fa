"""Spend reports as JSON: the queries of :mod:`kakin.reports` (the CLI's and the dashboard's),
with the organisation's own days and hours."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from kakin.admin.context import AdminContext
from kakin.admin.errors import declare
from kakin.admin.fields import TEXT_PATTERN
from kakin.admin.routes.params import FilterText, OrgRef
from kakin.admin.schemas.reports import (
    ForecastOut,
    RequestDetailOut,
    RequestPageOut,
    SpendReportOut,
    WhatIfOut,
)
from kakin.errors import NotFound
from kakin.reports import Reports, RequestDetail
from kakin.reports.forecast import month_forecast
from kakin.reports.queries import MAX_PAGE

Bound = Annotated[
    str | None,
    Query(
        description="a local date (YYYY-MM-DD: its midnight in the organisation's zone) or an ISO date-time; "
        "ranges are [from, to)",
        max_length=40,
    ),
]
ProjectRef = Annotated[
    str | None, Query(pattern=TEXT_PATTERN, max_length=200, description="project id or name")
]
KeyRef = Annotated[
    str | None, Query(pattern=TEXT_PATTERN, max_length=200, description="key id or its public prefix")
]


def router(ctx: AdminContext) -> APIRouter:
    api = APIRouter(tags=["reports"])
    reports = Reports(ctx.ledger)

    @api.get(
        "/orgs/{org}/reports/spend",
        response_model=SpendReportOut,
        summary="Spend report",
        description="Spend over [from, to) (default: this local month so far), grouped by the organisation's "
        "local day or hour, model, project, key or unit, from the rollups written with each charge. A report by "
        "day covers whole local days, the others whole hours.",
        responses=declare(404),
    )
    def spend(
        org: OrgRef,
        by: Annotated[Literal["day", "hour", "model", "project", "key", "unit"], Query()] = "day",
        start: Annotated[Bound, Query(alias="from")] = None,
        end: Annotated[Bound, Query(alias="to")] = None,
        project: ProjectRef = None,
        key: KeyRef = None,
        model: FilterText = None,
    ) -> SpendReportOut:
        report = reports.spend(org, by=by, start=start, end=end, project=project, key=key, model=model)
        return SpendReportOut.of(report)

    @api.get(
        "/orgs/{org}/reports/requests",
        response_model=RequestPageOut,
        summary="Request log",
        description="Requests newest first, keyset-paginated: pass the answer's `next` as `after` for the next "
        "page (each page costs the same at any depth). `request_id` finds one request by its "
        "x-kakin-request-id or reservation id.",
        responses=declare(404),
    )
    def requests(
        org: OrgRef,
        start: Annotated[Bound, Query(alias="from")] = None,
        end: Annotated[Bound, Query(alias="to")] = None,
        project: ProjectRef = None,
        key: KeyRef = None,
        model: FilterText = None,
        request_id: FilterText = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="requests per page")] = 50,
        after: Annotated[str | None, Query(max_length=200, description="the previous page's `next`")] = None,
    ) -> RequestPageOut:
        if request_id is not None:
            return RequestPageOut.found(_one(reports, org, request_id))
        page = reports.requests(
            org, start=start, end=end, project=project, key=key, model=model, limit=limit, after=after
        )
        return RequestPageOut.of(page)

    @api.get(
        "/orgs/{org}/reports/requests/{request}",
        response_model=RequestDetailOut,
        summary="One request",
        description="Everything recorded about one request (by x-kakin-request-id or reservation id): model, "
        "tokens by unit, the itemised cost with each line's price, tier, effective date and source, key, "
        "project, times, cache and routing.",
        responses=declare(404),
    )
    def request(
        org: OrgRef,
        request: Annotated[
            str, Path(pattern=TEXT_PATTERN, max_length=200, description="request or reservation id")
        ],
    ) -> RequestDetailOut:
        return RequestDetailOut.of(reports.request(request, org=org))

    @api.get(
        "/orgs/{org}/reports/whatif",
        response_model=WhatIfOut,
        summary="What if",
        description="The period's usage, model by model, repriced on other models (prices in force at the "
        "period's end, or now), beside what it cost.",
        responses=declare(404),
    )
    def whatif(
        org: OrgRef,
        model: Annotated[
            list[str], Query(min_length=1, max_length=20, description="a model to reprice on; repeat")
        ],
        start: Annotated[Bound, Query(alias="from")] = None,
        end: Annotated[Bound, Query(alias="to")] = None,
        project: ProjectRef = None,
        key: KeyRef = None,
    ) -> WhatIfOut:
        return WhatIfOut.of(reports.whatif(org, model, start=start, end=end, project=project, key=key))

    @api.get(
        "/orgs/{org}/reports/forecast",
        response_model=ForecastOut,
        summary="Month-end forecast",
        description="This month's projected total from the organisation's recorded local days (burn rate and "
        "weekday pattern over the window), with its 80 % range.",
        responses=declare(404),
    )
    def forecast(
        org: OrgRef,
        project: ProjectRef = None,
        window: Annotated[int, Query(ge=7, le=366, description="days of history to learn from")] = 28,
    ) -> ForecastOut:
        record = ctx.ledger.get_org(org)
        return ForecastOut.of(
            month_forecast(reports, record.id, project=project, window=window), record.timezone
        )

    return api


def _one(reports: Reports, org: str, request_id: str) -> tuple[str, str, RequestDetail | None]:
    """The organisation's id and zone, and its request by that id if there is one."""
    record = reports.ledger.get_org(org)
    try:
        return record.id, record.timezone, reports.request(request_id, org=record.id)
    except NotFound:
        return record.id, record.timezone, None

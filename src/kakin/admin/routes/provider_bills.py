"""Provider bills: importing a provider's own cost or usage export, and reconciling it with
kakin's metering (kakin.reconcile, the comparison ``kakin reconcile show`` and the dashboard show)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from kakin.admin.context import AdminContext
from kakin.admin.errors import declare
from kakin.admin.routes.params import DAY_PATTERN, OrgRef
from kakin.admin.schemas.common import Items
from kakin.admin.schemas.provider_bills import BillImportOut, ReconciliationOut
from kakin.errors import InvalidInput
from kakin.money import MoneyError, to_decimal
from kakin.reconcile import BillStore, Reconciler, Tolerance
from kakin.reconcile.bills import MAX_BYTES

ProviderName = Literal["openai", "anthropic", "google"]
_DAY = {"pattern": DAY_PATTERN, "examples": ["2026-03-01"]}
_BODY = {
    "requestBody": {
        "required": True,
        "description": "the export file as it was downloaded: OpenAI or Anthropic Admin API pages (JSON, one "
        "page or a list of pages), Google Cloud Billing's BigQuery export (JSON lines or CSV) or its console "
        "cost table (CSV)",
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


def router(ctx: AdminContext) -> APIRouter:
    api = APIRouter(tags=["provider bills"])
    store = BillStore(ctx.ledger)
    reconciler = Reconciler(ctx.ledger)

    @api.post(
        "/orgs/{org}/provider-bills/{provider}",
        response_model=BillImportOut,
        summary="Import a provider bill",
        description="Import a provider's own cost or usage export into the organisation. The file is read "
        "whole before anything is stored: a malformed one is refused (422, naming the line or field) and "
        "stores nothing. The same bytes imported again change nothing (`new: false`); a line of a later "
        "export that restates a day replaces the earlier one.",
        responses=declare(404),
        openapi_extra=_BODY,
    )
    async def import_bill(
        org: OrgRef,
        provider: Annotated[ProviderName, Path(description="whose bill it is")],
        request: Request,
        filename: Annotated[
            str, Query(max_length=300, description="the file's name, for the record")
        ] = "export",
    ) -> BillImportOut:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BYTES:
                raise InvalidInput(f"the file is larger than {MAX_BYTES // 2**20} MiB")
        done = await run_in_threadpool(store.import_bill, org, provider, bytes(body), filename)
        return BillImportOut.of(done)

    @api.get(
        "/orgs/{org}/provider-bills",
        response_model=Items[BillImportOut],
        summary="Imported provider bills",
        description="The files imported into the organisation, oldest first.",
        responses=declare(404),
    )
    def imports(
        org: OrgRef,
        provider: Annotated[ProviderName | None, Query(description="only this provider's")] = None,
    ) -> Items[BillImportOut]:
        return Items[BillImportOut](items=[BillImportOut.of(i) for i in store.imports(org, provider)])

    @api.get(
        "/orgs/{org}/provider-bills/{provider}/reconciliation",
        response_model=ReconciliationOut,
        summary="Reconcile with a provider's bill",
        description="The provider's imported bills beside kakin's metering per UTC day × model × unit: cost "
        "and tokens on each side, the difference and a verdict (match within the tolerance, provider higher, "
        "kakin higher, missing on one side). Benign differences are `explained` (lag, day_boundary, credit, "
        "rounding, adjustment, tax, outside_kakin) instead of `flagged`. Units list the cache categories "
        "first. 404 when no bill of that provider was imported.",
        responses=declare(404),
    )
    def reconciliation(
        org: OrgRef,
        provider: Annotated[ProviderName, Path(description="whose bill")],
        start: Annotated[str | None, Query(alias="from", description="first UTC day; default: the bills' first", **_DAY)] = None,
        end: Annotated[str | None, Query(alias="to", description="UTC day after the last; default: the bills' end", **_DAY)] = None,
        account: Annotated[
            list[str] | None,
            Query(max_length=200, description="provider projects / workspaces carrying kakin's traffic (repeat); "
                  "the others' lines are traffic outside kakin. Default: all are compared"),
        ] = None,
        tolerance: Annotated[str, Query(max_length=20, description="USD a line may differ by and match")] = "0.01",
        relative: Annotated[str, Query(max_length=20, description="share of a line's larger side it may differ by")] = "0.01",
        lag_days: Annotated[int, Query(ge=0, le=7, description="last days the provider may not have finished counting")] = 1,
    ) -> ReconciliationOut:  # fmt: skip
        try:
            limits = Tolerance(to_decimal(tolerance, what="tolerance"), to_decimal(relative, what="relative"))
        except MoneyError as exc:
            raise InvalidInput(str(exc)) from None
        result = reconciler.compare(
            org, provider, start=start, end=end, tolerance=limits, accounts=account or (), lag_days=lag_days
        )
        return ReconciliationOut.of(result)

    return api

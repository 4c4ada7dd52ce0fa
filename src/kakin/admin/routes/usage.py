"""Usage records with filters, and the reconciliation proof."""

from __future__ import annotations

from fastapi import APIRouter

from kakin.admin.context import AdminContext
from kakin.admin.errors import declare
from kakin.admin.routes.params import FilterText, Limit, OrgRef, Since, Until
from kakin.admin.schemas.common import Items
from kakin.admin.schemas.usage import ReconciliationOut, UsageOut


def router(ctx: AdminContext) -> APIRouter:
    api = APIRouter(tags=["usage"])
    ledger = ctx.ledger

    @api.get(
        "/orgs/{org}/usage",
        response_model=Items[UsageOut],
        summary="Usage records",
        description="One record per settled request (tokens, exact cost, cache and routing savings), oldest "
        "first, filtered by time window [since, until), project, key and model.",
        responses=declare(404),
    )
    def usage(
        org: OrgRef,
        since: Since = None,
        until: Until = None,
        project_id: FilterText = None,
        key_id: FilterText = None,
        model: FilterText = None,
        limit: Limit = 1000,
    ) -> Items[UsageOut]:
        records = ledger.usage(
            org, since=since, until=until, project_id=project_id, key_id=key_id, model=model, limit=limit
        )
        return Items[UsageOut](items=[UsageOut.of(r) for r in records])

    @api.get(
        "/orgs/{org}/reconcile",
        response_model=ReconciliationOut,
        summary="Reconcile",
        description="Prove that every counter of the organisation (credit, spent, due, paid, held, budget "
        "periods) equals the sum of the entries, reservations and usage records it summarises.",
        responses=declare(404, 409),
    )
    def reconcile(org: OrgRef) -> ReconciliationOut:
        return ReconciliationOut.of(ledger.reconcile(org))

    return api

"""Budgets: set (create or change), list, status, delete."""

from __future__ import annotations

from fastapi import APIRouter

from kakin.admin.context import AdminContext
from kakin.admin.errors import declare
from kakin.admin.routes.params import BudgetId, OrgRef
from kakin.admin.schemas.budgets import BudgetOut, BudgetSet, BudgetStatusOut
from kakin.admin.schemas.common import Items


def router(ctx: AdminContext) -> APIRouter:
    api = APIRouter(tags=["budgets"])
    ledger = ctx.ledger

    @api.post(
        "/orgs/{org}/budgets",
        response_model=BudgetOut,
        summary="Set a budget",
        description="Create the budget for (scope, scope_ref, period, unit), or change it if it exists. Give "
        "`limit` (USD) or `limit_tokens`. Soft thresholds alert once per period; `hard_cap` refuses requests "
        "that would pass the limit (402). A budget created mid-period counts the period's spend so far. A "
        "model budget names a model the gateway serves (404 `model_not_found` with the closest names "
        "otherwise); on a gateway alias it is set on the alias's model, which is what requests count under.",
        responses=declare(404, 409),
    )
    def set_budget(org: OrgRef, body: BudgetSet) -> BudgetOut:
        scope_ref = body.scope_ref
        if body.scope == "model" and scope_ref and ctx.budget_model is not None:
            scope_ref = ctx.budget_model(scope_ref)
        budget = ledger.set_budget(
            org,
            scope=body.scope,
            scope_ref=scope_ref,
            period=body.period,
            limit=body.limit,
            limit_tokens=body.limit_tokens,
            thresholds=body.thresholds,
            hard_cap=body.hard_cap,
            name=body.name,
        )
        ctx.changed("org", budget.org_id)
        return BudgetOut.of(budget)

    @api.get(
        "/orgs/{org}/budgets",
        response_model=Items[BudgetOut],
        summary="List budgets",
        description="The organisation's budgets, oldest first, including the usage tier's monthly ceiling "
        "(source `tier`).",
        responses=declare(404, 409),
    )
    def list_budgets(org: OrgRef) -> Items[BudgetOut]:
        return Items[BudgetOut](items=[BudgetOut.of(b) for b in ledger.list_budgets(org)])

    @api.get(
        "/orgs/{org}/budgets/status",
        response_model=Items[BudgetStatusOut],
        summary="Budget gauges",
        description="Every budget's current period: spent, held, remaining, percent and thresholds fired.",
        responses=declare(404, 409),
    )
    def budget_statuses(org: OrgRef) -> Items[BudgetStatusOut]:
        statuses = ledger.budget_statuses(org)
        return Items[BudgetStatusOut](items=[BudgetStatusOut.of(ctx.budget_status(s)) for s in statuses])

    @api.get(
        "/budgets/{budget_id}/status",
        response_model=BudgetStatusOut,
        summary="One budget's gauge",
        description="The budget's current period: spent, held, remaining, percent and thresholds fired.",
        responses=declare(404, 409),
    )
    def budget_status(budget_id: BudgetId) -> BudgetStatusOut:
        return BudgetStatusOut.of(ctx.budget_status(ledger.budget_status(budget_id)))

    @api.delete(
        "/budgets/{budget_id}",
        response_model=BudgetOut,
        summary="Delete a budget",
        description="Removes the budget and its counters; returns what was removed. The usage tier's ceiling "
        "cannot be deleted (422): change the tier rules instead.",
        responses=declare(404, 409),
    )
    def delete_budget(budget_id: BudgetId) -> BudgetOut:
        removed = ledger.delete_budget(budget_id)
        ctx.changed("org", removed.org_id)
        return BudgetOut.of(removed)

    return api

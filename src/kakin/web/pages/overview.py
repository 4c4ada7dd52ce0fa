"""The overview: month to date, today, the month-end forecast, budgets, credit, spend by model."""

from __future__ import annotations

from datetime import timedelta

from starlette.responses import Response

from kakin.ledger.views import NO_LIVE_HOLDS
from kakin.reports.forecast import month_forecast
from kakin.web.dashboard import Context, Dashboard


def overview_page(board: Dashboard, ctx: Context) -> Response:
    project = ctx.scope.project
    today = board.ledger.now().astimezone(ctx.zone).date()
    month = board.reports.spend(ctx.org.id, by="model", project=project)
    day = board.reports.spend(
        ctx.org.id, by="unit", start=today, end=today + timedelta(days=1), project=project
    )
    forecast = month_forecast(board.reports, ctx.org.id, project=project)
    live = board.holds.live_holds(ctx.org.id) if board.holds is not None else NO_LIVE_HOLDS
    budgets = [
        live.on_budget(status)
        for status in board.ledger.budget_statuses(ctx.org.id)
        if ctx.scope.sees(status.budget.scope, status.budget.scope_ref)
    ]
    # The organisation's credit and postpaid amount are the admin's only.
    balance = live.on_balance(board.ledger.balance(ctx.org.id)) if ctx.scope.admin else None
    return board.render(
        ctx,
        "overview.html",
        active="overview",
        month=month,
        day=day,
        today=today,
        forecast=forecast,
        budgets=budgets,
        balance=balance,
    )

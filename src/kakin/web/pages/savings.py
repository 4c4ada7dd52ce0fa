"""Savings: what cache hits and routing saved, in money, by model."""

from __future__ import annotations

from starlette.responses import Response

from kakin.web.dashboard import Context, Dashboard
from kakin.web.tables import Column, report_table


def savings_page(board: Dashboard, ctx: Context) -> Response:
    start, end = ctx.period
    report = board.reports.spend(ctx.org.id, by="model", start=start, end=end, **board.filters(ctx))
    words = ctx.words
    columns = [
        Column("model", words["model"]),
        Column("requests", words["requests_col"], "int"),
        Column("cache_hits", words["cache_hits"], "int"),
        Column("cache_saved", words["cache_saved"], "money"),
        Column("routed", words["routed"], "int"),
        Column("routing_saved", words["routing_saved"], "money"),
        Column("saved", words["saved"], "money"),
        Column("cost", words["cost"], "money"),
    ]
    rows = [
        {
            "model": line.label,
            "requests": line.spend.requests,
            "cache_hits": line.spend.cache_hits,
            "cache_saved": line.spend.cache_saved,
            "routed": line.spend.routed_requests,
            "routing_saved": line.spend.routing_saved,
            "saved": line.spend.saved,
            "cost": line.spend.cost,
        }
        for line in report.lines
    ]
    table = report_table(report, "savings", columns, rows)
    exported = board.export(ctx, table)
    if exported is not None:
        return exported
    return board.render(
        ctx, "savings.html", active="savings", report=report, table=table, **board.filter_choices(ctx)
    )

"""Breakdowns: spend by project, key, model or unit, in a sortable table."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.responses import Response

from kakin.errors import InvalidInput
from kakin.reports import Spend
from kakin.web.dashboard import Context, Dashboard, link
from kakin.web.tables import Column, report_table

GROUPINGS = ("project", "key", "model", "unit")


def breakdown_page(board: Dashboard, ctx: Context) -> Response:
    q = ctx.request.query_params
    by = q.get("by", "model")
    if by not in GROUPINGS:
        raise InvalidInput(f"breakdowns are by {', '.join(GROUPINGS)}, not {by!r}")
    start, end = ctx.period
    report = board.reports.spend(ctx.org.id, by=by, start=start, end=end, **board.filters(ctx))
    words = ctx.words
    if by == "unit":
        columns = [
            Column("unit", words["unit"]),
            Column("quantity", words["quantity"], "decimal"),
            Column("measure", words["measure"]),
            Column("cost", words["cost"], "money"),
            Column("share", words["share"], "percent"),
        ]
        total = report.total.cost
        rows = [
            {
                "unit": u.unit,
                "quantity": u.quantity,
                "measure": u.measure,
                "cost": u.cost,
                "share": (u.cost / total * 100) if total else Decimal(0),
            }
            for u in report.units
        ]
    else:
        heading = {"project": words["project"], "key": words["key_col"], "model": words["model"]}[by]
        columns = [Column("name", heading), *_spend_columns(words)]
        rows = [{"name": line.label, **_spend_row(line.spend)} for line in report.lines]
    table = report_table(report, by, columns, rows)
    sort, descending = q.get("sort"), q.get("dir", "desc") != "asc"
    table.sort(sort, descending)
    exported = board.export(ctx, table)
    if exported is not None:
        return exported

    def sorter(column: str) -> str:
        """A heading's link: sorts by it, or turns its order round when it already sorts."""
        again = sort == column and q.get("dir") != "asc"
        return link(ctx, "/breakdown", **{**dict(q), "sort": column, "dir": "asc" if again else "desc"})

    return board.render(
        ctx,
        "breakdown.html",
        active="breakdown",
        report=report,
        table=table,
        by=by,
        groupings=GROUPINGS,
        sort=sort,
        descending=descending,
        sorter=sorter,
        **board.filter_choices(ctx),
    )


def _spend_columns(words: dict[str, str]) -> list[Column]:
    return [
        Column("requests", words["requests_col"], "int"),
        Column("input_tokens", words["input_tokens"], "int"),
        Column("cached_tokens", words["cached_tokens"], "int"),
        Column("output_tokens", words["output_tokens"], "int"),
        Column("reasoning_tokens", words["reasoning_tokens"], "int"),
        Column("cost", words["cost"], "money"),
        Column("saved", words["saved"], "money"),
    ]


def _spend_row(spend: Spend) -> dict[str, Any]:
    return {
        "requests": spend.requests,
        "input_tokens": spend.input_tokens,
        "cached_tokens": spend.cached_tokens,
        "output_tokens": spend.output_tokens,
        "reasoning_tokens": spend.reasoning_tokens,
        "cost": spend.cost,
        "saved": spend.saved,
    }

"""What if: the period's usage repriced on other models, beside what it cost."""

from __future__ import annotations

from starlette.responses import Response

from kakin.web.dashboard import Context, Dashboard
from kakin.web.tables import Column, Table


def whatif_page(board: Dashboard, ctx: Context) -> Response:
    q = ctx.request.query_params
    wanted = [m.strip() for m in q.get("models", "").split(",") if m.strip()]
    result = None
    table = None
    if wanted:
        start, end = ctx.period
        result = board.reports.whatif(
            ctx.org.id,
            wanted,
            start=start,
            end=end,
            project=ctx.scope.project,
            key=q.get("key") or None,
        )
        words = ctx.words
        columns = [
            Column("model", words["model"]),
            Column("requests", words["requests_col"], "int"),
            Column("input_tokens", words["input_tokens"], "int"),
            Column("output_tokens", words["output_tokens"], "int"),
            Column("cost", words["charged"], "money"),
            *[Column(f"on:{m}", m, "money") for m in result.targets],
        ]
        rows = [
            {
                "model": line.model,
                "requests": line.requests,
                "input_tokens": line.input_tokens,
                "output_tokens": line.output_tokens,
                "cost": line.cost,
                **{f"on:{m}": amount for m, amount in line.on.items()},
            }
            for line in result.lines
        ]
        rows.append(
            {
                "model": words["total"],
                "cost": result.cost,
                **{f"on:{m}": v for m, v in result.totals.items()},
            }
        )
        table = Table(
            columns, rows, result.timezone, "whatif", (result.start.isoformat(), result.end.isoformat())
        )
        exported = board.export(ctx, table)
        if exported is not None:
            return exported
    return board.render(
        ctx, "whatif.html", active="whatif", result=result, table=table, models=", ".join(wanted)
    )

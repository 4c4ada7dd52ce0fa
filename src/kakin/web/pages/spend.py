"""Spend over time: by day or hour, stacked by model, as a chart and a table of the same numbers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from starlette.responses import Response

from kakin.errors import InvalidInput
from kakin.money import FxRate
from kakin.reports import Spend, SpendReport
from kakin.web.dashboard import Context, Dashboard
from kakin.web.tables import Column, report_table

MEASURES = ("cost", "tokens", "requests")
CHART_MODELS = 6  # models drawn one by one; the rest are stacked as "other"


def spend_page(board: Dashboard, ctx: Context) -> Response:
    q = ctx.request.query_params
    by = q.get("by", "day")
    if by not in ("day", "hour"):
        raise InvalidInput(f"spend over time is by day or hour, not {by!r}")
    measure = q.get("measure", "cost")
    if measure not in MEASURES:
        raise InvalidInput(f"the chart shows {', '.join(MEASURES)}, not {measure!r}")
    start, end = ctx.period
    if by == "hour" and start is None and end is None:
        today = board.ledger.now().astimezone(ctx.zone).date()
        start, end = today.isoformat(), (today + timedelta(days=1)).isoformat()
    filters = board.filters(ctx)
    total = board.reports.spend(ctx.org.id, by=by, start=start, end=end, **filters)
    models = board.reports.spend(ctx.org.id, by="model", start=start, end=end, **filters).lines
    drawn = [line.group for line in models[:CHART_MODELS]]
    per_model = board.reports.spend_by_model(
        ctx.org.id, drawn, by=by, start=start, end=end, project=filters.get("project"), key=filters.get("key")
    )
    kind = "money" if measure == "cost" else "int"
    others = len(models) > len(drawn)
    words = ctx.words
    columns = [Column("bucket", words[by])]
    columns += [Column(f"model:{name}", name, kind) for name in drawn]
    if others:
        columns.append(Column("other", words["other"], kind))
    columns.append(Column("total", words["total"], kind))
    spent_in = {line.group: line.spend for line in total.lines}
    buckets = _buckets(total, by)
    rows = []
    for group, _ in buckets:
        row: dict[str, Any] = {"bucket": group}
        shown: Any = 0
        for name in drawn:
            spent = per_model[name].get(group)
            value = _measure(spent, measure) if spent is not None else _zero(measure)
            row[f"model:{name}"] = value
            shown += value
        whole = spent_in.get(group)
        row["total"] = _measure(whole, measure) if whole is not None else _zero(measure)
        if others:
            row["other"] = row["total"] - shown
        rows.append(row)
    table = report_table(total, "spend", columns, rows)
    exported = board.export(ctx, table)
    if exported is not None:
        return exported
    chart = {
        "x": [int(start.timestamp()) for _, start in buckets],
        "series": [
            {"label": c.label, "values": [_plot(row[c.key], kind, ctx.fx) for row in rows]}
            for c in columns[1:-1]
        ],
        "timezone": total.timezone,
        "by": by,
        "unit": ctx.fx.currency if kind == "money" else words[f"measure_{measure}"],
    }
    return board.render(
        ctx,
        "spend.html",
        active="spend",
        report=total,
        table=table,
        by=by,
        measure=measure,
        measures=MEASURES,
        chart=json.dumps(chart),
        **board.filter_choices(ctx),
    )


def _buckets(report: SpendReport, by: str) -> list[tuple[str, datetime]]:
    """Every local day or hour of the report's range, spent in or not (as the report names
    them), so a chart and its table show the quiet days too."""
    zone = ZoneInfo(report.timezone)
    found: list[tuple[str, datetime]] = []
    if by == "day":
        day = report.start.date()
        while (start := datetime.combine(day, time(0), zone)) < report.end:
            found.append((day.isoformat(), start))
            day += timedelta(days=1)
    else:
        at = report.start.astimezone(UTC)
        while at < report.end:
            local = at.astimezone(zone)
            found.append((local.isoformat(timespec="minutes"), local))
            at += timedelta(hours=1)
    return found


def _measure(spend: Spend, measure: str) -> Decimal | int:
    value: Decimal | int = getattr(spend, measure)  # one of MEASURES: Spend's cost, tokens, requests
    return value


def _zero(measure: str) -> Decimal | int:
    return Decimal(0) if measure == "cost" else 0


def _plot(value: Any, kind: str, fx: FxRate) -> float:
    """A chart's point: floats are fine for drawing; the table beside it has the exact value."""
    return float(fx.convert(value)) if kind == "money" else float(value)

"""The request log (newest first, keyset-paginated) and one request's itemised cost."""

from __future__ import annotations

from starlette.responses import Response

from kakin.errors import InvalidInput, NotFound
from kakin.web.dashboard import Context, Dashboard, link
from kakin.web.tables import Column, Table

PAGE_SIZE = 50


def requests_page(board: Dashboard, ctx: Context) -> Response:
    q = ctx.request.query_params
    start, end = ctx.period
    page = board.reports.requests(
        ctx.org.id,
        start=start,
        end=end,
        limit=_limit(q.get("limit")),
        after=q.get("after") or None,
        **board.filters(ctx),
    )
    words = ctx.words
    projects = {p.id: p.name for p in board.ledger.list_projects(ctx.org.id)}
    keys = board.key_labels(line.key_id for line in page.lines if line.key_id)
    columns = [
        # What a narrow screen shows without scrolling comes first.
        Column("started_at", words["when"]),
        Column("request", words["request"]),
        Column("model", words["model"]),
        Column("cost", words["cost"], "money"),
        Column("input_tokens", words["input_tokens"], "int"),
        Column("cached_tokens", words["cached_tokens"], "int"),
        Column("output_tokens", words["output_tokens"], "int"),
        Column("project", words["project"]),
        Column("key", words["key_col"]),
        Column("cache_hit", words["cache_hit"]),
        Column("routed_from", words["routed_from"]),
    ]
    rows = [
        {
            "started_at": line.started_at.isoformat(timespec="seconds"),
            "request": line.request_id or line.reservation_id,
            "project": projects.get(line.project_id, line.project_id),
            "key": keys.get(line.key_id, line.key_id) if line.key_id else None,
            "model": line.model,
            "input_tokens": line.input_tokens,
            "cached_tokens": line.cached_tokens,
            "output_tokens": line.output_tokens,
            "cost": line.cost,
            "cache_hit": words["yes"] if line.cache_hit else words["no"],
            "routed_from": line.routed_from,
        }
        for line in page.lines
    ]
    table = Table(columns, rows, page.timezone, "requests")
    table.links = [link(ctx, f"/requests/{line.reservation_id}") for line in page.lines]
    exported = board.export(ctx, table)
    if exported is not None:
        return exported
    following = {k: v for k, v in q.items() if k != "partial"} | {"after": page.next}
    more = link(ctx, "/requests", **following) if page.next else None  # the next page, whole
    rows_only = link(ctx, "/requests", **following, partial="1") if page.next else None
    template = "request_rows.html" if q.get("partial") else "requests.html"
    return board.render(
        ctx,
        template,
        active="requests",
        table=table,
        more=more,
        more_rows=rows_only,
        **board.filter_choices(ctx),
    )


def request_detail_page(board: Dashboard, ctx: Context) -> Response:
    ref = ctx.request.path_params["ref"]
    detail = board.reports.request(ref, org=ctx.org.id)
    if not ctx.scope.sees_project(detail.project_id):
        raise NotFound(f"no request with id {ref!r}")
    partial = ctx.request.headers.get("hx-request") == "true"  # htmx opens it beside the log
    return board.render(
        ctx, "request_detail.html" if partial else "request.html", active="requests", detail=detail
    )


def _limit(text: str | None) -> int:
    if text is None:
        return PAGE_SIZE
    if not text.isdigit():
        raise InvalidInput(f"limit is a number of requests, not {text!r}")
    return int(text)

"""Spend report commands: ``kakin report``, ``kakin whatif`` and ``kakin usage show|list``.

The numbers come from kakin.reports (the same queries the admin API and the pages use); this
module only turns them into tables, JSON and CSV. Every report states the organisation's
timezone, which its days and hours are in.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kakin.cli.ledger_cmds import DbOption, _ledger
from kakin.cli.output import (
    Column,
    CurrencyOption,
    FormatOption,
    OutputFormat,
    Report,
    emit,
    fail,
    resolve_currency,
)

if TYPE_CHECKING:
    from kakin.ledger import Ledger
    from kakin.reports import RequestDetail, RequestPage, SpendReport, WhatIf

usage_app = typer.Typer(help="Metered requests: one request's itemised cost, the request log.")

ByOption = Annotated[
    str,
    typer.Option("--by", help="day, hour, model, project, key or unit (days and hours are the org's own)"),
]
FromOption = Annotated[
    str | None,
    typer.Option(
        "--from", help="first day (YYYY-MM-DD) or instant, in the org's timezone; default: 1st of this month"
    ),
]
ToOption = Annotated[
    str | None,
    typer.Option(
        "--to", help="day (YYYY-MM-DD) or instant after the last, in the org's timezone; default: tomorrow"
    ),
]
ProjectOption = Annotated[str | None, typer.Option("--project", help="only this project (id or name)")]
KeyOption = Annotated[str | None, typer.Option("--key", help="only this key (id or prefix)")]
ModelOption = Annotated[str | None, typer.Option("--model", help="only this model")]


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    app.command("whatif")(whatif)
    usage_app.info.no_args_is_help = True
    app.add_typer(usage_app, name="usage")


def _org(ledger: Ledger, org: str | None) -> str:
    """The organisation named, or the only one there is."""
    if org is not None:
        return org
    orgs = ledger.list_orgs()
    if len(orgs) == 1:
        return orgs[0].id
    names = ", ".join(o.name for o in orgs) or "none yet"
    fail(f"name the organisation to report on (organisations: {names})")


def report(
    org: Annotated[str | None, typer.Argument(help="organisation id or name (default: the only one)")] = None,
    by: ByOption = "day",
    start: FromOption = None,
    end: ToOption = None,
    project: ProjectOption = None,
    key: KeyOption = None,
    model: ModelOption = None,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
    database_url: DbOption = None,
) -> None:
    """Spend by day, hour, model, project, key or unit over a period, in the org's timezone."""
    from kakin.reports import GROUPINGS, Reports

    if by not in GROUPINGS:
        fail(f"--by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    fx = resolve_currency(currency)
    with _ledger(database_url) as ledger:
        result = Reports(ledger).spend(
            _org(ledger, org),
            by=by,
            start=start,
            end=end,
            project=project,
            key=key,
            model=model,  # type: ignore[arg-type]
        )
    emit(spend_report(result), fmt, fx)


# Every export states the zone its days and hours are in (CSV has no title to say it).
_ZONE = Column("timezone", "zone", table=False)
_SPEND_COLUMNS = [
    Column("requests", "requests", "int"),
    Column("input_tokens", "input tokens", "int"),
    Column("output_tokens", "output tokens", "int"),
    Column("cost", "cost", "money"),
    Column("saved", "saved", "money"),
    Column("uncached_input_tokens", "uncached input", "int", table=False),
    Column("cached_tokens", "cached input", "int", table=False),
    Column("cache_write_tokens", "cache write", "int", table=False),
    Column("reasoning_tokens", "reasoning", "int", table=False),
    Column("images", "images", "int", table=False),
    Column("audio_seconds", "audio seconds", "decimal", table=False),
    Column("cache_hits", "cache hits", "int", table=False),
    Column("routed_requests", "routed", "int", table=False),
    Column("cache_saved", "cache saved", "money", table=False),
    Column("routing_saved", "routing saved", "money", table=False),
]


def _spend_row(spend: Any) -> dict[str, Any]:
    return {
        "requests": spend.requests,
        "input_tokens": spend.input_tokens + spend.cached_tokens + spend.cache_write_tokens,
        "output_tokens": spend.output_tokens + spend.reasoning_tokens,
        "cost": spend.cost,
        "saved": spend.saved,
        "uncached_input_tokens": spend.input_tokens,
        "cached_tokens": spend.cached_tokens,
        "cache_write_tokens": spend.cache_write_tokens,
        "reasoning_tokens": spend.reasoning_tokens,
        "images": spend.images,
        "audio_seconds": spend.audio_seconds,
        "cache_hits": spend.cache_hits,
        "routed_requests": spend.routed_requests,
        "cache_saved": spend.cache_saved,
        "routing_saved": spend.routing_saved,
    }


def spend_report(result: SpendReport) -> Report:
    """The table of a spend report (its period and zone in the title and the JSON)."""
    period = _period(result.start, result.end)
    filters = [f"{name} {value}" for name, value in _filters(result).items() if value]
    title = f"Spend of {result.org_name} by {result.by}, {period} ({result.timezone})"
    extra: dict[str, Any] = {
        "org_id": result.org_id,
        "timezone": result.timezone,
        "from": result.start.isoformat(),
        "to": result.end.isoformat(),
        "by": result.by,
        "filters": _filters(result),
    }
    notes = [f"{'days' if result.by != 'hour' else 'hours'} in {result.timezone}"] + (
        [f"only {', '.join(filters)}"] if filters else []
    )
    if result.by == "unit":
        total_cost = result.total.cost
        return Report(
            title,
            [
                Column("unit", "unit"),
                Column("quantity", "quantity", "decimal"),
                Column("measure", "counted in"),
                Column("cost", "cost", "money"),
                Column("share", "share", "percent"),
                _ZONE,
            ],
            rows=[
                {
                    "unit": u.unit,
                    "quantity": u.quantity,
                    "measure": u.measure or "—",
                    "cost": u.cost,
                    "share": (u.cost / total_cost) if total_cost else None,
                    "timezone": result.timezone,
                }
                for u in result.units
            ],
            total={"unit": "total", "cost": total_cost, "timezone": result.timezone},
            notes=notes,
            extra=extra,
        )
    group = Column("group", {"day": "day", "hour": "hour"}.get(result.by, result.by))
    columns = [group]
    if result.by in ("project", "key"):
        columns.append(Column("name", "name"))
    rows = []
    for line in result.lines:
        row = {"group": line.group, "name": line.label, **_spend_row(line.spend), "timezone": result.timezone}
        if result.by in ("project", "key"):
            row["group"] = line.group or "—"
        rows.append(row)
    total = {"group": "total", **_spend_row(result.total), "timezone": result.timezone}
    columns = [*columns, *_SPEND_COLUMNS, _ZONE]
    return Report(title, columns, rows=rows, total=total, notes=notes, extra=extra)


def _period(start: datetime, end: datetime) -> str:
    """The range as a reader says it: whole days by their dates, the last one included."""
    if (start.time(), end.time()) == (time(0), time(0)):
        last = end.date() - timedelta(days=1)
        return start.date().isoformat() if last == start.date() else f"{start.date()} to {last}"
    return f"{start.isoformat(timespec='minutes')} to {end.isoformat(timespec='minutes')} (end excluded)"


def _filters(result: SpendReport) -> dict[str, str | None]:
    return {"project": result.project_id, "key": result.key_id, "model": result.model}


# whatif ------------------------------------------------------------------------------------


def whatif(
    org: Annotated[str | None, typer.Argument(help="organisation id or name (default: the only one)")] = None,
    models: Annotated[
        list[str] | None, typer.Option("--model", help="a model to reprice on (repeat for several)")
    ] = None,
    start: FromOption = None,
    end: ToOption = None,
    project: ProjectOption = None,
    key: KeyOption = None,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
    database_url: DbOption = None,
) -> None:
    """What the period's usage would have cost on other models, beside what it cost."""
    from kakin.cli.output import load_catalog
    from kakin.reports import Reports

    if not models:
        fail("name a model to reprice on with --model (repeat it to compare several)")
    fx = resolve_currency(currency)
    catalog = load_catalog()
    with _ledger(database_url) as ledger:
        result = Reports(ledger).whatif(
            _org(ledger, org), models, start=start, end=end, project=project, key=key, catalog=catalog
        )
    emit(whatif_report(result), fmt, fx)


def whatif_report(result: WhatIf) -> Report:
    targets = {f"on_{n}": model for n, model in enumerate(result.targets)}
    notes = [
        f"days in {result.timezone}; prices in force at {result.priced_at.isoformat(timespec='seconds')}",
        "each request priced as its model's average request of the period (which sets the context tier)",
    ]
    if result.unpriced:
        notes.append(f"not repriced (kept out of the comparison): {', '.join(result.unpriced)}")
    return Report(
        f"What if: {result.org_name}, {_period(result.start, result.end)} ({result.timezone})",
        [
            Column("model", "ran on"),
            Column("requests", "requests", "int"),
            Column("input_tokens", "input tokens", "int"),
            Column("output_tokens", "output tokens", "int"),
            Column("cost", "cost", "money"),
            *(Column(key, f"on {model}", "money") for key, model in targets.items()),
            _ZONE,
        ],
        rows=[
            {
                "model": line.model,
                "requests": line.requests,
                "input_tokens": line.input_tokens,
                "output_tokens": line.output_tokens,
                "cost": line.cost,
                **{key: line.on[model] for key, model in targets.items()},
                "timezone": result.timezone,
            }
            for line in result.lines
        ],
        total={
            "model": "total",
            "requests": sum(line.requests for line in result.lines),
            "cost": result.cost,
            **{key: result.totals[model] for key, model in targets.items()},
            "timezone": result.timezone,
        },
        notes=notes,
        extra={
            "timezone": result.timezone,
            "from": result.start.isoformat(),
            "to": result.end.isoformat(),
            "priced_at": result.priced_at.isoformat(),
            "targets": targets,
        },
    )


# usage -------------------------------------------------------------------------------------


@usage_app.command("show")
def usage_show(
    request_id: Annotated[str, typer.Argument(help="request id (x-kakin-request-id) or reservation id")],
    org: Annotated[
        str | None, typer.Option("--org", help="the organisation, when the id is ambiguous")
    ] = None,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
    database_url: DbOption = None,
) -> None:
    """One request: model, tokens by unit, its itemised cost (price source, tier, date)."""
    from kakin.reports import Reports

    fx = resolve_currency(currency)
    with _ledger(database_url) as ledger:
        detail = Reports(ledger).request(request_id, org=org)
    emit(request_reports(detail), fmt, fx)


def request_reports(detail: RequestDetail) -> list[Report]:
    """A request's facts, its units and its cost lines."""
    facts = [
        ("request", detail.request_id or "—"),
        ("reservation", detail.reservation_id),
        ("organisation", detail.org_id),
        ("project", f"{detail.project_name} ({detail.project_id})"),
        ("key", f"{detail.key_label} ({detail.key_id})" if detail.key_id else "no key"),
        ("model", f"{detail.model} ({detail.provider})"),
        ("started", detail.started_at.isoformat(timespec="seconds")),
        ("settled", detail.settled_at.isoformat(timespec="seconds")),
        ("latency", f"{detail.latency.total_seconds() * 1000:,.0f} ms" if detail.latency else "not recorded"),
        (
            "tokens",
            f"{detail.input_tokens:,} in ({detail.cached_tokens:,} cached), {detail.output_tokens:,} out",
        ),
        ("cache", "hit" if detail.cache_hit else "miss"),
        ("routed from", detail.routed_from or "—"),
    ]
    summary = Report(
        f"Request {detail.request_id or detail.reservation_id} ({detail.timezone})",
        [Column("field", "field"), Column("value", "value", wrap=True)],
        rows=[{"field": k, "value": v} for k, v in facts],
        extra={
            "timezone": detail.timezone,
            "cost": detail.cost,
            "cache_saved": detail.cache_saved,
            "routing_saved": detail.routing_saved,
        },
        extra_money=frozenset({"cost", "cache_saved", "routing_saved"}),
    )
    units = Report(
        "Units",
        [
            Column("unit", "unit"),
            Column("quantity", "quantity", "decimal"),
            Column("measure", "counted in"),
            Column("cost", "cost", "money"),
        ],
        rows=[
            {"unit": u.unit, "quantity": u.quantity, "measure": u.measure or "—", "cost": u.cost}
            for u in detail.units
        ],
        total={"unit": "total", "cost": detail.cost},
    )
    for what, amount in (
        ("saved by the cache", detail.cache_saved),
        ("saved by routing", detail.routing_saved),
    ):
        if amount:
            units.rows.append({"unit": what, "quantity": None, "measure": "—", "cost": amount})
    items = Report(
        "Itemised cost",
        [
            Column("component", "component"),
            Column("quantity", "quantity", "decimal"),
            Column("unit", "unit"),
            Column("unit_price", "unit price", "rate"),
            Column("amount", "amount", "money"),
            Column("tier", "tier"),
            Column("effective_from", "price from"),
            Column("source", "source", wrap=True),
        ],
        rows=[
            {
                "component": i.component,
                "quantity": i.quantity,
                "unit": i.unit,
                "unit_price": i.unit_price,
                "amount": i.amount,
                "tier": i.tier or "—",
                "effective_from": i.effective_from or "—",
                "source": i.source,
            }
            for i in detail.items
        ],
        total={"component": "charged", "amount": detail.cost},
        notes=list(detail.notes),
    )
    return [summary, units, items]


@usage_app.command("list")
def usage_list(
    org: Annotated[str | None, typer.Argument(help="organisation id or name (default: the only one)")] = None,
    start: FromOption = None,
    end: ToOption = None,
    project: ProjectOption = None,
    key: KeyOption = None,
    model: ModelOption = None,
    limit: Annotated[int, typer.Option("--limit", help="requests per page (1–500)")] = 50,
    after: Annotated[
        str | None, typer.Option("--after", help="continue after this page (its `next`)")
    ] = None,
    fmt: FormatOption = OutputFormat.table,
    currency: CurrencyOption = None,
    database_url: DbOption = None,
) -> None:
    """The request log, newest first, one page at a time."""
    from kakin.reports import Reports

    fx = resolve_currency(currency)
    with _ledger(database_url) as ledger:
        page = Reports(ledger).requests(
            _org(ledger, org),
            start=start,
            end=end,
            project=project,
            key=key,
            model=model,
            limit=limit,
            after=after,
        )
    emit(request_log(page), fmt, fx)


def request_log(page: RequestPage) -> Report:
    notes = [f"times in {page.timezone}"]
    if page.next:
        notes.append(f"more: --after {page.next}")
    return Report(
        f"Requests ({page.timezone})",
        [
            Column("started_at", "started"),
            Column("request_id", "request"),
            Column("model", "model"),
            Column("input_tokens", "input", "int"),
            Column("cached_tokens", "cached", "int"),
            Column("output_tokens", "output", "int"),
            Column("cost", "cost", "money"),
            Column("cache", "cache"),
            Column("project_id", "project", table=False),
            Column("key_id", "key", table=False),
            Column("reservation_id", "reservation", table=False),
            _ZONE,
        ],
        rows=[
            {
                "started_at": line.started_at.isoformat(timespec="seconds"),
                "request_id": line.request_id or line.reservation_id,
                "model": line.model + (f" (from {line.routed_from})" if line.routed_from else ""),
                "input_tokens": line.input_tokens,
                "cached_tokens": line.cached_tokens,
                "output_tokens": line.output_tokens,
                "cost": line.cost,
                "cache": "hit" if line.cache_hit else "—",
                "project_id": line.project_id,
                "key_id": line.key_id,
                "reservation_id": line.reservation_id,
                "timezone": page.timezone,
            }
            for line in page.lines
        ],
        notes=notes,
        extra={"timezone": page.timezone, "next": page.next},
    )

"""The dashboard's ASGI application: ``create_web_app(ledger, admin_key=…)``, mounted at
``/ui`` by :mod:`kakin.app`.

Every number comes from :mod:`kakin.reports` (spend, requests, what-if, forecast) and from
the ledger's balance, grant and budget queries; this module only chooses what to ask for the
signed-in viewer and renders it. A project key's viewer is held to its project in every
query, so no page, table or export can show another project's or organisation's numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from kakin.errors import InvalidInput, KakinError, NotFound
from kakin.ledger import Ledger, Org
from kakin.ledger.views import NO_LIVE_HOLDS, LiveHolds
from kakin.money import FxRate, MoneyError, fx_rate
from kakin.reports import Reports, SpendReport
from kakin.reports.forecast import month_forecast
from kakin.reports.queries import key_label
from kakin.web import i18n
from kakin.web.session import COOKIE, LIFETIME_SECONDS, SignIn, Viewer
from kakin.web.tables import Column, Table, cell, to_csv, to_json

HERE = Path(__file__).parent
CURRENCIES = ("USD", "JPY")
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
SIGNIN_BODY_LIMIT = 4096
SPENDING = ("project", "key", "model", "unit")
MEASURES = ("cost", "tokens", "requests")
CHART_MODELS = 6  # models drawn one by one; the rest are stacked as "other"


class HoldsProvider(Protocol):
    def live_holds(self, org_id: str) -> LiveHolds:
        """Holds of requests in flight that the ledger does not count (a gateway in local
        accounting keeps them in memory)."""
        ...


@dataclass(frozen=True, slots=True)
class Context:
    """What every page of a request knows: who reads, which organisation, in which words."""

    request: Request
    viewer: Viewer
    org: Org
    orgs: list[Org]
    fx: FxRate
    lang: str

    @property
    def project(self) -> str | None:
        """The project every query is held to (a project key's), or None for the admin."""
        return self.viewer.project_id

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.org.timezone)


class Dashboard:
    def __init__(
        self,
        ledger: Ledger,
        *,
        admin_key: str,
        alerts: Any = None,
        rates: dict[str, Decimal] | None = None,
        holds: HoldsProvider | None = None,
    ) -> None:
        self.ledger = ledger
        self.reports = Reports(ledger)
        self.alerts = alerts
        self.holds = holds
        self.rates = rates or {}
        self.signin = SignIn(ledger, admin_key)
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )

    # Plumbing -----------------------------------------------------------------------------

    def page(self, handler: Callable[[Context], Response]) -> Callable[[Request], Response]:
        """A page handler behind the session: signed-out readers go to the sign-in form."""

        def endpoint(request: Request) -> Response:
            viewer = self.signin.viewer(request.cookies.get(COOKIE))
            if viewer is None:
                return _redirect(request, "/signin")
            try:
                ctx = self._context(request, viewer)
                return handler(ctx)
            except NotFound as exc:
                return self._problem(request, viewer, 404, str(exc))
            except (InvalidInput, MoneyError) as exc:
                return self._problem(request, viewer, 400, str(exc))

        return endpoint

    def _context(self, request: Request, viewer: Viewer) -> Context:
        if viewer.admin:
            orgs = self.ledger.list_orgs()
            wanted = request.query_params.get("org")
            if not orgs:
                raise NotFound("no organisation yet: create one with `kakin org create`")
            org = self.ledger.get_org(wanted) if wanted else orgs[0]
        else:
            assert viewer.org_id is not None
            org = self.ledger.get_org(viewer.org_id)
            orgs = [org]
        currency = request.cookies.get("kakin_currency", "USD")
        fx = fx_rate(currency if currency in CURRENCIES else "USD", self.rates)
        lang = i18n.choose(request.cookies.get("kakin_lang"), request.headers.get("accept-language"))
        return Context(request, viewer, org, orgs, fx, lang)

    def render(self, ctx: Context, template: str, status: int = 200, **values: Any) -> Response:
        words = i18n.STRINGS[ctx.lang]
        params = dict(ctx.request.query_params)
        html = self.templates.get_template(template).render(
            base=_base(ctx.request),
            t=words,
            ctx=ctx,
            viewer=ctx.viewer,
            org=ctx.org,
            orgs=ctx.orgs,
            fx=ctx.fx,
            lang=ctx.lang,
            currencies=CURRENCIES,
            languages=i18n.LANGUAGES,
            here=ctx.request.url.path + (f"?{ctx.request.url.query}" if ctx.request.url.query else ""),
            params=params,
            cell=lambda value, kind: cell(value, kind, ctx.fx),
            v=lambda text: i18n.value(ctx.lang, text),
            link=lambda path, **extra: _link(ctx, path, **extra),
            vary=lambda path, changes: _link(ctx, path, **{**params, **changes}),
            export=lambda fmt: _link(
                ctx, ctx.request.url.path[len(_base(ctx.request)) :], **{**params, "format": fmt}
            ),
            project_name=self._project_name(ctx),
            **values,
        )
        return _html(html, status)

    def _problem(self, request: Request, viewer: Viewer, status: int, message: str) -> Response:
        try:
            ctx = self._context(request, viewer)
        except KakinError:  # the organisation itself is what was not found
            lang = i18n.choose(request.cookies.get("kakin_lang"), request.headers.get("accept-language"))
            words = i18n.STRINGS[lang]
            html = self.templates.get_template("problem.html").render(
                base=_base(request), t=words, message=message, lang=lang
            )
            return _html(html, status)
        return self.render(ctx, "error.html", status, message=message, active="")

    def _project_name(self, ctx: Context) -> str | None:
        return self.ledger.get_project(ctx.project).name if ctx.project else None

    def _export(self, ctx: Context, table: Table) -> Response | None:
        """The table as CSV or JSON when ``format`` asks for it."""
        fmt = ctx.request.query_params.get("format")
        if fmt is None:
            return None
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", f"kakin-{ctx.org.name}-{table.title or 'table'}")
        if fmt == "csv":
            body: bytes | str = to_csv(table, ctx.fx)
            media = "text/csv; charset=utf-8"
        elif fmt == "json":
            body = to_json(table, ctx.fx)
            media = "application/json"
        else:
            raise InvalidInput(f"exports are csv or json, not {fmt!r}")
        headers = {"content-disposition": f'attachment; filename="{stem}.{fmt}"', **SECURITY_HEADERS}
        return Response(body, media_type=media, headers={**headers, "cache-control": "no-store"})

    # Sign-in ------------------------------------------------------------------------------

    def signin_form(self, request: Request) -> Response:
        return self._signin_page(request, refused=False)

    async def signin_submit(self, request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > SIGNIN_BODY_LIMIT:  # a key is short; nothing longer is read
                return self._signin_page(request, refused=True, status=413)
        key = (parse_qs(body.decode("utf-8", "replace")).get("key") or [""])[0]
        viewer = await run_in_threadpool(self.signin.check_key, key)
        if viewer is None:
            return self._signin_page(request, refused=True)
        response = _redirect(request, "/")
        response.set_cookie(
            COOKIE,
            self.signin.cookie_for(viewer),
            max_age=LIFETIME_SECONDS,
            path=_base(request) or "/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    def signout(self, request: Request) -> Response:
        response = _redirect(request, "/signin")
        response.delete_cookie(COOKIE, path=_base(request) or "/", httponly=True, samesite="strict")
        return response

    def _signin_page(self, request: Request, *, refused: bool, status: int | None = None) -> Response:
        lang = i18n.choose(request.cookies.get("kakin_lang"), request.headers.get("accept-language"))
        html = self.templates.get_template("signin.html").render(
            base=_base(request), t=i18n.STRINGS[lang], refused=refused, lang=lang, languages=i18n.LANGUAGES
        )
        return _html(html, status or (401 if refused else 200))

    def prefs(self, request: Request) -> Response:
        """Currency and language toggles: remembered in cookies, then back to the page."""
        target = request.query_params.get("next", "")
        base = _base(request)
        if not target.startswith(base + "/") or "//" in target or "\\" in target:
            target = base + "/"
        response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
        currency = request.query_params.get("currency")
        if currency in CURRENCIES:
            response.set_cookie(
                "kakin_currency", currency, max_age=365 * 86400, path=base or "/", samesite="strict"
            )
        lang = request.query_params.get("lang")
        if lang in i18n.LANGUAGES:
            response.set_cookie("kakin_lang", lang, max_age=365 * 86400, path=base or "/", samesite="strict")
        return response

    # Pages --------------------------------------------------------------------------------

    def overview(self, ctx: Context) -> Response:
        today = self.ledger.now().astimezone(ctx.zone).date()
        month = self.reports.spend(ctx.org.id, by="model", project=ctx.project)
        day = self.reports.spend(
            ctx.org.id, by="unit", start=today, end=today + timedelta(days=1), project=ctx.project
        )
        forecast = month_forecast(self.reports, ctx.org.id, project=ctx.project)
        live = self.holds.live_holds(ctx.org.id) if self.holds is not None else NO_LIVE_HOLDS
        budgets = [
            live.on_budget(b)
            for b in self.ledger.budget_statuses(ctx.org.id)
            if self._sees_budget(ctx, b.budget)
        ]
        balance = live.on_balance(self.ledger.balance(ctx.org.id)) if ctx.viewer.admin else None
        return self.render(
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

    def _sees_budget(self, ctx: Context, budget: Any) -> bool:
        if ctx.viewer.admin:
            return True
        if budget.scope == "project":
            return bool(budget.scope_ref == ctx.project)
        if budget.scope == "key":
            return budget.scope_ref in {k.id for k in self.ledger.list_keys(ctx.org.id, ctx.project)}
        return False

    def spend(self, ctx: Context) -> Response:
        q = ctx.request.query_params
        by = q.get("by", "day")
        if by not in ("day", "hour"):
            raise InvalidInput(f"spend over time is by day or hour, not {by!r}")
        measure = q.get("measure", "cost")
        if measure not in MEASURES:
            raise InvalidInput(f"the chart shows {', '.join(MEASURES)}, not {measure!r}")
        start, end = q.get("from") or None, q.get("to") or None
        if by == "hour" and start is None and end is None:
            today = self.ledger.now().astimezone(ctx.zone).date()
            start, end = today.isoformat(), (today + timedelta(days=1)).isoformat()
        filters = self._filters(ctx)
        total = self.reports.spend(ctx.org.id, by=by, start=start, end=end, **filters)
        models = self.reports.spend(ctx.org.id, by="model", start=start, end=end, **filters).lines
        drawn = [line.group for line in models[:CHART_MODELS]]
        per_model = {
            name: {
                line.group: line.spend
                for line in self.reports.spend(
                    ctx.org.id, by=by, start=start, end=end, **{**filters, "model": name}
                ).lines
            }
            for name in drawn
        }
        kind = "money" if measure == "cost" else "int"
        others = len(models) > len(drawn)
        columns = [Column("bucket", i18n.STRINGS[ctx.lang][by])]
        columns += [Column(f"model:{name}", name, kind) for name in drawn]
        if others:
            columns.append(Column("other", i18n.STRINGS[ctx.lang]["other"], kind))
        columns.append(Column("total", i18n.STRINGS[ctx.lang]["total"], kind))
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
        table = _table(total, "spend", columns, rows)
        exported = self._export(ctx, table)
        if exported is not None:
            return exported
        series = [c for c in columns[1:-1]]
        chart = {
            "x": [int(start.timestamp()) for _, start in buckets],
            "series": [
                {"label": c.label, "values": [_plot(row[c.key], kind, ctx.fx) for row in rows]}
                for c in series
            ],
            "timezone": total.timezone,
            "by": by,
            "unit": ctx.fx.currency if kind == "money" else i18n.STRINGS[ctx.lang][f"measure_{measure}"],
        }
        return self.render(
            ctx,
            "spend.html",
            active="spend",
            report=total,
            table=table,
            by=by,
            measure=measure,
            measures=MEASURES,
            chart=json.dumps(chart),
            **self._filter_choices(ctx),
        )

    def breakdown(self, ctx: Context) -> Response:
        q = ctx.request.query_params
        by = q.get("by", "model")
        if by not in SPENDING:
            raise InvalidInput(f"breakdowns are by {', '.join(SPENDING)}, not {by!r}")
        report = self.reports.spend(
            ctx.org.id, by=by, start=q.get("from") or None, end=q.get("to") or None, **self._filters(ctx)
        )
        words = i18n.STRINGS[ctx.lang]
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
        table = _table(report, f"{by}", columns, rows)
        table.sort(q.get("sort"), q.get("dir", "desc") != "asc")
        exported = self._export(ctx, table)
        if exported is not None:
            return exported
        return self.render(
            ctx,
            "breakdown.html",
            active="breakdown",
            report=report,
            table=table,
            by=by,
            groupings=SPENDING,
            sort=q.get("sort"),
            descending=q.get("dir", "desc") != "asc",
            sorter=lambda column: _link(
                ctx,
                "/breakdown",
                **{
                    **dict(q),
                    "sort": column,
                    "dir": "asc" if q.get("sort") == column and q.get("dir") != "asc" else "desc",
                },
            ),
            **self._filter_choices(ctx),
        )

    def requests(self, ctx: Context) -> Response:
        q = ctx.request.query_params
        page = self.reports.requests(
            ctx.org.id,
            start=q.get("from") or None,
            end=q.get("to") or None,
            limit=_limit(q.get("limit")),
            after=q.get("after") or None,
            **self._filters(ctx),
        )
        words = i18n.STRINGS[ctx.lang]
        projects = {p.id: p.name for p in self.ledger.list_projects(ctx.org.id)}
        keys = {key_id: self._key_label(key_id) for key_id in {line.key_id for line in page.lines} if key_id}
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
        table.links = [_link(ctx, f"/requests/{line.reservation_id}") for line in page.lines]
        exported = self._export(ctx, table)
        if exported is not None:
            return exported
        following = {k: v for k, v in q.items() if k != "partial"} | {"after": page.next}
        more = _link(ctx, "/requests", **following) if page.next else None  # the next page, whole
        rows_only = _link(ctx, "/requests", **following, partial="1") if page.next else None
        template = "request_rows.html" if q.get("partial") else "requests.html"
        return self.render(
            ctx,
            template,
            active="requests",
            table=table,
            more=more,
            more_rows=rows_only,
            **self._filter_choices(ctx),
        )

    def request_detail(self, ctx: Context) -> Response:
        ref = ctx.request.path_params["ref"]
        detail = self.reports.request(ref, org=ctx.org.id)
        if ctx.project is not None and detail.project_id != ctx.project:
            raise NotFound(f"no request with id {ref!r}")
        partial = ctx.request.headers.get("hx-request") == "true"
        return self.render(
            ctx, "request_detail.html" if partial else "request.html", active="requests", detail=detail
        )

    def alerts_page(self, ctx: Context) -> Response:
        fired, deliveries = [], []
        if self.alerts is not None:
            visible = self._visible_alert(ctx)
            fired = [(i, a) for i, a in self.alerts.fired(ctx.org.id, limit=100) if visible(a)]
            ids = {i for i, _ in fired}
            deliveries = [d for d in self.alerts.deliveries(ctx.org.id, limit=100) if d.alert_id in ids]
        names = {p.id: p.name for p in self.ledger.list_projects(ctx.org.id)}
        names |= {k.id: f"{k.name} (kk-{k.prefix}-…)" for k in self.ledger.list_keys(ctx.org.id, ctx.project)}
        return self.render(
            ctx, "alerts.html", active="alerts", fired=fired, deliveries=deliveries, names=names
        )

    def _visible_alert(self, ctx: Context) -> Callable[[Any], bool]:
        if ctx.viewer.admin:
            return lambda alert: True
        keys = {k.id for k in self.ledger.list_keys(ctx.org.id, ctx.project)}
        return lambda alert: (
            (alert.scope == "project" and alert.scope_ref == ctx.project)
            or (alert.scope == "key" and alert.scope_ref in keys)
        )

    def savings(self, ctx: Context) -> Response:
        q = ctx.request.query_params
        report = self.reports.spend(
            ctx.org.id, by="model", start=q.get("from") or None, end=q.get("to") or None, **self._filters(ctx)
        )
        words = i18n.STRINGS[ctx.lang]
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
        table = _table(report, "savings", columns, rows)
        exported = self._export(ctx, table)
        if exported is not None:
            return exported
        return self.render(
            ctx, "savings.html", active="savings", report=report, table=table, **self._filter_choices(ctx)
        )

    def whatif(self, ctx: Context) -> Response:
        q = ctx.request.query_params
        wanted = [m.strip() for m in q.get("models", "").split(",") if m.strip()]
        result = None
        table = None
        if wanted:
            result = self.reports.whatif(
                ctx.org.id,
                wanted,
                start=q.get("from") or None,
                end=q.get("to") or None,
                project=ctx.project,
                key=q.get("key") or None,
            )
            words = i18n.STRINGS[ctx.lang]
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
            exported = self._export(ctx, table)
            if exported is not None:
                return exported
        return self.render(
            ctx, "whatif.html", active="whatif", result=result, table=table, models=", ".join(wanted)
        )

    # Filters ------------------------------------------------------------------------------

    def _filters(self, ctx: Context) -> dict[str, str | None]:
        """The project, key and model a page is narrowed to; a project key's viewer is
        always held to its project, whatever the address asks for."""
        q = ctx.request.query_params
        project = ctx.project or q.get("project") or None
        return {"project": project, "key": q.get("key") or None, "model": q.get("model") or None}

    def _filter_choices(self, ctx: Context) -> dict[str, Any]:
        projects = self.ledger.list_projects(ctx.org.id) if ctx.viewer.admin else []
        chosen = ctx.project or ctx.request.query_params.get("project") or None
        project_id = self.ledger.get_project(chosen, ctx.org.id).id if chosen else None
        # A project's keys to choose from; across a whole organisation (hundreds of keys) the
        # key is typed by its prefix instead.
        keys = self.ledger.list_keys(ctx.org.id, project_id) if project_id else None
        return {"projects": projects, "keys": keys}

    def _key_label(self, key_id: str) -> str:
        key = self.ledger.get_key(key_id)
        return key_label(key.name, key.prefix)


# Helpers --------------------------------------------------------------------------------


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


def _measure(spend: Any, measure: str) -> Any:
    return {"cost": spend.cost, "tokens": spend.tokens, "requests": spend.requests}[measure]


def _zero(measure: str) -> Any:
    return Decimal(0) if measure == "cost" else 0


def _plot(value: Any, kind: str, fx: FxRate) -> float:
    """A chart's point: floats are fine for drawing; the table beside it has the exact value."""
    return float(fx.convert(value)) if kind == "money" else float(value)


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


def _spend_row(spend: Any) -> dict[str, Any]:
    return {
        "requests": spend.requests,
        "input_tokens": spend.input_tokens,
        "cached_tokens": spend.cached_tokens,
        "output_tokens": spend.output_tokens,
        "reasoning_tokens": spend.reasoning_tokens,
        "cost": spend.cost,
        "saved": spend.saved,
    }


def _table(report: SpendReport, title: str, columns: list[Column], rows: list[dict[str, Any]]) -> Table:
    period = (report.start.isoformat(), report.end.isoformat())
    return Table(columns, rows, report.timezone, title, period)


def _limit(text: str | None) -> int:
    if text is None:
        return 50
    if not text.isdigit():
        raise InvalidInput(f"limit is a number of requests, not {text!r}")
    return int(text)


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _link(ctx: Context, path: str, **params: Any) -> str:
    """A dashboard address, keeping the admin's chosen organisation."""
    if ctx.viewer.admin and "org" not in params:
        params["org"] = ctx.org.name
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{_base(ctx.request)}{path}" + (f"?{query}" if query else "")


def _redirect(request: Request, path: str) -> Response:
    return RedirectResponse(_base(request) + path, status_code=303, headers=SECURITY_HEADERS)


def _html(text: str, status: int) -> Response:
    return Response(
        text,
        status,
        media_type="text/html; charset=utf-8",
        headers={**SECURITY_HEADERS, "cache-control": "no-store"},
    )


class _Secured:
    """Adds the security headers to every answer, static files included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [
                    (k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in present
                ]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, with_headers)


def create_web_app(
    ledger: Ledger,
    *,
    admin_key: str,
    alerts: Any = None,
    rates: dict[str, Decimal] | None = None,
    holds: HoldsProvider | None = None,
) -> ASGIApp:
    """The dashboard over ``ledger``. ``alerts``: the alert store (fired alerts and their
    deliveries); ``rates``: configured display rates (kakin.toml's ``[currency.rates]``);
    ``holds``: holds a gateway keeps outside the ledger, counted in the gauges and the
    available credit as the admin API counts them."""
    board = Dashboard(ledger, admin_key=admin_key, alerts=alerts, rates=rates, holds=holds)
    routes = [
        Route("/", board.page(board.overview)),
        Route("/signin", board.signin_form, methods=["GET"]),
        Route("/signin", board.signin_submit, methods=["POST"]),
        Route("/signout", board.signout, methods=["POST"]),
        Route("/prefs", board.prefs),
        Route("/spend", board.page(board.spend)),
        Route("/breakdown", board.page(board.breakdown)),
        Route("/requests", board.page(board.requests)),
        Route("/requests/{ref}", board.page(board.request_detail)),
        Route("/alerts", board.page(board.alerts_page)),
        Route("/savings", board.page(board.savings)),
        Route("/whatif", board.page(board.whatif)),
        Mount("/static", StaticFiles(directory=HERE / "static")),
    ]
    return _Secured(Starlette(routes=routes))

"""What every page shares: who reads and in which organisation, currency and words
(:class:`Context`), drawing a template, problem pages, exports and the filter form.

Every number a page shows comes from :mod:`kakin.reports` and from the ledger's balance,
grant and budget queries; a page chooses what to ask for the viewer and renders it. What the
viewer may see is the context's :class:`~kakin.web.scope.ViewerScope`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import Response

from kakin.alerts.store import AlertStore
from kakin.billing import Billing
from kakin.errors import InvalidInput, KakinError, NotFound
from kakin.ledger import Ledger, Org
from kakin.ledger.views import LiveHolds
from kakin.money import FxRate, MoneyError, fx_rate
from kakin.reports import Reports
from kakin.reports.queries import key_label
from kakin.web import i18n
from kakin.web.preferences import CURRENCIES, currency, language
from kakin.web.responses import SECURITY_HEADERS, base_path, html, redirect
from kakin.web.scope import ViewerScope
from kakin.web.session import COOKIE, SignIn, Viewer
from kakin.web.tables import Table, cell, html_rows, to_csv, to_json


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
    scope: ViewerScope
    org: Org
    orgs: list[Org]
    fx: FxRate
    lang: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.org.timezone)

    @property
    def words(self) -> dict[str, str]:
        return i18n.STRINGS[self.lang]

    @property
    def period(self) -> tuple[str | None, str | None]:
        """The dates the address asks for (``from``, ``to``); an empty field is no bound."""
        q = self.request.query_params
        return q.get("from") or None, q.get("to") or None


class Dashboard:
    """The sources every page reads and the plumbing that turns a page's answer into HTML or
    an export."""

    def __init__(
        self,
        ledger: Ledger,
        signin: SignIn,
        templates: Environment,
        billing: Billing,
        *,
        alerts: AlertStore | None = None,
        rates: dict[str, Decimal] | None = None,
        holds: HoldsProvider | None = None,
    ) -> None:
        self.ledger = ledger
        self.reports = Reports(ledger)
        self.billing = billing
        self.alerts = alerts
        self.holds = holds
        self.rates = rates or {}
        self.signin = signin
        self.templates = templates

    def page(self, handler: Callable[[Dashboard, Context], Response]) -> Callable[[Request], Response]:
        """A page behind the session: signed-out readers go to the sign-in form; a missing
        thing is a 404 page, bad input a 400 page with the reason."""

        def endpoint(request: Request) -> Response:
            viewer = self.signin.viewer(request.cookies.get(COOKIE))
            if viewer is None:
                return redirect(request, "/signin")
            try:
                return handler(self, self._context(request, viewer))
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
        scope = ViewerScope(self.ledger, org.id, viewer.project_id)
        fx = fx_rate(currency(request), self.rates)
        return Context(request, viewer, scope, org, orgs, fx, language(request))

    def render(self, ctx: Context, template: str, status: int = 200, **values: Any) -> Response:
        params = dict(ctx.request.query_params)
        base = base_path(ctx.request)
        text = self.templates.get_template(template).render(
            base=base,
            t=ctx.words,
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
            row_cells=lambda table, detail=None: html_rows(table, ctx.fx, detail),
            v=lambda text: i18n.value(ctx.lang, text),
            link=lambda path, **extra: link(ctx, path, **extra),
            vary=lambda path, changes: link(ctx, path, **{**params, **changes}),
            export=lambda fmt: link(ctx, ctx.request.url.path[len(base) :], **{**params, "format": fmt}),
            project_name=self.ledger.get_project(ctx.scope.project).name if ctx.scope.project else None,
            **values,
        )
        return html(text, status)

    def _problem(self, request: Request, viewer: Viewer, status: int, message: str) -> Response:
        try:
            ctx = self._context(request, viewer)
        except KakinError:  # the organisation itself is what was not found
            lang = language(request)
            text = self.templates.get_template("problem.html").render(
                base=base_path(request), t=i18n.STRINGS[lang], message=message, lang=lang
            )
            return html(text, status)
        return self.render(ctx, "error.html", status, message=message, active="")

    def export(self, ctx: Context, table: Table) -> Response | None:
        """The table as CSV or JSON when ``format`` asks for it: what the page shows."""
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

    def filters(self, ctx: Context) -> dict[str, str | None]:
        """The project, key and model a page is narrowed to."""
        q = ctx.request.query_params
        project = ctx.scope.held(q.get("project"))
        return {"project": project, "key": q.get("key") or None, "model": q.get("model") or None}

    def filter_choices(self, ctx: Context) -> dict[str, Any]:
        """The filter form's projects and keys."""
        projects = self.ledger.list_projects(ctx.org.id) if ctx.scope.admin else []
        chosen = ctx.scope.held(ctx.request.query_params.get("project"))
        project_id = self.ledger.get_project(chosen, ctx.org.id).id if chosen else None
        # A project's keys to choose from; across a whole organisation (hundreds of keys) the
        # key is typed by its prefix instead.
        keys = self.ledger.list_keys(ctx.org.id, project_id) if project_id else None
        return {"projects": projects, "keys": keys}

    def key_labels(self, key_ids: Iterable[str]) -> dict[str, str]:
        """How people know each of ``key_ids`` (name and public prefix), in one read."""
        return {id_: key_label(k.name, k.prefix) for id_, k in self.ledger.get_keys(key_ids).items()}


def link(ctx: Context, path: str, **params: Any) -> str:
    """A dashboard address, keeping the admin's chosen organisation."""
    if ctx.viewer.admin and "org" not in params:
        params["org"] = ctx.org.name
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{base_path(ctx.request)}{path}" + (f"?{query}" if query else "")

"""Reconciliation: a provider's own bill beside kakin's metering, per UTC day × model × unit.

The comparison is kakin.reconcile's (the one ``kakin reconcile show`` and the admin API give).
Bills belong to the organisation and name the provider's projects, not kakin's: only the admin
key sees this page and imports bills; a project key gets a 404.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kakin.errors import InvalidInput, KakinError, NotFound
from kakin.money import MoneyError, to_decimal
from kakin.reconcile import PROVIDERS, BillStore, Reconciler, Tolerance
from kakin.reconcile.bills import MAX_BYTES
from kakin.web.dashboard import Context, Dashboard, link
from kakin.web.session import COOKIE
from kakin.web.tables import Column, Table

ONLY_ADMIN = "reconciliation with the providers' bills is the organisation's: sign in with the admin key"


def reconcile_page(board: Dashboard, ctx: Context) -> Response:
    if not ctx.scope.admin:
        raise NotFound(ONLY_ADMIN)
    q = ctx.request.query_params
    store = BillStore(board.ledger)
    imports = store.imports(ctx.org.id)
    imported = [p for p in PROVIDERS if any(i.provider == p for i in imports)]
    provider = q.get("provider") or (imported[0] if imported else PROVIDERS[0])
    if provider not in PROVIDERS:
        raise InvalidInput(f"the provider is one of {', '.join(PROVIDERS)}, not {provider!r}")
    words = ctx.words
    values: dict[str, Any] = {"result": None, "table": None}
    if provider in imported:
        try:
            tolerance = Tolerance(
                to_decimal(q.get("tolerance") or "0.01", what="tolerance"),
                to_decimal(q.get("relative") or "0.01", what="relative share"),
            )
        except MoneyError as exc:
            raise InvalidInput(str(exc)) from None
        accounts = [a.strip() for a in (q.get("accounts") or "").split(",") if a.strip()]
        result = Reconciler(board.ledger).compare(
            ctx.org.id,
            provider,
            start=q.get("from") or None,
            end=q.get("to") or None,
            tolerance=tolerance,
            accounts=accounts,
        )
        table = _table(result, words, flagged_only=bool(q.get("flagged")))
        exported = board.export(ctx, table)
        if exported is not None:
            return exported
        share = f"{(result.tolerance.relative * 100).normalize():f}%"
        values = {
            "result": result,
            "table": table,
            "share": share,
            "last_day": result.end - timedelta(days=1),
        }
    return board.render(
        ctx,
        "reconcile.html",
        active="reconcile",
        provider=provider,
        providers=PROVIDERS,
        imports=[i for i in imports if i.provider == provider],
        upload=link(ctx, "/reconcile/import"),
        days=timedelta(days=1),
        **values,
    )


def _table(result: Any, words: dict[str, str], *, flagged_only: bool) -> Table:
    columns = [
        Column("day", words["utc_day"]),
        Column("model", words["model"]),
        Column("unit", words["unit"]),
        Column("kakin_tokens", words["kakin_tokens"], "int"),
        Column("provider_tokens", words["provider_tokens"], "int"),
        Column("kakin_cost", words["kakin_cost"], "money"),
        Column("provider_cost", words["provider_cost"], "money"),
        Column("difference", words["difference"], "money"),
        Column("verdict", words["verdict"]),
        Column("explained", words["explained"]),
    ]
    rows = [line.row() for line in result.lines if line.flagged or not flagged_only]
    period = (result.start.isoformat(), result.end.isoformat())
    return Table(columns, rows, "UTC", f"reconcile-{result.provider}", period)


def import_endpoint(board: Dashboard) -> Any:
    """``POST /reconcile/import?provider=…&filename=…``: the file as the body (the page's upload
    form sends it with fetch). JSON answers: the import, or the error. The session cookie is
    SameSite=strict, so no other site can post here in the admin's name."""

    async def endpoint(request: Request) -> Response:
        viewer = board.signin.viewer(request.cookies.get(COOKIE))
        if viewer is None or not viewer.admin:
            return JSONResponse({"error": ONLY_ADMIN}, status_code=403)
        q = request.query_params
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BYTES:
                return JSONResponse(
                    {"error": f"the file is larger than {MAX_BYTES // 2**20} MiB"}, status_code=413
                )
        try:
            orgs = board.ledger.list_orgs()
            org = board.ledger.get_org(q["org"]) if q.get("org") else (orgs[0] if orgs else None)
            if org is None:
                raise NotFound("no organisation yet: create one with `kakin org create`")
            provider, filename = q.get("provider", ""), (q.get("filename") or "export")[:300]
            store = BillStore(board.ledger)
            done = await run_in_threadpool(store.import_bill, org.id, provider, bytes(body), filename)
        except KakinError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        base = request.url.path.rsplit("/reconcile/import", 1)[0]
        query = urlencode({"org": org.name, "provider": provider})
        return JSONResponse({"new": done.new, "id": done.id, "next": f"{base}/reconcile?{query}"})

    return endpoint

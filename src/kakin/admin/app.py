"""The admin API application: ``create_admin_app(ledger, admin_key=…)``.

A FastAPI app meant to be mounted under ``/admin`` inside ``kakin serve`` (it also runs on its
own, e.g. in tests). Its OpenAPI document is served at ``openapi.json`` relative to where it
is mounted (``/admin/openapi.json`` in the gateway); FastAPI adds the mount prefix to the
document's ``servers`` so generated clients call the right URLs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from kakin.admin import errors
from kakin.admin.auth import AdminKeyMiddleware
from kakin.admin.context import AdminContext, BudgetModel, HoldsProvider
from kakin.admin.routes import alerts as alert_routes
from kakin.admin.routes import budgets, charges, credits, invoices, keys, orgs, provider_bills, reports, usage
from kakin.alerts.engine import AlertEngine
from kakin.alerts.store import AlertStore
from kakin.billing import Billing
from kakin.ledger import Ledger

OPENAPI_PATH = "/openapi.json"

DESCRIPTION = """\
Manage kakin: organisations, projects and virtual keys; credit grants, refunds and payments;
balances and the ledger's entries; two-phase charges for custom integrations; budgets, usage
tiers, usage records, reconciliation; spend reports, the request log, one request's itemised cost,
what-if repricing and the month-end forecast; provider bills imported and reconciled with kakin's
metering; alert channels, rules and deliveries; monthly invoices (live drafts, issued snapshots)
and credit notes.

**Authentication**: every call sends `Authorization: Bearer <KAKIN_ADMIN_KEY>`.

**Money** is exact: amounts are USD as decimal strings (`"12.50"`), never JSON numbers.
**Times** are ISO 8601; responses are in UTC, except reports: their days, hours and times are the
organisation's own, with its offset, and each report names its `timezone`.

**Errors** share one shape, `{"error": {"type": "...", "message": "..."}}`; a refused call
changes nothing.
"""


def create_admin_app(
    ledger: Ledger,
    *,
    admin_key: str,
    alerts: AlertStore | AlertEngine | None = None,
    on_change: Callable[[str, str], None] | None = None,
    holds: HoldsProvider | None = None,
    billing: Billing | None = None,
    budget_model: BudgetModel | None = None,
) -> FastAPI:
    """The admin API over ``ledger``.

    ``admin_key``: the bearer secret every call must present; empty disables the API (503).
    ``alerts``: the alert store, or a running alert engine (its rules are reloaded when they
    change); by default a store on the ledger's database.
    ``on_change(kind, id)``: called after every successful mutation — kind ``"org"``,
    ``"project"``, ``"key"``, ``"alerts"`` (id = org id) or ``"tier_rules"`` (id = name).
    ``holds``: holds kept outside the ledger (a gateway in local accounting keeps them in
    memory); balances and budget gauges count them in ``held``.
    ``billing``: invoices and credit notes (kakin.billing) with the configured numbering,
    issuer and rates; by default with the default settings.
    ``budget_model(name)``: the model a budget set on ``name`` counts, raising for a name the
    gateway would refuse (the gateway's ``router.budget_model``); None: any name is kept as given.
    """
    engine = alerts if isinstance(alerts, AlertEngine) else None
    store = alerts.store if isinstance(alerts, AlertEngine) else alerts or AlertStore(ledger.engine)
    ctx = AdminContext(
        ledger=ledger,
        alert_store=store,
        alert_engine=engine,
        on_change=on_change,
        holds=holds,
        budget_model=budget_model,
    )

    app = FastAPI(
        title="kakin admin API",
        version=_version(),
        description=DESCRIPTION,
        openapi_url=OPENAPI_PATH,
        docs_url=None,
        redoc_url=None,
    )
    for module in (orgs, keys, credits, charges, budgets, usage, reports, provider_bills, alert_routes):
        app.include_router(module.router(ctx))
    app.include_router(invoices.router(ctx, billing or Billing(ledger)))
    errors.install(app)
    app.add_middleware(AdminKeyMiddleware, admin_key=admin_key, public_paths={OPENAPI_PATH})
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the bearer scheme the middleware enforces."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            servers=app.servers,
        )
        components = document.setdefault("components", {})
        components.setdefault("securitySchemes", {})["AdminKey"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "the admin key configured as KAKIN_ADMIN_KEY",
        }
        document["security"] = [{"AdminKey": []}]
        app.openapi_schema = document
    return app.openapi_schema


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kakin")
    except PackageNotFoundError:
        return "0"

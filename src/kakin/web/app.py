"""The dashboard's ASGI application: ``create_web_app(ledger, admin_key=…)``, mounted at
``/ui`` by :mod:`kakin.app`. Only the routes are here: the pages are in
:mod:`kakin.web.pages`, what they share in :mod:`kakin.web.dashboard`."""

from __future__ import annotations

from decimal import Decimal

from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from kakin.alerts.store import AlertStore
from kakin.billing import Billing
from kakin.ledger import Ledger
from kakin.web import preferences
from kakin.web.dashboard import Dashboard, HoldsProvider
from kakin.web.pages.alerts import alerts_page
from kakin.web.pages.breakdown import breakdown_page
from kakin.web.pages.invoices import invoice_page, invoice_stylesheet, invoices_page
from kakin.web.pages.overview import overview_page
from kakin.web.pages.reconcile import import_endpoint, reconcile_page
from kakin.web.pages.requests import request_detail_page, requests_page
from kakin.web.pages.savings import savings_page
from kakin.web.pages.spend import spend_page
from kakin.web.pages.whatif import whatif_page
from kakin.web.responses import HERE, SecurityHeaders, template_environment
from kakin.web.session import SignIn
from kakin.web.signin import SignInPages


def create_web_app(
    ledger: Ledger,
    *,
    admin_key: str,
    alerts: AlertStore | None = None,
    rates: dict[str, Decimal] | None = None,
    holds: HoldsProvider | None = None,
    billing: Billing | None = None,
) -> ASGIApp:
    """The dashboard over ``ledger``. ``alerts``: the alert store (fired alerts and their
    deliveries); ``rates``: configured display rates (kakin.toml's ``[currency.rates]``);
    ``holds``: holds a gateway keeps outside the ledger, counted in the gauges and the
    available credit as the admin API counts them; ``billing``: invoices (kakin.billing) with
    the configured numbering and issuer, by default the default settings."""
    signin = SignIn(ledger, admin_key)
    templates = template_environment()
    board = Dashboard(
        ledger,
        signin,
        templates,
        billing or Billing(ledger, rates=rates),
        alerts=alerts,
        rates=rates,
        holds=holds,
    )
    session = SignInPages(signin, templates)
    routes = [
        Route("/", board.page(overview_page)),
        Route("/signin", session.form, methods=["GET"]),
        Route("/signin", session.submit, methods=["POST"]),
        Route("/signout", session.sign_out, methods=["POST"]),
        Route("/prefs", preferences.remember),
        Route("/spend", board.page(spend_page)),
        Route("/breakdown", board.page(breakdown_page)),
        Route("/requests", board.page(requests_page)),
        Route("/requests/{ref}", board.page(request_detail_page)),
        Route("/alerts", board.page(alerts_page)),
        Route("/savings", board.page(savings_page)),
        Route("/whatif", board.page(whatif_page)),
        Route("/reconcile", board.page(reconcile_page)),
        Route("/reconcile/import", import_endpoint(board), methods=["POST"]),
        Route("/invoices", board.page(invoices_page)),
        Route("/invoices/{ref}", board.page(invoice_page)),
        Route("/invoice.css", invoice_stylesheet),
        Mount("/static", StaticFiles(directory=HERE / "static")),
    ]
    return SecurityHeaders(Starlette(routes=routes))

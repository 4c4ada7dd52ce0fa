"""The application ``kakin serve`` runs, assembled: the metering gateway, with its alert
engine, the admin API at ``/admin``, the metrics at ``/metrics``, the dashboard at ``/ui``
(``/`` leading to it) and the billing cycles closing by themselves.

This module is the one place that knows them all; the gateway knows nothing of the admin
API or the pages, and the pages know the ledger, the reports and the alert store only.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.responses import RedirectResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kakin.billing import Billing
from kakin.billing.closer import CycleCloser
from kakin.config import Settings
from kakin.gateway.access_log import AccessLog
from kakin.gateway.app import Gateway
from kakin.metrics import MetricsEndpoint

UI = "/ui"


def build_gateway(settings: Settings, ledger: Any = None) -> Gateway:
    """The gateway on ``ledger`` (opened from the settings when None), with its alerts."""
    from kakin.ledger import Ledger

    ledger = ledger or Ledger.open(settings.database.url, hold_seconds=settings.gateway.hold_seconds)
    gateway = Gateway(settings, ledger)

    def suspend(key_id: str, reason: str) -> Any:
        # A runaway alert suspends the key in the ledger and at once in this gateway.
        record = ledger.suspend_key(key_id, reason)
        gateway.changed("key", key_id)
        return record

    gateway.alerts = _alerts(ledger, suspend)
    return gateway


def _alerts(ledger: Any, suspend: Any) -> Any:
    from kakin.alerts import AlertEngine, AlertStore, Dispatcher

    store = AlertStore(ledger.engine)
    engine = AlertEngine(store, Dispatcher(store), suspend=suspend, balance=ledger.balance)
    engine.warm_up()
    engine.resume_deliveries()
    return engine


def assemble(
    gateway: Gateway,
    settings: Settings,
    *,
    dashboard: bool = True,
    close_cycles: bool = True,
    owns_ledger: bool = False,
) -> ASGIApp:
    """What is served: the gateway, the admin API, ``/metrics`` and (``dashboard``) the pages,
    behind the access log when it is on, with the billing cycles closing by themselves
    (``close_cycles`` and ``billing.auto_close``). ``owns_ledger``: close the gateway's ledger once it has shut
    down (a worker process that opened it)."""
    billing = Billing(gateway.ledger, settings.billing, rates=settings.currency.rates)
    closer = (
        CycleCloser(billing, settings.billing.close_interval_seconds, gateway.accounts.settled)
        if close_cycles and settings.billing.auto_close
        else None
    )
    metrics = None
    if gateway.metrics.enabled:
        metrics = MetricsEndpoint(
            gateway.metrics, admin_key=settings.admin_key, public=settings.metrics.public
        )
    app = Served(
        gateway,
        admin=_admin(settings, gateway, billing),
        metrics=metrics,
        pages=_pages(gateway, settings, billing) if dashboard else None,
        closer=closer,
        owns_ledger=owns_ledger,
    )
    return AccessLog(app) if settings.server.access_log else app


def _admin(settings: Settings, gateway: Gateway, billing: Billing) -> ASGIApp | None:
    try:
        from kakin.admin import create_admin_app
    except ImportError:  # installed without the admin API
        return None
    admin = create_admin_app(
        gateway.ledger,
        admin_key=settings.admin_key,
        alerts=gateway.alerts,
        on_change=gateway.changed,
        holds=gateway.accounts,
        billing=billing,
        budget_model=gateway.router.budget_model,
    )
    return Starlette(routes=[Mount("/admin", app=_reads_see_every_charge(gateway, admin))])


def _pages(gateway: Gateway, settings: Settings, billing: Billing) -> ASGIApp:
    from kakin.web import create_web_app

    alerts = gateway.alerts.store if gateway.alerts is not None else None
    web = create_web_app(
        gateway.ledger,
        admin_key=settings.admin_key,
        alerts=alerts,
        rates=settings.currency.rates,
        holds=gateway.accounts,
        billing=billing,
    )
    return Starlette(
        routes=[
            Route("/", lambda request: RedirectResponse(f"{UI}/", status_code=303)),
            Mount(UI, app=_reads_see_every_charge(gateway, web)),
        ]
    )


def _reads_see_every_charge(gateway: Gateway, app: ASGIApp) -> ASGIApp:
    """``app`` answering a GET only once the charges this gateway journaled are in the ledger:
    they reach it a moment after their responses, and an admin reading usage or balances, or a
    page drawn, right after a request must count that request."""

    async def settled_first(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            await gateway.accounts.settled()
        await app(scope, receive, send)

    return settled_first


class Served:
    """Sends ``/admin…`` to the admin API, ``/metrics`` to the metrics, ``/`` and ``/ui…`` to
    the pages, everything else (and the lifespan) to the gateway; starts and stops the cycle
    closer with the server."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        admin: ASGIApp | None,
        metrics: ASGIApp | None,
        pages: ASGIApp | None,
        closer: CycleCloser | None = None,
        owns_ledger: bool = False,
    ) -> None:
        self.gateway = gateway
        self.admin = admin
        self.metrics = metrics
        self.pages = pages
        self.closer = closer
        self.owns_ledger = owns_ledger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan" and self.closer is not None:
                receive = self._watching(receive, self.closer)
            await self.gateway(scope, receive, self._closing(send) if self.owns_ledger else send)
            return
        path = scope["path"]
        if self.admin is not None and path.startswith("/admin"):
            await self.admin(scope, receive, send)
        elif self.metrics is not None and path == "/metrics":
            await self.metrics(scope, receive, send)
        elif self.pages is not None and (path in ("/", UI) or path.startswith(UI + "/")):
            await self.pages(scope, receive, send)
        else:
            await self.gateway(scope, receive, send)  # type: ignore[arg-type]

    @staticmethod
    def _watching(receive: Receive, closer: CycleCloser) -> Receive:
        async def watched() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                closer.start()
            elif message["type"] == "lifespan.shutdown":
                await closer.stop()
            return message

        return watched

    def _closing(self, send: Send) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                self.gateway.ledger.close()
            await send(message)

        return sending

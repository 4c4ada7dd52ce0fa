"""The application ``kakin serve`` runs: the metering gateway (with the admin API at
``/admin``) and the dashboard at ``/ui``, ``/`` leading to it.

This module is the one place that knows all three; the gateway knows nothing of the pages
and the pages know the ledger, the reports and the alert store only.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import RedirectResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kakin.billing import Billing
from kakin.billing.closer import CycleCloser
from kakin.config import Settings
from kakin.gateway.app import Gateway
from kakin.web import create_web_app

UI = "/ui"


def assemble(gateway: Gateway, settings: Settings) -> ASGIApp:
    """The gateway, with the dashboard beside it, and the billing cycles closing by themselves
    (``billing.auto_close``)."""
    alerts = gateway.alerts.store if gateway.alerts is not None else None
    billing = Billing(gateway.ledger, settings.billing, rates=settings.currency.rates)
    web = create_web_app(
        gateway.ledger,
        admin_key=settings.admin_key,
        alerts=alerts,
        rates=settings.currency.rates,
        holds=gateway.accounts,
        billing=billing,
    )

    async def pages_see_every_charge(scope: Scope, receive: Receive, send: Send) -> None:
        # As for the admin API: charges journaled by this gateway reach the ledger a moment
        # after their responses; a page drawn right after a request must count it.
        if scope["type"] == "http" and scope["method"] == "GET":
            await gateway.accounts.settled()
        await web(scope, receive, send)

    pages = Starlette(
        routes=[
            Route("/", lambda request: RedirectResponse(f"{UI}/", status_code=303)),
            Mount(UI, app=pages_see_every_charge),
        ]
    )
    closer = (
        CycleCloser(billing, settings.billing.close_interval_seconds, gateway.accounts.settled)
        if settings.billing.auto_close
        else None
    )
    return Served(gateway, pages, closer)


class Served:
    """Sends ``/`` and ``/ui…`` to the pages, everything else to the gateway; starts and stops
    the cycle closer with the server."""

    def __init__(self, gateway: ASGIApp, pages: ASGIApp, closer: CycleCloser | None = None) -> None:
        self.gateway = gateway
        self.pages = pages
        self.closer = closer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self.closer is not None:
            await self.gateway(scope, self._watching(receive), send)
            return
        path = scope.get("path", "") if scope["type"] == "http" else None
        pages = path is not None and (path in ("/", UI) or path.startswith(UI + "/"))
        await (self.pages if pages else self.gateway)(scope, receive, send)

    def _watching(self, receive: Receive) -> Receive:
        closer = self.closer
        assert closer is not None

        async def watched() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                closer.start()
            elif message["type"] == "lifespan.shutdown":
                await closer.stop()
            return message

        return watched

"""Running the gateway: ``kakin serve`` in the foreground, or in a thread for tests, the demo
and the benchmarks.

With no ``[[providers]]`` configured, kakin runs the embedded default: the built-in simulated
provider is started in-process and answers every API, so everything works offline.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from kakin.config import ProviderSettings, Settings
from kakin.gateway.access_log import AccessLog
from kakin.gateway.app import Gateway
from kakin.logs import configure_logging
from kakin.serving import start_in_thread as serve_in_thread
from kakin.serving import uvicorn_config

log = logging.getLogger("kakin.gateway")

BUILTIN = "builtin"

# Allocations between two collections of the youngest generation (Python's default is 700).
_GC_YOUNG_THRESHOLD = 20_000


def with_builtin_simulator(settings: Settings) -> tuple[Settings, Any]:
    """Start the simulator for providers whose base_url is "builtin" (the default when none
    is configured); returns the settings pointing at it and the running simulator (or None)."""
    providers = settings.providers or (
        ProviderSettings(name="simulator", kind="simulator", base_url=BUILTIN),
    )
    if not any(p.base_url in ("", BUILTIN) for p in providers):
        return settings, None
    from kakin.providers.simulator import start_in_thread

    simulator = start_in_thread()
    providers = tuple(
        p.model_copy(update={"base_url": simulator.url}) if p.base_url in ("", BUILTIN) else p
        for p in providers
    )
    return settings.model_copy(update={"providers": providers}), simulator


def build_gateway(settings: Settings, ledger: Any = None) -> Gateway:
    """The gateway with its ledger, alerts and admin API wired together."""
    from kakin.ledger import Ledger

    ledger = ledger or Ledger.open(settings.database.url, hold_seconds=settings.gateway.hold_seconds)
    gateway = Gateway(settings, ledger)

    def suspend(key_id: str, reason: str) -> Any:
        # A runaway alert suspends the key in the ledger and at once in this gateway.
        record = ledger.suspend_key(key_id, reason)
        gateway.changed("key", key_id)
        return record

    alerts = gateway.alerts = _alerts(ledger, suspend)
    gateway.admin_app = _admin(settings, ledger, alerts, gateway)
    return gateway


def _alerts(ledger: Any, suspend: Any) -> Any:
    from kakin.alerts import AlertEngine, AlertStore, Dispatcher

    store = AlertStore(ledger.engine)
    engine = AlertEngine(store, Dispatcher(store), suspend=suspend, balance=ledger.balance)
    engine.warm_up()
    engine.resume_deliveries()
    return engine


def _admin(settings: Settings, ledger: Any, alerts: Any, gateway: Gateway) -> Any:
    try:
        from kakin.admin import create_admin_app
    except ImportError:  # installed without the admin API
        return None
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from kakin.billing import Billing

    admin = create_admin_app(
        ledger,
        admin_key=settings.admin_key,
        alerts=alerts,
        on_change=gateway.changed,
        holds=gateway.accounts,
        billing=Billing(ledger, settings.billing, rates=settings.currency.rates),
    )

    async def reads_see_every_charge(scope: Any, receive: Any, send: Any) -> None:
        # Charges journaled by this gateway reach the ledger a moment after their responses;
        # an admin reading usage or balances right after a request must see that request.
        if scope["type"] == "http" and scope["method"] == "GET":
            await gateway.accounts.settled()
        await admin(scope, receive, send)

    return Starlette(routes=[Mount("/admin", app=reads_see_every_charge)])


Assemble = Callable[[Gateway, Settings], Any]
"""Builds the served application around the gateway (kakin.app adds the dashboard)."""


def with_access_log(gateway: Gateway, settings: Settings, assemble: Assemble | None = None) -> Any:
    """The ASGI app to serve: the gateway (or what ``assemble`` builds around it), behind the
    access log when it is on."""
    app = assemble(gateway, settings) if assemble is not None else gateway
    return AccessLog(app) if settings.server.access_log else app


def without_password(url: str) -> str:
    """A database URL without its password, for display."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url


def report_providers(providers: tuple[ProviderSettings, ...]) -> None:
    """Say at start which upstreams will be called without a key (warning), and how each is
    configured (debug) — whether its key is set, never the key."""
    for provider in providers:
        problem = provider.missing_key()
        if problem:
            fields = {"provider": provider.name, "api_key_env": provider.api_key_env}
            log.warning("%s", problem, extra={"fields": fields})
        log.debug(
            "provider %s: %s at %s serves %s; key from %s (%s)",
            provider.name,
            provider.kind,
            provider.base_url,
            ", ".join(provider.serves),
            provider.api_key_env or "no variable",
            "set" if provider.api_key() else "not set",
        )


def serve(settings: Settings, assemble: Assemble | None = None) -> None:
    """Serve until interrupted (Ctrl-C): in-flight requests finish and are settled first."""
    configured = settings.providers  # as written: "builtin" is replaced by the simulator's URL
    settings, simulator = with_builtin_simulator(settings)
    configure_logging(settings.logging)  # after the simulator's start, whose lines say nothing useful
    upstreams = ", ".join(f"{p.name} ({p.kind})" for p in configured) or "built-in simulator"
    log.info(
        "kakin gateway on http://%s:%s → %s; database %s",
        settings.server.host,
        settings.server.port,
        upstreams,
        without_password(settings.database.url),
    )
    report_providers(configured)
    gateway = build_gateway(settings)
    server = settings.server
    # This process is the gateway. What is loaded now (catalog, encodings, settings) lives as
    # long as it does: keep it out of every garbage collection, and collect young objects less
    # often, as each request allocates thousands that die young anyway.
    gc.freeze()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    try:
        app = with_access_log(gateway, settings, assemble)
        uvicorn.Server(uvicorn_config(app, server.host, server.port)).run()
    finally:
        gateway.ledger.close()
        if simulator is not None:
            simulator.stop()


@dataclass
class RunningGateway:
    url: str
    gateway: Gateway
    settings: Settings
    _server: uvicorn.Server
    _thread: threading.Thread
    _simulator: Any = None
    _owns_ledger: bool = field(default=True)

    @property
    def simulator(self) -> Any:
        """The built-in simulated provider this gateway started (a RunningSimulator), or None."""
        return self._simulator

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        if self._owns_ledger:
            self.gateway.ledger.close()
        if self._simulator is not None:
            self._simulator.stop()

    def __enter__(self) -> RunningGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(
    settings: Settings, ledger: Any = None, host: str = "127.0.0.1", assemble: Assemble | None = None
) -> RunningGateway:
    """Start on a free port in a background thread; returns once it accepts connections."""
    settings, simulator = with_builtin_simulator(settings)
    gateway = build_gateway(settings, ledger)
    app = with_access_log(gateway, settings, assemble)
    server, thread, port = serve_in_thread(lambda h, p: uvicorn_config(app, h, p), host, "gateway")
    return RunningGateway(
        f"http://{host}:{port}", gateway, settings, server, thread, simulator, ledger is None
    )

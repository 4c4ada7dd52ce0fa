"""Running what kakin.app assembles: ``kakin serve`` in the foreground (one process, or
``--workers N`` processes sharing one listening socket), or in a thread for tests, the demo
and the benchmarks.

With no ``[[providers]]`` configured, kakin runs the embedded default: the built-in simulated
provider is started in-process (in the supervisor, with several workers) and answers every
API, so everything works offline.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from kakin.app import assemble, build_gateway
from kakin.config import ProviderSettings, Settings
from kakin.errors import InvalidInput
from kakin.gateway.app import Gateway
from kakin.logs import configure_logging
from kakin.metrics import MULTIPROC_ENV
from kakin.serving import Server, address, bind, uvicorn_config
from kakin.serving import start_in_thread as serve_in_thread

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


def check_workers(settings: Settings, workers: int) -> None:
    """Refuse several workers where they would break a guarantee."""
    if workers < 1:
        raise InvalidInput(f"--workers must be at least 1, got {workers}")
    mode = settings.gateway.accounting_mode(settings.database.url)
    if workers > 1 and mode == "local":
        raise InvalidInput(
            f"--workers {workers} needs shared accounting, and this configuration uses local accounting "
            f"({'the default on SQLite' if settings.gateway.accounting == 'auto' else 'gateway.accounting'}): "
            "each worker would decide holds in its own memory, so together they could spend past a hard "
            "cap. Use PostgreSQL (database.url; shared accounting is its default) or set "
            'gateway.accounting = "shared", or serve with one worker'
        )


def _keep_in_memory() -> None:
    # This process is the gateway. What is loaded now (catalog, encodings, settings) lives as
    # long as it does: keep it out of every garbage collection, and collect young objects less
    # often, as each request allocates thousands that die young anyway.
    gc.freeze()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def serve(settings: Settings, *, workers: int = 1) -> None:
    """Serve until interrupted (Ctrl-C, SIGTERM): in-flight requests finish and are settled first."""
    check_workers(settings, workers)
    # Bound first: a busy port is one clear error before anything starts, and port 0 becomes
    # the port every line below names.
    sock = bind(settings.server.host, settings.server.port)
    url = f"http://{address(settings.server.host, sock.getsockname()[1])}"
    configured = settings.providers  # as written: "builtin" is replaced by the simulator's URL
    try:
        settings, simulator = with_builtin_simulator(settings)
        configure_logging(settings.logging)  # after the simulator's start, whose lines say nothing useful
        upstreams = ", ".join(f"{p.name} ({p.kind})" for p in configured) or "built-in simulator"
        log.info(
            "kakin gateway on %s → %s; database %s%s",
            url,
            upstreams,
            without_password(settings.database.url),
            f"; {workers} worker processes" if workers > 1 else "",
        )
        report_providers(configured)
        try:
            if workers > 1:
                _serve_workers(settings, workers, sock, url)
            else:
                gateway = build_gateway(settings)
                _keep_in_memory()
                app = assemble(gateway, settings)
                config = uvicorn_config(app, settings.server.host, settings.server.port)
                try:
                    Server(config, lambda: log.info("ready on %s (Ctrl-C to stop)", url)).run(sockets=[sock])
                finally:
                    gateway.ledger.close()
        finally:
            if simulator is not None:
                simulator.stop()
    finally:
        sock.close()


def _serve_workers(settings: Settings, workers: int, sock: socket.socket, url: str) -> None:
    if not settings.redis.url:
        log.warning(
            "%d workers without redis.url: each keeps its own rate-limit counters, response cache and "
            "idempotent replays, so a key's limits allow up to %d times as much; set redis.url",
            workers,
            workers,
        )
    if not settings.admin_key:
        log.warning(
            "%d workers without an admin key: the admin API and /metrics are closed, and each worker "
            "signs dashboard sessions with a secret of its own; set KAKIN_ADMIN_KEY",
            workers,
        )
    # The workers share their metrics in files (prometheus-client's multi-process mode); the
    # directory is fresh for each start, so no count of an earlier run is added in.
    given = os.environ.get(MULTIPROC_ENV)
    directory = given or tempfile.mkdtemp(prefix="kakin-metrics-")
    if given:
        shutil.rmtree(given, ignore_errors=True)
        os.makedirs(given, exist_ok=True)
    os.environ[MULTIPROC_ENV] = directory
    server = settings.server
    config = uvicorn_config(
        functools.partial(worker_app, settings, os.getpid()),
        server.host,
        server.port,
        factory=True,
        workers=workers,
    )
    sock.set_inheritable(True)  # as uvicorn's own bind_socket: the workers listen on it
    supervisor = Workers(config, sockets=[sock])
    supervisor.on_ready = lambda: log.info("ready on %s with %d workers (Ctrl-C to stop)", url, workers)
    try:
        supervisor.run()
    finally:
        if not given:
            shutil.rmtree(directory, ignore_errors=True)
    if supervisor.startup_failed:
        raise InvalidInput("a worker could not start (its error is above); stopped")


def worker_app(settings: Settings, supervisor: int) -> Any:
    """In each worker process (``--workers``): the assembled application on a ledger of its own."""
    _stop_with(supervisor)
    configure_logging(settings.logging)
    try:
        gateway = build_gateway(settings)
    except Exception as exc:  # the same on every restart: make the supervisor stop, not retry
        log.error("worker %d could not start: %s", os.getpid(), exc)
        sys.exit(STARTUP_FAILURE)
    _keep_in_memory()
    return assemble(gateway, settings, owns_ledger=True)


def _stop_with(supervisor: int) -> None:
    """Have this worker sent SIGTERM (a graceful stop) when its supervisor dies, even killed
    with SIGKILL, so that no worker is left serving on its own (Linux; elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != supervisor:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


class Workers(Multiprocess):
    """uvicorn's supervisor (restarts a worker that dies, stops them all on SIGINT / SIGTERM),
    saying which worker died and dropping its live gauges from the shared metrics, and calling
    ``on_ready`` once when every worker first accepts connections."""

    startup_failed = False
    on_ready: Callable[[], None] | None = None

    def keep_subprocess_alive(self) -> None:
        before = list(self.processes)
        super().keep_subprocess_alive()
        waiting = self.on_ready is not None and not self.should_exit.is_set()
        if waiting and all(process.is_ready(timeout=1) for process in self.processes):
            self.on_ready()  # type: ignore[misc]
            self.on_ready = None
        for process in before:
            if process in self.processes:
                continue
            if process.exitcode == STARTUP_FAILURE:
                self.startup_failed = True
                continue
            # A negative code is the signal that ended it: one from outside, or SIGKILL from this
            # supervisor when the worker stopped answering its health check.
            log.error(
                "worker %s exited (code %s); started worker %s in its place",
                process.pid,
                process.exitcode,
                self.processes[before.index(process)].pid,
            )
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(process.pid)


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
    settings: Settings,
    ledger: Any = None,
    host: str = "127.0.0.1",
    *,
    dashboard: bool = False,
    close_cycles: bool = False,
) -> RunningGateway:
    """Start on a free port in a background thread; returns once it accepts connections. The
    admin API and ``/metrics`` are mounted; the dashboard too with ``dashboard``; billing
    cycles close by themselves only with ``close_cycles`` (and ``billing.auto_close``)."""
    settings, simulator = with_builtin_simulator(settings)
    gateway = build_gateway(settings, ledger)
    app = assemble(gateway, settings, dashboard=dashboard, close_cycles=close_cycles)
    server, thread, port = serve_in_thread(lambda h, p: uvicorn_config(app, h, p), host, "gateway")
    return RunningGateway(
        f"http://{host}:{port}", gateway, settings, server, thread, simulator, ledger is None
    )

"""Running an ASGI app on uvicorn: in the foreground, or in a thread on a free port.

The gateway and the simulated provider are both served this way — with uvloop and httptools
when installed, since each is on the path of every request it answers. The listening socket
is bound here (:func:`bind`) before anything else starts, so a busy port is one clear error
at once and port 0 is known as the port it became.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from kakin.errors import KakinError
from kakin.writes import OneWritePerTurn

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools not installed: uvicorn's h11 protocol, as it is
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


class CannotListen(KakinError):
    """The address to serve on cannot be bound: in use, not this machine's, or privileged."""

    code = "cannot_listen"


_HINTS = {
    errno.EADDRINUSE: "the address is already in use (another kakin serve or another program listens "
    "there): stop it, or choose another port with {ports} (0 picks a free one)",
    errno.EADDRNOTAVAIL: "the address is not one of this machine's: choose another with {hosts} "
    "(127.0.0.1 for this machine only, 0.0.0.0 for every interface)",
    errno.EACCES: "permission denied (ports below 1024 need privileges): choose a port from 1024 up "
    "with {ports}",
}
SERVE_OPTIONS = ("--port, KAKIN_PORT or server.port", "--host, KAKIN_HOST or server.host")


def bind(host: str, port: int, options: tuple[str, str] = SERVE_OPTIONS) -> socket.socket:
    """A socket bound to ``host:port`` (port 0: a free one, read back with ``getsockname``),
    not yet listening: uvicorn listens on it once the application has started. ``options``:
    where the command's user sets the port and the host, named in the error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: rebinding after a restart
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = _HINTS.get(exc.errno or 0)
        why = hint.format(ports=options[0], hosts=options[1]) if hint else exc.strerror or str(exc)
        raise CannotListen(f"cannot listen on {address(host, port)}: {why}") from None
    return sock


def address(host: str, port: int) -> str:
    """``host:port`` as a URL writes it (an IPv6 host in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Server(uvicorn.Server):
    """uvicorn's server on a socket bound beforehand, calling ``on_ready`` once it accepts
    connections (uvicorn says so itself only for a socket it binds)."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_ready()


if HttpToolsProtocol is not None:

    class _CoalescingHttpTools(HttpToolsProtocol):
        """uvicorn's httptools protocol writing each turn's output in one syscall (a response's
        head and its body, which it writes apart)."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(OneWritePerTurn(transport, self.loop))  # type: ignore[arg-type]


def uvicorn_config(
    app: Any,
    host: str,
    port: int,
    *,
    lifespan: str = "on",
    graceful_seconds: int = 5,
    factory: bool = False,
    workers: int | None = None,
) -> uvicorn.Config:
    """``factory``: ``app`` is called (in each worker, with ``workers``) to make the app."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="h11" if HttpToolsProtocol is None else _CoalescingHttpTools,
        lifespan=lifespan,
        proxy_headers=False,  # clients connect directly; headers of a fronting proxy are not trusted
        # Logging is the process's (kakin.logs): uvicorn installs no handlers and sets no levels.
        # Its access log stays off: it would print query strings, where a Gemini key may travel;
        # kakin.gateway.access_log writes kakin's own.
        log_config=None,
        log_level=None,
        access_log=False,
        server_header=False,  # a `server: uvicorn` line on every answer tells clients nothing they need
        timeout_graceful_shutdown=graceful_seconds,
        factory=factory,
        workers=workers,
        # A worker answers the supervisor's health pings once it has imported kakin, which takes
        # seconds on a busy machine; uvicorn's default (5 s) killed workers that were starting.
        timeout_worker_healthcheck=30,
    )


def start_in_thread(
    make_config: Any, host: str, name: str, *, timeout: float = 20
) -> tuple[uvicorn.Server, threading.Thread, int]:
    """Serve ``make_config(host, port)`` on a free port in a daemon thread; return once it
    accepts connections, with the server, its thread and the port."""
    sock = bind(host, 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(make_config(host, port))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"{name}:{port}"
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the {name} did not start on {host}:{port}")
        time.sleep(0.01)
    return server, thread, port

"""Running an ASGI app on uvicorn: in the foreground, or in a thread on a free port.

The gateway and the simulated provider are both served this way — with uvloop and httptools
when installed, since each is on the path of every request it answers.
"""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from typing import Any

import uvicorn


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
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        lifespan=lifespan,
        proxy_headers=False,  # clients connect directly; headers of a fronting proxy are not trusted
        # Logging is the process's (kakin.logs): uvicorn installs no handlers and sets no levels.
        # Its access log stays off: it would print query strings, where a Gemini key may travel;
        # kakin.gateway.access_log writes kakin's own.
        log_config=None,
        log_level=None,
        access_log=False,
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
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
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

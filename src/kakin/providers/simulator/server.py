"""Running the simulator: in the foreground (``kakin simulate``) or in a thread (tests,
benchmarks, the demo), on uvicorn with uvloop and httptools when available."""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

from kakin.providers.simulator.app import create_app
from kakin.providers.simulator.config import SimulatorConfig


def _uvicorn_config(config: SimulatorConfig, host: str, port: int) -> uvicorn.Config:
    fast_loop = importlib.util.find_spec("uvloop") is not None
    return uvicorn.Config(
        create_app(config),
        host=host,
        port=port,
        loop="uvloop" if fast_loop else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )


def serve(config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 8788) -> None:
    """Serve until interrupted."""
    uvicorn.Server(_uvicorn_config(config or SimulatorConfig(), host, port)).run()


@dataclass
class RunningSimulator:
    url: str
    port: int
    _server: uvicorn.Server
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(config: SimulatorConfig | None = None, host: str = "127.0.0.1") -> RunningSimulator:
    """Start on a free port in a background thread; returns once it accepts connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(_uvicorn_config(config or SimulatorConfig(), host, port))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"simulator:{port}"
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the simulator did not start on {host}:{port}")
        time.sleep(0.01)
    return RunningSimulator(f"http://{host}:{port}", port, server, thread)

"""Running the simulator: in the foreground (``kakin simulate``) or in a thread (tests,
benchmarks, the demo), on uvicorn with uvloop and httptools when available."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn

from kakin.providers.simulator.app import Simulator, StreamRecord, asgi_app
from kakin.providers.simulator.config import SimulatorConfig
from kakin.serving import address, bind, uvicorn_config
from kakin.serving import start_in_thread as serve_in_thread


def _uvicorn_config(sim: Simulator, host: str, port: int) -> uvicorn.Config:
    return uvicorn_config(asgi_app(sim), host, port, lifespan="off", graceful_seconds=1)


def serve(
    config: SimulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8788,
    *,
    listening: Callable[[str], None] | None = None,
) -> None:
    """Serve until interrupted. ``listening`` gets the URL once the port is bound: with
    port 0, the one the system chose. Raises ``CannotListen`` (kakin.serving) when the address
    cannot be bound, before anything starts."""
    sock = bind(host, port, ("--port", "--host"))
    bound = sock.getsockname()[1]
    server_config = _uvicorn_config(Simulator(config or SimulatorConfig()), host, bound)
    if listening is not None:
        listening(f"http://{address(host, bound)}")
    uvicorn.Server(server_config).run(sockets=[sock])


@dataclass
class RunningSimulator:
    url: str
    port: int
    simulator: Simulator
    _server: uvicorn.Server
    _thread: threading.Thread

    @property
    def streams(self) -> list[StreamRecord]:
        """The latest streamed answers, oldest first (how much of each was written)."""
        return list(self.simulator.streams)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(config: SimulatorConfig | None = None, host: str = "127.0.0.1") -> RunningSimulator:
    """Start on a free port in a background thread; returns once it accepts connections."""
    sim = Simulator(config or SimulatorConfig())
    server, thread, port = serve_in_thread(
        lambda h, p: _uvicorn_config(sim, h, p), host, "simulator", timeout=10
    )
    return RunningSimulator(f"http://{host}:{port}", port, sim, server, thread)

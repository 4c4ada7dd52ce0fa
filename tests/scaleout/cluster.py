"""Several real ``kakin serve`` processes sharing one configuration, for the scale-out tests.

A :class:`Cluster` is N gateway processes (each in a process group of its own, with the
ledger writer it starts) on free ports, one TOML file between them: the PostgreSQL database
given, a Redis key prefix of their own, and a ``kakin simulate`` process as their upstream.
Each process runs in a working directory of its own that survives a restart, so whatever a
process keeps on disk (a journal) is found again by the process restarted in its place.
Every process's output goes to a log file; :func:`running_logs` gives their tails (attached
to a failing test's report by the conftest). :meth:`Cluster.close` — and, should a test
runner die without closing, an ``atexit`` hook — kills every process that is left.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from conftest import free_port, kakin_command

_LIVE: dict[int, subprocess.Popen] = {}  # process group leaders this run started and not reaped


def _kill_leftovers() -> None:
    for process in list(_LIVE.values()):
        _kill_group(process)


atexit.register(_kill_leftovers)


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a process group this harness started (the leader's id is the group's).

    Only while the leader is not reaped: its id cannot be another process's until then. A
    leader that exited by itself closed the pipe of its ledger writer, which then exits too."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    _LIVE.pop(process.pid, None)


def spawn(command: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    """A process in a session (and process group) of its own, its output appended to ``log``."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    _LIVE[process.pid] = process
    return process


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class Simulator:
    """``kakin simulate`` on a port of its own: the upstream every gateway of a cluster uses."""

    def __init__(self, workdir: Path, faults: str = "") -> None:
        self.log = workdir / "simulator.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = kakin_command("simulate", "--port", str(self.port))
        if faults:
            command += ["--faults", faults]
        self.process = spawn(command, env=dict(os.environ), cwd=workdir, log=self.log)

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until_answering(self.url + "/v1/models", self.process, self.log, timeout, "kakin simulate")

    def close(self) -> None:
        _kill_group(self.process)


def wait_until_answering(url: str, process: subprocess.Popen, log: Path, timeout: float, name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode}:\n{tail(log)}")
        try:
            httpx.get(url, timeout=0.5)
            return  # any answer: it is listening
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError(f"{name} did not answer at {url} within {timeout} s:\n{tail(log)}")


class Gateway:
    """One ``kakin serve`` process of a cluster; restarted on the same port and directory."""

    def __init__(self, index: int, config: Path, workdir: Path) -> None:
        self.index = index
        self.config = config
        self.workdir = workdir
        self.log = workdir / "serve.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        with self.log.open("a") as out:
            out.write(f"---- start {self.starts} of gateway {self.index} on port {self.port}\n")
        env = {
            **os.environ,
            "KAKIN_CONFIG": str(self.config),
            "KAKIN_PORT": str(self.port),
            "KAKIN_HOST": "127.0.0.1",
        }
        env.pop("KAKIN_DATABASE_URL", None)  # the configuration file says which database
        self.process = spawn(kakin_command("serve"), env=env, cwd=self.workdir, log=self.log)

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"gateway {self.index} exited with {self.process.returncode}:\n{tail(self.log)}"
                )
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"gateway {self.index} was not healthy within {timeout} s:\n{tail(self.log)}")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the gateway and its ledger writer at once, as a machine's crash would."""
        assert self.process is not None and self.process.returncode is None
        _kill_group(self.process)

    def stop(self, timeout: float = 20) -> None:
        """Ctrl-C (in-flight requests finish and are settled), SIGKILL if it takes too long."""
        if self.process is None:
            return
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGINT)
                self.process.wait(timeout=timeout)
        _kill_group(self.process)


class Cluster:
    """``size`` gateways sharing ``settings`` (merged into the TOML file they all read)."""

    def __init__(
        self,
        workdir: Path,
        *,
        size: int,
        database_url: str,
        redis_url: str,
        redis_prefix: str,
        admin_key: str,
        settings: dict[str, Any] | None = None,
        simulator_faults: str = "",
    ) -> None:
        self.workdir = workdir
        self.admin_key = admin_key
        self.database_url = database_url
        self.redis_prefix = redis_prefix
        self.simulator = Simulator(workdir, simulator_faults)
        config: dict[str, Any] = {
            "admin_key": admin_key,
            "database": {"url": database_url},
            "redis": {"url": redis_url, "prefix": redis_prefix},
            "logging": {"level": "info"},
            "providers": [
                {"name": "simulator", "kind": "simulator", "base_url": self.simulator.url},
            ],
        }
        for section, values in (settings or {}).items():
            config.setdefault(section, {}).update(values)
        self.config = workdir / "kakin.toml"
        self.config.write_text(tomli_w.dumps(config))
        self.gateways: list[Gateway] = []
        for index in range(size):
            home = workdir / f"gateway-{index}"
            home.mkdir()
            self.gateways.append(Gateway(index, self.config, home))
        _RUNNING.append(self)

    def start(self, timeout: float = 90) -> None:
        """Start every gateway at once and wait until all answer."""
        try:
            self.simulator.wait_ready()
            for gateway in self.gateways:
                gateway.start()
            for gateway in self.gateways:
                gateway.wait_ready(timeout)
        except BaseException:
            self.close()
            raise

    def __getitem__(self, index: int) -> Gateway:
        return self.gateways[index]

    def __len__(self) -> int:
        return len(self.gateways)

    @property
    def urls(self) -> list[str]:
        return [gateway.url for gateway in self.gateways]

    def restart(self, index: int) -> None:
        gateway = self.gateways[index]
        gateway.stop()
        gateway.start()
        gateway.wait_ready()

    def admin(self, index: int) -> httpx.Client:
        """An admin API client of gateway ``index`` (``/admin``, with the admin key)."""
        return httpx.Client(
            base_url=self.gateways[index].url + "/admin",
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=30,
        )

    def logs(self) -> str:
        parts = [f"==== kakin simulate ({self.simulator.url})\n{tail(self.simulator.log, 20)}"]
        for gateway in self.gateways:
            state = "running" if gateway.alive else "not running"
            parts.append(f"==== gateway {gateway.index} ({gateway.url}, {state})\n{tail(gateway.log)}")
        return "\n".join(parts)

    def close(self) -> None:
        """Stop every gateway (Ctrl-C, then SIGKILL) and the simulator: nothing is left running."""
        for gateway in self.gateways:  # all at once, then wait for each
            if gateway.process is not None and gateway.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(gateway.process.pid, signal.SIGINT)
        for gateway in self.gateways:
            gateway.stop(timeout=15)
        self.simulator.close()
        if self in _RUNNING:
            _RUNNING.remove(self)


_RUNNING: list[Cluster] = []


def running_logs() -> str:
    """The log tails of every cluster still running (for a failing test's report)."""
    return "\n".join(cluster.logs() for cluster in _RUNNING)

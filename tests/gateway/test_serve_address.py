"""``kakin serve``'s address: with ``--port 0`` every line names the port actually bound, and
a port already in use is one line of error and a non-zero exit, before anything starts."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import free_port, kakin_command


def _env(tmp_path: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("KAKIN_")}
    return env | {"KAKIN_DATABASE_URL": f"sqlite:///{tmp_path / 'kakin.db'}"}


def _lines(stream: queue.Queue[str | None], until: str, timeout: float = 90) -> list[str]:
    """The lines read so far, up to the first containing ``until``."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = stream.get(timeout=0.5)
        except queue.Empty:
            continue
        assert line is not None, "kakin serve exited:\n" + "".join(seen)
        seen.append(line)
        if until in line:
            return seen
    raise AssertionError(f"no line with {until!r} in time:\n" + "".join(seen))


def test_port_zero_is_logged_as_the_port_bound(tmp_path: Path) -> None:
    process = subprocess.Popen(
        kakin_command("serve", "--port", "0"),
        env=_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stream: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in process.stderr:  # type: ignore[union-attr]
            stream.put(line)
        stream.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        lines = _lines(stream, "ready on http://")
        [banner] = [line for line in lines if "kakin gateway on http://" in line]
        port = int(re.search(r"ready on http://127\.0\.0\.1:(\d+) ", lines[-1]).group(1))  # type: ignore[union-attr]
        assert port != 0
        assert f"kakin gateway on http://127.0.0.1:{port} → built-in simulator" in banner
        assert not [line for line in lines if "127.0.0.1:0" in line]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


@pytest.mark.parametrize(
    ("command", "options"),
    [("serve", "--port, KAKIN_PORT or server.port"), ("simulate", "--port")],  # each names its own
)
def test_a_busy_port_is_one_line_of_error(tmp_path: Path, command: str, options: str) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run(
            kakin_command(command, "--port", str(port)),
            env=_env(tmp_path),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: the address is already in use")
    assert f"choose another port with {options} (0 picks a free one)" in done.stderr
    assert not (tmp_path / "kakin.db").exists()  # refused before anything was opened

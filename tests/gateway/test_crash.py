"""No lost usage: ``kakin serve`` and its ledger writer killed with SIGKILL in the middle of a
load. Every response a client received in full is in the ledger once kakin has started again
(local accounting applies what its charge journal still holds), and the ledger balances."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from conftest import free_port, kakin_command
from kakin.ledger import Ledger

from .conftest import random_phone

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"kakin serve exited with {process.returncode}: {process.stderr.read()!r}")
        try:
            if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError("kakin serve did not become healthy")


def start_serving(env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """``kakin serve`` in a process group of its own (with the ledger writer it starts)."""
    return subprocess.Popen(
        kakin_command("serve"),
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


class Load:
    """Worker threads sending plain and streamed requests until stopped; they keep the
    request ids of the responses they received completely."""

    def __init__(self, url: str, key: str, workers: int = 12) -> None:
        self.url = url
        self.key = key
        self.received: list[str] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(workers)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(timeout=10)

    def _work(self, worker: int) -> None:
        headers = {"Authorization": f"Bearer {self.key}", "x-kakin-simulate": "latency=20ms; chunk-delay=2ms"}
        n = 0
        with httpx.Client(base_url=self.url, headers=headers, timeout=5) as client:
            while not self.stopped.is_set():
                n += 1
                body = {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"worker {worker} request {n}"}],
                    "max_tokens": 60,
                    "stream": n % 2 == 0,
                }
                try:
                    request_id = self._send(client, body)
                except (httpx.HTTPError, OSError):
                    continue  # the server died under us: this response was not received
                if request_id:
                    with self.lock:
                        self.received.append(request_id)

    @staticmethod
    def _send(client: httpx.Client, body: dict) -> str | None:
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            content = response.read()
        if response.status_code != 200:
            return None
        if body["stream"] and not content.rstrip().endswith(b"data: [DONE]"):
            return None  # cut short: not received in full
        return response.headers["x-kakin-request-id"]


@pytest.mark.parametrize("accounting", ["local", "shared"])
def test_sigkill_under_load_loses_no_delivered_usage(tmp_path: Path, accounting: str) -> None:
    database = f"sqlite:///{tmp_path / 'kakin.db'}"
    with Ledger.open(database) as ledger:
        org = ledger.create_org("crash", phone=random_phone(), payment_method=True, payment_label="visa 4242")
        ledger.grant(org.id, "free_trial", Decimal("5"), idempotency_key="trial", expires_in=90 * 86400)
        project = ledger.create_project(org.id, "load")
        _key, plaintext = ledger.create_key(project.id, "load")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "KAKIN_CONFIG": str(tmp_path / "absent.toml"),  # no file: defaults plus these variables
        "KAKIN_DATABASE_URL": database,
        "KAKIN_PORT": str(port),
        "KAKIN_GATEWAY__ACCOUNTING": accounting,
        "KAKIN_GATEWAY__HOLD_SECONDS": "2",
    }
    process = start_serving(env, tmp_path)
    load = Load(url, plaintext)
    try:
        wait_healthy(url, process)
        load.start()
        deadline = time.monotonic() + 10
        while len(load.received) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)  # the gateway and its ledger writer at once
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        load.stop()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    received = set(load.received)
    assert len(received) >= 60

    restarted = start_serving(env, tmp_path)  # recovery: the journal's charges reach the ledger
    try:
        wait_healthy(url, restarted)
    finally:
        restarted.send_signal(signal.SIGINT)
        assert restarted.wait(timeout=30) in (0, 130)  # 130: stopped by Ctrl-C, as a user would
        restarted.stderr.close()

    with Ledger.open(database) as ledger:
        records = ledger.usage(org.id)
        recorded = {r.request_id for r in records}
        missing = received - recorded
        assert not missing, f"{len(missing)} delivered responses were not recorded: {sorted(missing)[:5]}"
        assert len(recorded) == len(records)  # each request recorded once
        assert ledger.reconcile(org.id).ok
        # Holds of the requests cut off by the kill (shared accounting writes them) run out by
        # themselves, and the books still balance.
        if ledger.balance(org.id).held:
            time.sleep(2.1)
            ledger.expire_holds()
        balance = ledger.balance(org.id)
        assert balance.held == 0 and balance.spent == sum(r.cost for r in records)
        assert ledger.reconcile(org.id).ok

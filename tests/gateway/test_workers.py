"""``kakin serve --workers N``: several gateway processes on one port, with shared accounting;
refused with local accounting. Each test runs the real command in a process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port
from kakin.ledger import Ledger
from kakin.money import to_pico

ADMIN_KEY = "workers-admin-key"


def kakin(*args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from kakin.cli import main; sys.argv[0] = 'kakin'; main()",
        *args,
    ]


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            if parent == pid:
                found.append(int(entry.name))
    return found


def workers_of(pid: int) -> set[int]:
    """The supervisor's worker processes (multiprocessing's spawned children)."""
    out = set()
    for child in children(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing.spawn" in command and b"resource_tracker" not in command:
            out.add(child)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_refused_with_local_accounting(tmp_path: Path) -> None:
    env = {**os.environ, "KAKIN_DATABASE_URL": f"sqlite:///{tmp_path / 'kakin.db'}"}
    done = subprocess.run(
        kakin("serve", "--workers", "2", "--port", str(free_port())),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "--workers 2 needs shared accounting" in done.stderr
    assert "hard cap" in done.stderr and "PostgreSQL" in done.stderr
    assert not (tmp_path / "kakin.db").exists()  # refused before anything was opened


@pytest.fixture()
def served(
    tmp_path: Path, migrated_pg_schema: Callable[[str], str]
) -> Iterator[tuple[subprocess.Popen, str, Ledger, Path]]:
    """``kakin serve --workers 2`` on PostgreSQL (shared accounting), metrics in a known directory."""
    database = migrated_pg_schema("workers")
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    env = {
        **os.environ,
        "KAKIN_DATABASE_URL": database,
        "KAKIN_ADMIN_KEY": ADMIN_KEY,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        kakin("serve", "--workers", "2", "--port", str(port)),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    ledger = Ledger.open(database)
    try:
        deadline = time.monotonic() + 90
        while len(workers_of(process.pid)) < 2 or not _healthy(url):
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        yield process, url, ledger, metrics_dir
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        ledger.close()
        log.close()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _tenant(ledger: Ledger) -> tuple[str, str]:
    org = ledger.create_org("workers-co", payment_method=True)
    project = ledger.create_project(org.id, "p")
    _, key = ledger.create_key(project.id, "k")
    ledger.grant(org.id, "prepaid", Decimal("10"), idempotency_key="p")
    return org.id, key


def _chat(url: str, key: str, i: int) -> int:
    # A new connection each time, so the kernel hands connections to either worker.
    response = httpx.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"w{i}"}], "max_tokens": 20},
        timeout=20,
    )
    return response.status_code


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_two_workers_serve_share_metrics_and_stop_cleanly(
    served: tuple[subprocess.Popen, str, Ledger, Path], tmp_path: Path
) -> None:
    process, url, ledger, metrics_dir = served
    org_id, key = _tenant(ledger)
    workers = workers_of(process.pid)
    writers = {pid: children(pid) for pid in workers}  # each worker's ledger writer
    assert all(writers.values()), writers

    sent = 0
    with ThreadPoolExecutor(8) as pool:
        # Until both workers have answered (their counters' files name them), at most 400 requests.
        while sent < 400:
            statuses = list(pool.map(lambda i: _chat(url, key, i), range(sent, sent + 40)))
            assert statuses == [200] * 40
            sent += 40
            serving = {int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob("counter_*.db")}
            if workers <= serving:
                break
    assert workers <= serving, f"workers {workers}, answering {serving}"

    time.sleep(0.5)  # each worker writes its exact cost totals at most 0.1 s after a charge
    samples = _scrape(url)  # answered by one worker, for both
    key_of = (("endpoint", "openai.chat"), ("provider", "simulator"), ("status", "2xx"))
    assert samples[("kakin_requests_total", key_of)] == sent
    records = ledger.usage(org_id)
    assert len(records) == sent
    pico = sum(to_pico(r.cost) for r in records)
    assert samples[("kakin_cost_usd_total", (("provider", "simulator"),))] == float(Decimal(pico).scaleb(-12))
    assert samples[("kakin_holds_in_flight", ())] == 0
    # The supervisor says so once both workers accept connections, on the port it bound.
    deadline = time.monotonic() + 30
    while f"ready on {url} with 2 workers" not in (tmp_path / "serve.log").read_text():
        assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
        time.sleep(0.1)

    # SIGTERM: the supervisor stops every worker, each worker its ledger writer; all exit.
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    every = set(workers) | {pid for pids in writers.values() for pid in pids}
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in every) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in every if alive(pid)]
    assert ledger.reconcile(org_id).ok
    assert ledger.balance(org_id).held == 0


def test_a_worker_that_dies_is_reported_and_replaced(
    served: tuple[subprocess.Popen, str, Ledger, Path], tmp_path: Path
) -> None:
    process, url, ledger, metrics_dir = served
    _, key = _tenant(ledger)
    before = workers_of(process.pid)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = workers_of(process.pid)
        if victim not in now and len(now) == 2:
            break
        time.sleep(0.1)
    now = workers_of(process.pid)
    assert victim not in now and len(now) == 2
    (replacement,) = now - before
    # Every request is answered meanwhile (by the survivor), and the replacement, once it has
    # started (its ledger writer runs), answers too: its counters' file appears.
    sent = 0
    started = False
    deadline = time.monotonic() + 180  # a worker takes seconds to start on a busy machine
    with ThreadPoolExecutor(8) as pool:
        while time.monotonic() < deadline and not (metrics_dir / f"counter_{replacement}.db").exists():
            assert list(pool.map(lambda i: _chat(url, key, i), range(sent, sent + 8))) == [200] * 8
            sent += 8
            started = started or bool(children(replacement))
            if not started:
                time.sleep(0.2)
    assert (metrics_dir / f"counter_{replacement}.db").exists(), f"{sent} requests sent"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    log = (tmp_path / "serve.log").read_text()
    assert f"worker {victim} exited (code -9); started worker {replacement} in its place" in log


def test_workers_stop_when_the_supervisor_is_killed(
    served: tuple[subprocess.Popen, str, Ledger, Path],
) -> None:
    process, url, ledger, _ = served
    _, key = _tenant(ledger)
    assert _chat(url, key, 0) == 200
    workers = workers_of(process.pid)
    writers = {pid for worker in workers for pid in children(worker)}
    process.kill()  # SIGKILL: the supervisor cannot pass anything on
    process.wait()
    every = workers | writers
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in every) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in every if alive(pid)], "workers left serving without their supervisor"
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/healthz", timeout=5)

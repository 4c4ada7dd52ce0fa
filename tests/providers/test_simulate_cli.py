"""``kakin simulate`` serves the simulator as a real process."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from conftest import free_port

ENTRY = "from kakin.cli import main; main()"


def test_simulate_command_serves_until_stopped() -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ENTRY,
            "simulate",
            "--port",
            str(port),
            "--key",
            "demo-key",
            "--faults",
            "latency=1ms",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.post(url, json=body, headers={"authorization": "Bearer demo-key"})
                break
            except httpx.ConnectError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "kakin simulate did not start"
                time.sleep(0.1)
        assert response.status_code == 200 and response.json()["usage"]["prompt_tokens"] > 0
        assert httpx.post(url, json=body, headers={"authorization": "Bearer other"}).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_bad_fault_spec_is_a_one_line_error() -> None:
    result = subprocess.run(
        [sys.executable, "-c", ENTRY, "simulate", "--faults", "status=abc"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "status takes a whole number from 400 to 599" in result.stderr


def test_port_0_prints_the_port_the_system_chose() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "simulate", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # printed once the port is bound
        url = first.split(" on ")[1].split()[0]
        assert not url.endswith(":0"), first
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.post(url + "/v1/chat/completions", json=body)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "kakin simulate did not start"
                time.sleep(0.1)
        assert response.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)

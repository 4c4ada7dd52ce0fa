"""What the gateway's upstream hop costs in CPU with each HTTP client.

The same OpenAI chat completion POSTs (gpt-4o-mini) go to kakin's simulated provider, which
runs as its own process (``kakin simulate``), from three clients:

- aiohttp: the baseline, configured as the gateway's upstream session was (pooled connector
  without limit, sock_read timeout, no decompression, no User-Agent / Accept-Encoding);
- kakin: ``kakin.gateway.client.UpstreamClient`` (asyncio protocols + httptools' parser);
- pyreqwest: reqwest (Rust, hyper) behind a Python API, when it is installed.

Each run is a fresh process on uvloop (the gateway's loop) that keeps ``concurrency``
requests in flight for ``--seconds``; it reports CPU per request from time.process_time()
(the client process only, all its threads: pyreqwest's Tokio runtime included) and
requests/s. Non-streaming answers are read whole; streamed ones (SSE, chunked) are read
chunk by chunk as the gateway does. Clients run in rotating order within each round; each
figure is the median over the rounds, and ratios are against aiohttp in the same run.

    .venv/bin/python bench/bench_upstream_client.py            # 3 rounds of 2 s runs, ~2 minutes
    .venv/bin/python bench/bench_upstream_client.py --quick    # 1 round of 1 s runs
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import orjson
import uvloop

PATH = "/v1/chat/completions"
CONCURRENCY = (1, 50)
MODES = ("non-streaming", "streamed")
CLIENTS = ("aiohttp", "kakin", "pyreqwest")
TIMEOUT_SECONDS = 600.0
PROMPT = {
    "model": "gpt-4o-mini",
    "messages": [
        {
            "role": "system",
            "content": "You are a concise assistant for a support team. Answer in two sentences.",
        },
        {
            "role": "user",
            "content": "Our nightly export job failed with a timeout after the database grew past 40 GB. "
            "What are the first three things to check before we raise the timeout?",
        },
    ],
    "max_tokens": 50,
}
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}

Fetch = Callable[[bytes], Awaitable[int]]  # sends one request, returns the body's length


# ---------------------------------------------------------------------------- clients


async def aiohttp_client(url: str, stream: bool) -> tuple[Fetch, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=TIMEOUT_SECONDS),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
    )

    async def fetch(body: bytes) -> int:
        response = await session.request("POST", url, data=body, headers=HEADERS)
        try:
            if not stream:
                return len(await response.read())
            return sum([len(chunk) async for chunk in response.content.iter_any()])
        finally:
            response.release()

    return fetch, session.close


async def kakin_client(url: str, stream: bool) -> tuple[Fetch, Callable[[], Awaitable[None]]]:
    from kakin.gateway.client import UpstreamClient

    client = UpstreamClient(TIMEOUT_SECONDS)

    async def fetch(body: bytes) -> int:
        response = await client.request("POST", url, body, HEADERS)
        try:
            if not stream:
                return len(await response.read())
            return sum([len(chunk) async for chunk in response])
        finally:
            response.release()

    return fetch, client.close


async def pyreqwest_client(url: str, stream: bool) -> tuple[Fetch, Callable[[], Awaitable[None]]]:
    from pyreqwest.client import ClientBuilder

    client = (
        ClientBuilder()
        .connect_timeout(timedelta(seconds=10))
        .read_timeout(timedelta(seconds=TIMEOUT_SECONDS))
        .gzip(False)
        .brotli(False)
        .zstd(False)
        .deflate(False)
        .follow_redirects(False)
        .build()
    )

    async def fetch(body: bytes) -> int:
        request = client.post(url).headers(HEADERS).body_bytes(body)
        if not stream:
            response = await request.build().send()
            return len(bytes(await response.bytes()))  # the gateway needs bytes
        total = 0
        async with request.build_streamed() as response:
            while (chunk := await response.body_reader.read_chunk()) is not None:
                total += len(bytes(chunk))
        return total

    return fetch, client.close


FACTORIES = {"aiohttp": aiohttp_client, "kakin": kakin_client, "pyreqwest": pyreqwest_client}


def available(name: str) -> bool:
    return name != "pyreqwest" or importlib.util.find_spec("pyreqwest") is not None


# ---------------------------------------------------------------------------- one run (child process)


async def measure(name: str, url: str, stream: bool, concurrency: int, seconds: float) -> dict[str, float]:
    body = orjson.dumps({**PROMPT, "stream": True} if stream else PROMPT)
    fetch, close = await FACTORIES[name](url, stream)
    expected = await fetch(body)
    assert expected > 100, f"{name}: answer of {expected} bytes"

    async def loop_until(deadline: float) -> int:
        done = 0
        while time.perf_counter() < deadline:
            length = await fetch(body)
            if length != expected:
                raise AssertionError(f"{name}: answer of {length} bytes, expected {expected}")
            done += 1
        return done

    async def burst(duration: float) -> int:
        deadline = time.perf_counter() + duration
        return sum(await asyncio.gather(*(loop_until(deadline) for _ in range(concurrency))))

    await burst(0.3)  # warm-up: connections open, code paths warm
    cpu, wall = time.process_time(), time.perf_counter()
    requests = await burst(seconds)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await close()
    return {"cpu_us": cpu / requests * 1e6, "rps": requests / wall, "requests": requests}


def child(args: argparse.Namespace) -> None:
    result = uvloop.run(
        measure(args.client, args.url, args.mode == "streamed", args.concurrency, args.seconds)
    )
    print(json.dumps(result))


# ---------------------------------------------------------------------------- orchestration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_simulator(port: int) -> subprocess.Popen:
    code = "import sys; from kakin.cli import main; sys.argv[0] = 'kakin'; main()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "simulate", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"kakin simulate exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("kakin simulate did not listen within 60 s") from None
            time.sleep(0.05)


def run_child(client: str, url: str, mode: str, concurrency: int, seconds: float) -> dict[str, float]:
    command = [
        sys.executable,
        __file__,
        "--child",
        "--client",
        client,
        "--url",
        url,
        "--mode",
        mode,
        "--concurrency",
        str(concurrency),
        "--seconds",
        str(seconds),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=False)
    if output.returncode != 0:
        raise RuntimeError(f"{client} {mode} c={concurrency} failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one measured run")
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s runs")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.rounds, args.seconds = 1, 1.0

    clients = [name for name in CLIENTS if available(name)]
    missing = [name for name in CLIENTS if name not in clients]
    port = free_port()
    simulator = start_simulator(port)
    url = f"http://127.0.0.1:{port}{PATH}"
    results: dict[tuple[str, int, str], list[dict[str, float]]] = {}
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    try:
        for round_number in range(args.rounds):
            order = clients[round_number % len(clients) :] + clients[: round_number % len(clients)]
            for mode in MODES:
                for concurrency in CONCURRENCY:
                    for name in order:
                        result = run_child(name, url, mode, concurrency, args.seconds)
                        results.setdefault((mode, concurrency, name), []).append(result)
    finally:
        os.killpg(simulator.pid, signal.SIGINT)
        simulator.wait(timeout=20)

    print(
        f"upstream client CPU per request, POST {PATH} to the simulator "
        f"(median of {args.rounds} round(s) of {args.seconds:g} s; × = ratio to aiohttp in the same run)"
    )
    print(
        f"  {'mode':<14} {'conc':>4}  {'client':<10} {'CPU µs/req':>10} {'req/s':>8}  {'CPU ×':>6} {'req/s ×':>8}"
    )
    for mode in MODES:
        for concurrency in CONCURRENCY:
            base = results[(mode, concurrency, "aiohttp")]
            base_cpu = statistics.median(r["cpu_us"] for r in base)
            base_rps = statistics.median(r["rps"] for r in base)
            for name in clients:
                runs = results[(mode, concurrency, name)]
                cpu = statistics.median(r["cpu_us"] for r in runs)
                rps = statistics.median(r["rps"] for r in runs)
                print(
                    f"  {mode:<14} {concurrency:>4}  {name:<10} {cpu:>10.1f} {rps:>8,.0f}  "
                    f"{cpu / base_cpu:>6.2f} {rps / base_rps:>8.2f}"
                )
    for name in missing:
        print(f"  {name}: not installed, not measured (pip install {name})")
    print(
        f"load: {time.monotonic() - started:.0f} s wall; load average {load_before:.2f} → {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()

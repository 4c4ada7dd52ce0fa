"""Benchmark: the provider adapters' hot path and the simulated provider's throughput.

Run: .venv/bin/python bench/bench_providers.py

Figures are ratios against baselines measured in the same run:
- parse / usage / stream metering against the bare ``orjson.loads`` they cannot avoid;
- the simulator (a separate process) against a minimal raw-ASGI app that returns a fixed
  JSON body on the same uvicorn setup, both driven by the same load generator.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import httpx
import orjson

BASELINE_BODY = orjson.dumps(
    {"id": "x", "object": "chat.completion", "choices": [], "usage": {"prompt_tokens": 1}}
)


async def baseline_app(scope, receive, send) -> None:  # a fixed answer: the floor of any server
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": BASELINE_BODY})


def serve(kind: str, port: int) -> None:
    import uvicorn

    if kind == "baseline":
        app = baseline_app
    else:
        from kakin.providers.simulator import create_app

        app = create_app()
    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", lifespan="off",
                access_log=False, log_level="warning")  # fmt: skip


def per_call(fn, seconds: float = 0.5) -> float:
    """Seconds per call of fn, best of three timed batches."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - start > seconds / 5:
            break
        n *= 2
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def bench_adapters() -> None:
    from kakin.providers import StreamMeter, match_endpoint, parse, usage_from_body
    from kakin.providers.simulator import start_in_thread

    doc = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "You are terse."},
           {"role": "user", "content": "How much will this request cost me, roughly? " * 4}], "max_tokens": 256}  # fmt: skip
    body = orjson.dumps(doc)
    match = match_endpoint("POST", "/v1/chat/completions")
    with start_in_thread() as sim:
        answer = httpx.post(sim.url + "/v1/chat/completions", content=body).content
        stream = httpx.post(
            sim.url + "/v1/chat/completions",
            content=orjson.dumps({**doc, "stream": True, "stream_options": {"include_usage": True}}),
            headers={"x-kakin-simulate": "chunks=50; tokens=200"},
        ).content
    streamed = parse(match.endpoint, orjson.dumps({**doc, "stream": True}))
    parsed = parse(match.endpoint, body)
    events = [e for e in stream.split(b"\n\n") if e.startswith(b"data: {")]

    base_parse = per_call(lambda: orjson.loads(body))
    t_parse = per_call(lambda: parse(match.endpoint, body))
    base_usage = per_call(lambda: orjson.loads(answer))
    t_usage = per_call(lambda: usage_from_body(parsed, answer))
    base_stream = per_call(lambda: [orjson.loads(e[6:]) for e in events])

    def meter_whole() -> None:
        meter = StreamMeter(streamed)
        meter.feed(stream)
        meter.finish()

    chunks = [stream[i : i + 64] for i in range(0, len(stream), 64)]

    def meter_pieces() -> None:
        meter = StreamMeter(streamed)
        for chunk in chunks:
            meter.feed(chunk)
        meter.finish()

    t_whole = per_call(meter_whole)
    t_pieces = per_call(meter_pieces)
    print("adapters (one chat request, 2 messages, ~60 input tokens)")
    print(f"  baseline: orjson.loads(request)          {base_parse * 1e6:8.2f} µs")
    print(
        f"  parse (validate + exact token count)     {t_parse * 1e6:8.2f} µs   {t_parse / base_parse:6.1f}x baseline"
    )
    print(f"  baseline: orjson.loads(response)         {base_usage * 1e6:8.2f} µs")
    print(
        f"  usage_from_body                          {t_usage * 1e6:8.2f} µs   {t_usage / base_usage:6.1f}x baseline"
    )
    print(f"stream meter ({len(events)} events, {len(stream)} bytes, usage chunk stripped)")
    print(f"  baseline: orjson.loads of every event    {base_stream * 1e6:8.2f} µs")
    print(
        f"  meter, stream in one chunk               {t_whole * 1e6:8.2f} µs   {t_whole / base_stream:6.1f}x baseline"
    )
    print(
        f"  meter, 64-byte chunks ({len(chunks)})            {t_pieces * 1e6:8.2f} µs   {t_pieces / base_stream:6.1f}x baseline"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(kind: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/v1/models")
            return process, url
        except httpx.ConnectError:
            time.sleep(0.05)
    raise RuntimeError(f"{kind} server did not start")


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One HTTP/1.1 keep-alive exchange; returns the status. Reads fixed-length and chunked bodies."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lowered = head.lower()
    if b"transfer-encoding: chunked" in lowered:
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                return status
    length = int(lowered.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    await reader.readexactly(length)
    return status


async def load(url: str, path: str, body: bytes, seconds: float = 1.5, concurrency: int = 16) -> float:
    """Requests per second from ``concurrency`` keep-alive connections (a minimal HTTP client,
    so that the load generator costs far less than the servers it measures)."""
    host, port = url.removeprefix("http://").split(":")
    request = (
        f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer bench\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, int(port))
        for _ in range(10):
            await _exchange(reader, writer, request)
        while time.perf_counter() < deadline:
            status = await _exchange(reader, writer, request)
            assert status == 200, status
            done += 1
        writer.close()

    start_time = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - start_time)


def bench_servers() -> None:
    chat = orjson.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 64}
    )
    cases = [
        ("OpenAI chat", "/v1/chat/completions", chat),
        ("OpenAI chat, streamed", "/v1/chat/completions",
         orjson.dumps({**orjson.loads(chat), "stream": True, "stream_options": {"include_usage": True}})),
        ("Anthropic messages", "/v1/messages", orjson.dumps({"model": "claude-haiku-4-5", "max_tokens": 64,
                                                              "messages": [{"role": "user", "content": "Hello there"}]})),
        ("Gemini generateContent", "/v1beta/models/gemini-2.0-flash:generateContent",
         orjson.dumps({"contents": [{"parts": [{"text": "Hello there"}]}]})),
    ]  # fmt: skip
    baseline, base_url = start("baseline")
    simulator, sim_url = start("simulator")
    try:
        # The machine is shared: interleave the measurements and keep each one's best round.
        best = {label: 0.0 for label in ["baseline", *(c[0] for c in cases)]}
        for _ in range(3):
            best["baseline"] = max(
                best["baseline"], asyncio.run(load(base_url, "/v1/chat/completions", chat))
            )
            for label, path, body in cases:
                best[label] = max(best[label], asyncio.run(load(sim_url, path, body)))
        base_rps = best["baseline"]
        print(
            "servers (separate processes; one asyncio load generator, 16 keep-alive connections; best of 3 x 1.5 s)"
        )
        print(f"  baseline: fixed-answer raw ASGI app      {base_rps:8.0f} req/s")
        for label, _, _ in cases:
            rps = best[label]
            print(f"  simulator, {label:<28}  {rps:8.0f} req/s   {rps / base_rps:5.2f}x baseline")
    finally:
        for process in (baseline, simulator):
            process.terminate()
            process.wait()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        bench_adapters()
        bench_servers()

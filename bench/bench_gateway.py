"""What the metering gateway adds to a request: latency, time to first token, throughput.

The same chat requests go straight to the simulated provider ("direct", the baseline) and
through kakin with everything on: key authentication, exact token count, an org budget with
a hard cap far above the load, a large prepaid grant, pricing and a durable ledger charge per
request. Two controls run beside them, so a difference can be told from noise:

- "direct again": the simulator measured a second time in its own runs (A/A: the noise floor);
- "bare proxy": bench/passthrough_proxy.py, the same server stack and upstream client as the
  gateway with none of kakin's work (what any Python hop costs here).

Every server is its own process (``kakin simulate``, ``kakin serve`` on a temporary SQLite
ledger, the bare proxy); the gateway's CPU is reported for its own process (the event loop)
and for its children (the ledger writer) apart. Load comes from wrk (bench/gateway_wrk.lua),
falling back to a Python client when wrk is missing; time to first token is read by an aiohttp
client in this process from a paced stream of two text deltas.

With an upstream that answers at once, 50 connections in a closed loop saturate any hop, so
the p99 at concurrency 50 measures queueing there; the same load is also measured with the
upstream answering after 50 ms and the connections started spread over those 50 ms (not in
step), closer to real use, where the p99 shows the hop's overhead.
Targets are measured in rotating order within each round; each figure is the median over the
rounds of the per-round value, and overheads are target minus direct of the same round.

    .venv/bin/python bench/bench_gateway.py             # 3 rounds, under 5 minutes
    .venv/bin/python bench/bench_gateway.py --quick     # 1 round, about a minute
    .venv/bin/python bench/bench_gateway.py --profile   # then py-spy the gateway under load
    .venv/bin/python bench/bench_gateway.py --compare   # kakin's modes and LiteLLM's proxy side by side

``--compare`` measures, against the simulator alone: kakin in local accounting with metrics on
and off, in shared accounting on PostgreSQL (a database made for the run), with Redis, with
``--workers 2``, and LiteLLM's proxy (installed with pip into /tmp/kakin-bench-litellm on first
use, run with a master key and no database); ``--modes`` picks some of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
WRK_SCRIPT = HERE / "gateway_wrk.lua"
PROXY_SCRIPT = HERE / "passthrough_proxy.py"
PATH = "/v1/chat/completions"
CONCURRENCY = (1, 10, 50)
# A paced stream for time to first token, which depends on the first event only: 2 text
# deltas, 5 ms apart (6 events through the gateway, which asks for usage: ~30 ms a request).
PACED = "chunks=2; chunk-delay=5ms"
# An upstream that takes as long as a quick real answer: the c=50 load that is not saturation.
# The connections start spread over that time: with a constant upstream latency, connections
# started together would stay in step and every hop would see bursts of 50 requests at once.
UPSTREAM_LATENCY_MS = 50
UPSTREAM_LATENCY = f"latency={UPSTREAM_LATENCY_MS}ms"

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

TARGET_GOALS = {
    "rps": 2000.0,  # requests/s through one gateway process
    "p50_c1_ms": 1.0,  # added p50 latency at concurrency 1
    "p99_c50_ms": 5.0,  # added p99 latency at concurrency 50, zero-latency upstream (saturation)
    "p99_c50_upstream_ms": 5.0,  # the same, upstream answering in 50 ms
    "ttft_ms": 1.0,  # added time to first token
}


# ---------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kakin_command(*args: str, switch_interval: float | None = None) -> list[str]:
    """``kakin ARGS`` with this interpreter (so PYTHONPATH picks the code under test);
    ``switch_interval`` sets the process's GIL switch interval (sys.setswitchinterval)."""
    setup = f"sys.setswitchinterval({switch_interval!r}); " if switch_interval else ""
    code = f"import sys; {setup}from kakin.cli import main; sys.argv[0] = 'kakin'; main()"
    return [sys.executable, "-c", code, *args]


def process_cpu(roots: list[int]) -> dict[int, tuple[float, float]]:
    """For each root pid: (CPU seconds of the process itself, all its threads; CPU seconds of
    its descendants) so far. Descendants are found afresh on each call (a child may have been
    restarted); those already exited and waited for count through their parent's cutime."""
    stats: dict[int, tuple[int, float, float]] = {}  # pid → (parent, own, waited-for children)
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            rest = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while scanning
        own = (int(rest[11]) + int(rest[12])) / tick
        stats[int(entry.name)] = (int(rest[1]), own, (int(rest[13]) + int(rest[14])) / tick)
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    result = {}
    for root in roots:
        if root not in stats:
            result[root] = (0.0, 0.0)
            continue
        spent, stack = stats[root][2], list(children.get(root, ()))
        while stack:
            pid = stack.pop()
            spent += stats[pid][1] + stats[pid][2]
            stack += children.get(pid, ())
        result[root] = (stats[root][1], spent)
    return result


def machine_busy_seconds() -> float:
    """CPU seconds spent by everything on the machine (all cores) so far."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


class Servers:
    """Start processes, wait until they accept connections, stop them all at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[Server] = []

    def start(self, name: str, command: list[str], port: int, env: dict[str, str] | None = None) -> Server:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
        server = Server(name, f"http://127.0.0.1:{port}", process, log)
        self.running.append(server)
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return server
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not listen on port {port} within 60 s") from None
                time.sleep(0.05)

    def stop(self, server: Server) -> None:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGINT)  # graceful: in-flight requests settle
            try:
                server.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
        if server in self.running:
            self.running.remove(server)

    def stop_all(self) -> None:
        for server in list(reversed(self.running)):
            self.stop(server)


# ---------------------------------------------------------------------------- ledger


def prepare_ledger(database_url: str) -> tuple[str, str]:
    """An org with a large prepaid grant and a hard-capped monthly budget far above the load;
    returns (org id, the key's plaintext)."""
    from kakin.ledger import Ledger

    with Ledger.open(database_url) as ledger:
        org = ledger.create_org("bench", payment_method=True)
        project = ledger.create_project(org.id, "load")
        _, plaintext = ledger.create_key(project.id, "wrk")
        ledger.grant(org.id, "prepaid", Decimal("1000000"), idempotency_key="bench-prepaid")
        ledger.set_budget(org.id, period="month", limit=Decimal("900000"), hard_cap=True)
    return org.id, plaintext


def ledger_check(database_url: str, org_id: str) -> tuple[int, bool]:
    """Usage records written, and whether the org's ledger reconciles."""
    from sqlalchemy import func, select

    from kakin.ledger import Ledger
    from kakin.ledger import schema as s

    with Ledger.open(database_url) as ledger:
        records = ledger.read(
            lambda conn: conn.execute(select(func.count()).select_from(s.usage_records)).scalar()
        )
        ok = ledger.reconcile(org_id).ok
    return records, ok


def bench_database(workdir: Path, postgres: str | None) -> tuple[str, Callable[[], None]]:
    """An SQLite file in ``workdir``, or a PostgreSQL database made on the server of the admin
    URL ``postgres``; returns its URL and what drops it."""
    if not postgres:
        return f"sqlite:///{workdir / 'kakin.db'}", lambda: None
    import psycopg

    name = f"kakin_bench_{os.getpid()}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return postgres.rsplit("/", 1)[0] + "/" + name, drop


def bench_redis(redis_url: str | None) -> tuple[str, Callable[[], None]]:
    """A key prefix of the benchmark's own on ``redis_url`` and what deletes its keys."""
    if not redis_url:
        return "", lambda: None
    import redis

    prefix = f"kakin-bench:{os.getpid()}:"

    def clean() -> None:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()

    return prefix, clean


# A gateway that writes fewer rollups, for comparison in the same run: this sitecustomize.py
# on its PYTHONPATH runs in the gateway and in its ledger writer (a child process) before kakin.
ROLLUP_SWITCH = '''"""Bench only: this process's ledger writes {keep} rollups."""
from kakin.ledger import rollups
from kakin.ledger.work import Work

if "{keep}" == "no":
    Work._roll_up = lambda self, usage, cost_items: None
else:  # the full tables only, as before the narrower ones
    rollups.TABLES = tuple(table for table in rollups.TABLES if table.full)
'''
ROLLUP_VARIANTS = (  # target name, label, which rollups
    ("gw-full", "gateway, full rollups", "full"),
    ("gw-none", "gateway, no rollups", "no"),
)


def rollup_rows(db_file: Path) -> dict[str, int]:
    """Rows in each rollup table of a ledger (proof of what a gateway wrote)."""
    from kakin.ledger import rollups

    with sqlite3.connect(db_file) as conn:
        return {t.name: conn.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] for t in rollups.TABLES}


def write_config(
    path: Path,
    database_url: str,
    upstream: str,
    accounting: str | None,
    redis_url: str | None = None,
    redis_prefix: str = "",
) -> None:
    lines = [
        "[database]",
        f'url = "{database_url}"',
        "",
        "[[providers]]",
        'name = "simulator"',
        'kind = "simulator"',
        f'base_url = "{upstream}"',
    ]
    lines += ["", "[gateway]", f'journal_dir = "{path.parent / "journals"}"']
    if accounting:
        lines += [f'accounting = "{accounting}"']
    if redis_url:
        lines += ["", "[redis]", f'url = "{redis_url}"', f'prefix = "{redis_prefix}"']
    path.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------- load


@dataclass
class Target:
    name: str
    label: str
    url: str
    key: str = ""
    server: Server | None = None  # the process whose CPU per request is reported


@dataclass
class Run:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    cpu_us: dict[str, float] = field(default_factory=dict)  # server name → CPU µs per request
    child_cpu_us: dict[str, float] = field(default_factory=dict)  # the same, its child processes

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def run_wrk(
    wrk: str, target: Target, body: Path, conns: int, seconds: int, simulate: str = "", spread_ms: int = 0
) -> Run:
    """One wrk run; ``spread_ms`` starts the connections evenly over that many milliseconds."""
    env = {
        **os.environ,
        "KAKIN_BENCH_BODY": str(body),
        "KAKIN_BENCH_KEY": target.key,
        "KAKIN_BENCH_SIMULATE": simulate,
    }
    if spread_ms:
        env |= {"KAKIN_BENCH_SPREAD_MS": str(spread_ms), "KAKIN_BENCH_CONNECTIONS": str(conns)}
    command = [wrk, "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", str(WRK_SCRIPT)]
    done = subprocess.run(
        [*command, target.url + PATH], env=env, capture_output=True, text=True, timeout=seconds + 60
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    data = json.loads(lines[-1])
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Run(
        data["requests"], data["duration_us"] / 1e6, data["p50_us"] / 1e3, data["p99_us"] / 1e3, errors
    )


async def _python_load(
    target: Target,
    body: bytes,
    conns: int,
    seconds: float,
    simulate: str,
    first_event: bool,
    spread_ms: int = 0,
) -> tuple[list[float], list[float], int, float]:
    """Closed-loop load from ``conns`` keep-alive connections, started evenly over ``spread_ms``:
    (latencies, times to the first SSE event, errors, elapsed seconds)."""
    headers = {"content-type": "application/json"}
    if target.key:
        headers["authorization"] = f"Bearer {target.key}"
    if simulate:
        headers["x-kakin-simulate"] = simulate
    latencies: list[float] = []
    firsts: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=conns)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        start = time.perf_counter()
        stop = start + seconds

        async def worker(index: int) -> None:
            nonlocal errors
            await asyncio.sleep(index * spread_ms / conns / 1e3)
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                async with session.post(target.url + PATH, data=body, headers=headers) as response:
                    if first_event:
                        seen = b""
                        async for chunk in response.content.iter_any():
                            seen += chunk
                            if b"\n\n" in seen:
                                firsts.append(time.perf_counter() - t0)
                                break
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker(i) for i in range(conns)))
        elapsed = time.perf_counter() - start
    return latencies, firsts, errors, elapsed


def run_python(
    target: Target, body: Path, conns: int, seconds: float, simulate: str = "", spread_ms: int = 0
) -> Run:
    latencies, _, errors, elapsed = asyncio.run(
        _python_load(
            target, body.read_bytes(), conns, seconds, simulate, first_event=False, spread_ms=spread_ms
        )
    )
    return Run(
        len(latencies), elapsed, percentile(latencies, 50) * 1e3, percentile(latencies, 99) * 1e3, errors
    )


def run_ttft(target: Target, body: Path, conns: int, seconds: float) -> Run:
    """Time to the first SSE event of a paced stream (p50/p99 of the first event, not the whole)."""
    _, firsts, errors, elapsed = asyncio.run(
        _python_load(target, body.read_bytes(), conns, seconds, PACED, first_event=True)
    )
    return Run(len(firsts), elapsed, percentile(firsts, 50) * 1e3, percentile(firsts, 99) * 1e3, errors)


def measured(run_one: object, target: Target, servers: list[Server]) -> Run:
    """Run one load and attach the CPU each server and its child processes spent per completed
    request."""
    pids = [s.pid for s in servers]
    before = process_cpu(pids)
    run = run_one()  # type: ignore[operator]
    after = process_cpu(pids)
    per_request = 1e6 / run.requests if run.requests else float("nan")
    for s in servers:
        run.cpu_us[s.name] = (after[s.pid][0] - before[s.pid][0]) * per_request
        run.child_cpu_us[s.name] = (after[s.pid][1] - before[s.pid][1]) * per_request
    return run


# ---------------------------------------------------------------------------- report


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(
    title: str,
    results: dict[tuple[int, str], list[Run]],
    targets: list[Target],
    with_rps: bool,
    concurrencies: tuple[int, ...] = CONCURRENCY,
) -> list[str]:
    out = [title]
    head = f"  {'conc':>4}  {'target':<22} {'p50 ms':>8} {'p99 ms':>8}"
    head += f" {'req/s':>8}" if with_rps else ""
    head += f" {'Δp50 ms':>9} {'Δp99 ms':>9}"
    head += f" {'req/s ×':>8}" if with_rps else ""
    out.append(head)
    for conns in concurrencies:
        base = results[(conns, "direct")]
        for target in targets:
            runs = results[(conns, target.name)]
            line = f"  {conns:>4}  {target.label:<22} {med([r.p50_ms for r in runs]):8.3f} {med([r.p99_ms for r in runs]):8.3f}"
            line += f" {med([r.rps for r in runs]):8,.0f}" if with_rps else ""
            if target.name == "direct":
                line += f" {'—':>9} {'—':>9}" + (f" {'1.00':>8}" if with_rps else "")
            else:
                d50 = med([r.p50_ms - b.p50_ms for r, b in zip(runs, base, strict=True)])
                d99 = med([r.p99_ms - b.p99_ms for r, b in zip(runs, base, strict=True)])
                line += f" {d50:+9.3f} {d99:+9.3f}"
                if with_rps:
                    line += f" {med([r.rps / b.rps for r, b in zip(runs, base, strict=True)]):8.2f}"
            out.append(line)
    return out


def delta(results: dict[tuple[int, str], list[Run]], conns: int, name: str, attr: str) -> float:
    runs, base = results[(conns, name)], results[(conns, "direct")]
    return med([getattr(r, attr) - getattr(b, attr) for r, b in zip(runs, base, strict=True)])


# ---------------------------------------------------------------------------- profile


COMPONENTS = (
    # (component, path fragments); the innermost frame that matches one names the sample.
    ("token counting (kakin.tokens, tiktoken)", ("kakin/tokens/", "tiktoken")),
    ("pricing + catalog", ("kakin/pricing/", "kakin/catalog/")),
    ("request parse / stream meter (kakin.providers)", ("kakin/providers/",)),
    ("ledger write (SQLAlchemy + sqlite3)", ("kakin/ledger/", "sqlalchemy/", "sqlite3/")),
    ("committer queue", ("kakin/gateway/committer.py",)),
    ("accounting (holds, account views)", ("kakin/gateway/accounting.py",)),
    ("key lookup", ("kakin/gateway/keys.py",)),
    ("rate limits", ("kakin/limits/",)),
    ("alerts", ("kakin/alerts/",)),
    ("upstream client (kakin.gateway.client)", ("kakin/gateway/client.py",)),
    ("gateway request flow (kakin.gateway)", ("kakin/gateway/",)),
    ("money / decimal", ("kakin/money.py", "decimal.py", "_pydecimal")),
    ("uvicorn + httptools (server)", ("uvicorn/", "httptools/")),
    ("event loop (asyncio/uvloop)", ("asyncio/", "uvloop/")),
)


def _frame(text: str) -> tuple[str, str]:
    """py-spy raw frame 'function (file:line)' → (function, file)."""
    if text.endswith(")") and " (" in text:
        func, where = text[:-1].rsplit(" (", 1)
        return func, where.rsplit(":", 1)[0]
    return text, ""


def _outer(path: str) -> bool:
    """Frames every sample of the main thread shares (the CLI and the server's run call)."""
    return "kakin/cli/" in path or path.endswith(("kakin/server.py", "kakin/serving.py"))


def analyse_profile(raw: Path) -> list[str]:
    threads: dict[str, int] = {}
    components: dict[str, int] = {}
    selfs: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        py_frames = [_frame(f) for f in frames if not f.startswith(("thread (", "process "))]
        if not py_frames:
            continue
        total += count
        thread = next((f for f in frames if f.startswith("thread (")), "thread ?")
        name = thread.split(": ", 1)[-1]
        threads[name] = threads.get(name, 0) + count
        func, file = py_frames[-1]
        short = file.split("site-packages/")[-1].split("/src/")[-1]
        selfs[f"{func} ({short})"] = selfs.get(f"{func} ({short})", 0) + count
        for name in {
            f"{fn} ({fl.split('/src/')[-1]})" for fn, fl in py_frames if "kakin/" in fl and not _outer(fl)
        }:
            inclusive[name] = inclusive.get(name, 0) + count
        component = "other (stdlib and the rest)"
        for _, path in reversed(py_frames):
            hit = next((c for c, parts in COMPONENTS if any(p in path for p in parts)), None)
            if hit:
                component = hit
                break
        components[component] = components.get(component, 0) + count
    if not total:
        return ["  (no samples)"]
    out = [
        f"  {total} samples; by thread: "
        + ", ".join(
            f"{k} {v / total:.0%}"
            for k, v in sorted(threads.items(), key=lambda kv: -kv[1])
            if v / total >= 0.01
        )
    ]
    out.append("  by component (innermost matching frame):")
    for name, count in sorted(components.items(), key=lambda kv: -kv[1]):
        out.append(f"    {count / total:6.1%}  {name}")
    out.append("  top functions by own time:")
    for name, count in sorted(selfs.items(), key=lambda kv: -kv[1])[:15]:
        out.append(f"    {count / total:6.1%}  {name}")
    out.append("  kakin functions by inclusive time (themselves and all they call):")
    for name, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:14]:
        out.append(f"    {count / total:6.1%}  {name}")
    return out


def profile(gateway: Target, wrk: str | None, bodies: dict[str, Path], workdir: Path) -> list[str]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return ["profile: py-spy not found (pip install py-spy); skipped"]
    assert gateway.server is not None
    out: list[str] = []
    seconds = 6
    # All samples show where the process spends time, waits for the GIL included; --gil keeps
    # only the samples of the thread holding the GIL: the serialised Python work that caps
    # throughput in one process.
    for mode, conns, gil in (
        ("plain", 50, False),
        ("plain", 50, True),
        ("stream", 50, True),
        ("plain", 1, False),
    ):
        raw = workdir / f"profile-{mode}-c{conns}{'-gil' if gil else ''}.txt"
        command = [spy, "record", "--pid", str(gateway.server.pid), "--duration", str(seconds)]
        command += ["--rate", "200", "--nonblocking", "--threads", "--format", "raw", "-o", str(raw)]
        command += ["--gil"] if gil else []
        spy_proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        if wrk:
            run_wrk(wrk, gateway, bodies[mode], conns, seconds + 1)
        else:
            run_python(gateway, bodies[mode], conns, seconds + 1)
        _, err = spy_proc.communicate(timeout=60)
        label = "non-streaming" if mode == "plain" else "streaming"
        which = "samples holding the GIL" if gil else "all samples"
        out.append(
            f"profile: py-spy, gateway process, {label}, concurrency {conns}, {which}, {seconds} s at 200 Hz"
        )
        out.append(f"  ({raw}; {seconds * 200} samples = one thread busy all the time)")
        if not raw.exists():
            out.append(f"  py-spy failed: {err.decode(errors='replace').strip()[-500:]}")
            continue
        out += analyse_profile(raw)
    return out


# ---------------------------------------------------------------------------- main


def rollup_comparison(
    gateways: list[Target],
    plain: dict[tuple[int, str], list[Run]],
    stream: dict[tuple[int, str], list[Run]],
    written: dict[str, dict[str, int]],
) -> list[str]:
    """Throughput and CPU of the gateways writing all, the full or no rollups, measured in
    the same rounds: each ratio is per round, to the no-rollup gateway of that round."""
    out = [
        "rollups on the charge path (req/s × = ratio to the no-rollup gateway of the same round, median; "
        "CPU µs per request, median: gateway process / ledger writer)"
    ]
    out.append(
        f"  {'mode':<14} {'conc':>4}  {'target':<22} {'req/s':>8} {'req/s ×':>8} {'gw µs':>7} {'writer µs':>9}"
    )
    for mode, results in (("non-streaming", plain), ("streamed", stream)):
        for conns in CONCURRENCY:
            base = results[(conns, "gw-none")]
            for target in gateways:
                runs = results[(conns, target.name)]
                ratio = med([r.rps / b.rps for r, b in zip(runs, base, strict=True)])
                gw = med([r.cpu_us[target.name] for r in runs])
                writer = med([r.child_cpu_us[target.name] for r in runs])
                out.append(
                    f"  {mode:<14} {conns:>4}  {target.label:<22} {med([r.rps for r in runs]):8,.0f} "
                    f"{ratio:8.3f} {gw:7.0f} {writer:9.0f}"
                )
    for name, rows in written.items():
        out.append(f"  rollup rows written by {name}: " + ", ".join(f"{t} {n:,}" for t, n in rows.items()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="gateway overhead against direct calls to the simulator")
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s runs (about a minute)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3, --quick 1)")
    parser.add_argument("--profile", action="store_true", help="then profile the gateway with py-spy")
    parser.add_argument(
        "--accounting", choices=("local", "shared", "auto"), default=None, help="gateway.accounting to run"
    )
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        default=None,
        help="ledger on PostgreSQL: a database made (and dropped) on this server, e.g. "
        "postgresql://postgres@127.0.0.1:5432/test (default: an SQLite file)",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help="set redis.url (a key prefix of the run's own): with --postgres, shared accounting keeps "
        "its holds there",
    )
    parser.add_argument(
        "--no-wrk", action="store_true", help="use the Python load generator even if wrk exists"
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="instead: kakin's modes and LiteLLM's proxy side by side (req/s c=1 and c=50, p50, TTFT)",
    )
    parser.add_argument(
        "--modes",
        default=",".join(COMPARE_MODES),
        help=f"with --compare, which of {', '.join(COMPARE_MODES)} (comma-separated)",
    )
    parser.add_argument(
        "--litellm-version", default=LITELLM_VERSION, help="with --compare: the LiteLLM to install"
    )
    parser.add_argument(
        "--rollups",
        action="store_true",
        help="also measure, in the same rounds, gateways writing only the full rollups and none (SQLite)",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="GIL switch interval of the gateway process in seconds (Python's default is 0.005)",
    )
    args = parser.parse_args()
    if args.rollups and args.postgres:
        parser.error("--rollups compares SQLite ledgers; leave out --postgres")
    if args.compare:
        compare(args)
        return
    rounds = args.rounds or (1 if args.quick else 3)
    seconds = 1 if args.quick else 2
    ttft_seconds = 1.0 if args.quick else 1.5
    latency_seconds = 1 if args.quick else 3  # more samples for a p99
    wrk = None if args.no_wrk else shutil.which("wrk")

    started = time.monotonic()
    busy0, load0 = machine_busy_seconds(), os.getloadavg()
    self0 = os.times()
    workdir = Path(tempfile.mkdtemp(prefix="kakin-bench-gw-"))
    servers = Servers(workdir)
    cleanups: list[Callable[[], None]] = []
    print("kakin gateway benchmark")
    print(
        f"  machine: {os.cpu_count()} cores, load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} at start"
    )
    if wrk:
        print(f"  load generator: {wrk} (-t1), {rounds} round(s) of {seconds} s runs")
    else:
        print(
            f"  load generator: wrk NOT FOUND (or --no-wrk): Python aiohttp client, {rounds} round(s) of {seconds} s"
        )
        print("    (the client shares this process's core budget; its own cost inflates every latency alike)")
    print(f"  time to first token: aiohttp client, paced stream ({PACED}), {ttft_seconds} s runs")
    print(
        f"  upstream answering late: c=50, non-streaming, {UPSTREAM_LATENCY}, connections started "
        f"{UPSTREAM_LATENCY_MS / 50:g} ms apart, {latency_seconds} s runs"
    )

    bodies = {
        "plain": workdir / "plain.json",
        "stream": workdir / "stream.json",
    }
    bodies["plain"].write_text(json.dumps(PROMPT))
    bodies["stream"].write_text(json.dumps({**PROMPT, "stream": True}))

    try:
        sim_port = free_port()
        simulator = servers.start("simulator", kakin_command("simulate", "--port", str(sim_port)), sim_port)
        database_url, drop_database = bench_database(workdir, args.postgres)
        cleanups.append(drop_database)
        redis_prefix, clean_redis = bench_redis(args.redis)
        cleanups.append(clean_redis)
        org_id, key = prepare_ledger(database_url)
        config = workdir / "kakin.toml"
        write_config(config, database_url, simulator.url, args.accounting, args.redis, redis_prefix)
        gw_port = free_port()
        gateway = servers.start(
            "gateway",
            kakin_command(
                "serve", "--config", str(config), "--port", str(gw_port), switch_interval=args.switch_interval
            ),
            gw_port,
        )
        proxy_port = free_port()
        proxy = servers.start(
            "proxy",
            [sys.executable, str(PROXY_SCRIPT), "--port", str(proxy_port), "--upstream", simulator.url],
            proxy_port,
        )
        targets = [
            Target("direct", "direct (simulator)", simulator.url, server=simulator),
            Target("again", "direct again (A/A)", simulator.url, server=simulator),
            Target("proxy", "bare proxy", proxy.url, server=proxy),
            Target("gateway", "kakin gateway", gateway.url, key, server=gateway),
        ]
        gw_target = targets[-1]
        variant_dbs: dict[str, Path] = {}
        for name, label, keep in ROLLUP_VARIANTS if args.rollups else ():
            home = workdir / name
            home.mkdir()
            (home / "sitecustomize.py").write_text(ROLLUP_SWITCH.format(keep=keep))
            variant_dbs[name] = home / "kakin.db"
            variant_url = f"sqlite:///{variant_dbs[name]}"
            _, variant_key = prepare_ledger(variant_url)
            write_config(home / "kakin.toml", variant_url, simulator.url, args.accounting)
            path = os.pathsep.join(filter(None, (str(home), os.environ.get("PYTHONPATH"))))
            port = free_port()
            command = kakin_command(
                "serve",
                "--config",
                str(home / "kakin.toml"),
                "--port",
                str(port),
                switch_interval=args.switch_interval,
            )
            server = servers.start(name, command, port, env={**os.environ, "PYTHONPATH": path})
            targets.append(Target(name, label, server.url, variant_key, server=server))
        from kakin.config import load_settings

        settings = load_settings(config)
        mode = settings.gateway.accounting_mode(database_url)
        if settings.gateway.holds_in_redis(database_url, settings.redis.url):
            mode += " (holds in Redis)"
        interval = args.switch_interval or sys.getswitchinterval()
        where = (
            "PostgreSQL ledger (a database of its own)" if args.postgres else f"SQLite ledger in {workdir}"
        )
        print(
            f"  gateway: kakin serve, accounting {mode}, GIL switch interval {interval * 1e3:g} ms, {where}"
        )

        def load(
            target: Target, mode: str, conns: int, secs: float, simulate: str = "", spread_ms: int = 0
        ) -> Run:
            watched = [s for s in (target.server, simulator) if s is not None]
            watched = list({s.name: s for s in watched}.values())
            if wrk:
                return measured(
                    lambda: run_wrk(wrk, target, bodies[mode], conns, int(secs), simulate, spread_ms),
                    target,
                    watched,
                )
            return measured(
                lambda: run_python(target, bodies[mode], conns, secs, simulate, spread_ms), target, watched
            )

        # Warm up every path (keys, account views, token encoders, connection pools).
        for target in targets[2:]:
            for mode in bodies:
                load(target, mode, 10, 1)
            run_ttft(target, bodies["stream"], 2, 0.3)

        answered = 0
        plain: dict[tuple[int, str], list[Run]] = {}
        stream: dict[tuple[int, str], list[Run]] = {}
        ttft: dict[tuple[int, str], list[Run]] = {}
        late: dict[tuple[int, str], list[Run]] = {}  # upstream answering after UPSTREAM_LATENCY
        for r in range(rounds):
            order = targets[r % len(targets) :] + targets[: r % len(targets)]
            for conns in CONCURRENCY:
                for mode, results in (("plain", plain), ("stream", stream)):
                    for target in order:
                        run = load(target, mode, conns, seconds)
                        if run.errors:
                            raise RuntimeError(f"{target.label}, {mode}, c={conns}: {run.errors} errors")
                        answered += run.requests if target is gw_target else 0
                        results.setdefault((conns, target.name), []).append(run)
                for target in order:
                    run = measured(
                        lambda t=target, c=conns: run_ttft(t, bodies["stream"], c, ttft_seconds),
                        target,
                        [s for s in (target.server,) if s is not None],
                    )
                    if run.errors:
                        raise RuntimeError(f"{target.label}, ttft, c={conns}: {run.errors} errors")
                    answered += run.requests if target is gw_target else 0
                    ttft.setdefault((conns, target.name), []).append(run)
            for target in order:
                run = load(target, "plain", 50, latency_seconds, UPSTREAM_LATENCY, UPSTREAM_LATENCY_MS)
                if run.errors:
                    raise RuntimeError(f"{target.label}, {UPSTREAM_LATENCY}, c=50: {run.errors} errors")
                answered += run.requests if target is gw_target else 0
                late.setdefault((50, target.name), []).append(run)
            print(f"  round {r + 1}/{rounds} done at {time.monotonic() - started:.0f} s", flush=True)

        profile_lines = profile(gw_target, wrk, bodies, workdir) if args.profile else []
        servers.stop(gateway)
        records, reconciled = ledger_check(database_url, org_id)
        written: dict[str, dict[str, int]] = {}
        if args.rollups:
            written["gateway"] = rollup_rows(workdir / "kakin.db")
        for target in targets[4:]:
            assert target.server is not None
            servers.stop(target.server)
            written[target.name] = rollup_rows(variant_dbs[target.name])
    finally:
        servers.stop_all()
        for cleanup in cleanups:
            cleanup()

    # Every server has exited and been waited for by now, so the children's times hold them all
    # with what each waited for in turn (the gateway's ledger writer), and every wrk run.
    self1 = os.times()
    ours = (self1.user - self0.user + self1.system - self0.system) + (
        self1.children_user - self0.children_user + self1.children_system - self0.children_system
    )
    wall = time.monotonic() - started
    others = max(0.0, machine_busy_seconds() - busy0 - ours)
    load1 = os.getloadavg()

    print()
    n = f"median of {rounds} round{'s' if rounds > 1 else ''}"
    lines = table(
        f"non-streaming chat completion ({n}; Δ = target − direct of the same round; req/s × = ratio to direct)",
        plain,
        targets,
        True,
    )
    lines += [""]
    lines += table(f"streamed chat completion, whole response, unpaced stream ({n})", stream, targets, True)
    lines += [""]
    lines += table(f"time to first token, paced stream '{PACED}' ({n})", ttft, targets, False)
    lines += [""]
    lines += table(
        f"non-streaming chat completion, upstream answering after {UPSTREAM_LATENCY_MS} ms '{UPSTREAM_LATENCY}', "
        f"connections started spread over that time ({n})",
        late,
        targets,
        True,
        concurrencies=(50,),
    )
    lines += [""]
    lines.append(
        "CPU per request (µs, median; each server's own process, all its threads; gateway = its event-loop "
        "process, writer = its child processes, the ledger writer) and gateway load"
    )
    lines.append(
        f"  {'mode':<14} {'conc':>4} {'simulator':>9} {'proxy':>7} {'gateway':>8} {'writer':>7} {'gw cores':>8}"
    )
    for mode, results in (("non-streaming", plain), ("streamed", stream)):
        for conns in CONCURRENCY:
            sim = med([r.cpu_us["simulator"] for r in results[(conns, "direct")]])
            hop = med([r.cpu_us["proxy"] for r in results[(conns, "proxy")]])
            runs = results[(conns, "gateway")]
            gw = med([r.cpu_us["gateway"] for r in runs])
            writer = med([r.child_cpu_us["gateway"] for r in runs])
            cores = med([r.cpu_us["gateway"] * r.rps / 1e6 for r in runs])
            lines.append(
                f"  {mode:<14} {conns:>4} {sim:9.0f} {hop:7.0f} {gw:8.0f} {writer:7.0f} {cores:8.2f}"
            )
    if args.rollups:
        lines += ["", *rollup_comparison(targets[3:], plain, stream, written)]
    for mode, results in (("non-streaming", plain), ("streamed", stream)):
        capacity = 1e6 / med([r.cpu_us["gateway"] for r in results[(50, "gateway")]])
        lines.append(
            f"  gateway event-loop process CPU-bound capacity, {mode}, c=50: {capacity:,.0f} req/s per busy core"
        )
    totals = [
        f"{mode} {med([r.cpu_us['gateway'] + r.child_cpu_us['gateway'] for r in results[(50, 'gateway')]]):,.0f} µs"
        for mode, results in (("non-streaming", plain), ("streamed", stream))
    ]
    lines.append(f"  gateway + writer CPU per request, c=50: {', '.join(totals)}")

    g = TARGET_GOALS

    def latency_row(
        label: str, results: dict[tuple[int, str], list[Run]], conns: int, attr: str, goal: float
    ) -> tuple[str, str, str, bool, str]:
        added = delta(results, conns, "gateway", attr)
        controls = f"A/A {delta(results, conns, 'again', attr):+.3f}, bare proxy {delta(results, conns, 'proxy', attr):+.3f}"
        return label, f"{added:+8.3f} ms", f"≤ {goal} ms", added <= goal, controls

    rps = med([r.rps for r in plain[(50, "gateway")]])
    rows = [
        (
            "requests/s through one gateway process (c=50)",
            f"{rps:8,.0f}",
            f"≥ {g['rps']:,.0f}",
            rps >= g["rps"],
            f"direct {med([r.rps for r in plain[(50, 'direct')]]):,.0f}, "
            f"bare proxy {med([r.rps for r in plain[(50, 'proxy')]]):,.0f}",
        ),
        latency_row("added p50 latency at c=1", plain, 1, "p50_ms", g["p50_c1_ms"]),
        latency_row(
            "added p99 latency at c=50 (zero-latency upstream: saturation)",
            plain,
            50,
            "p99_ms",
            g["p99_c50_ms"],
        ),
        latency_row(
            f"added p99 latency at c=50, upstream answering in {UPSTREAM_LATENCY_MS} ms",
            late,
            50,
            "p99_ms",
            g["p99_c50_upstream_ms"],
        ),
        latency_row("added time to first token p50 at c=1", ttft, 1, "p50_ms", g["ttft_ms"]),
    ]
    width = max(len(row[0]) for row in rows)
    lines += ["", "targets (A/A = the noise floor; bare proxy = the cost of any Python hop here)"]
    for label, value, goal, ok, controls in rows:
        lines.append(f"  {label:<{width}}  {value:<11}  {goal:<9}  {'PASS' if ok else 'FAIL'}   ({controls})")
    lines += [""]
    lines.append(
        f"ledger: {records} usage records for {answered} requests answered through the gateway "
        f"(plus warm-up and cut-off ones); reconciles: {reconciled}"
    )
    lines.append(
        f"load: {wall:.0f} s wall; this benchmark's processes used {ours / wall:.2f} cores, "
        f"everything else on the machine {others / wall:.2f} cores; load average "
        f"{load0[0]:.2f} → {load1[0]:.2f}"
    )
    if profile_lines:
        lines += ["", *profile_lines]
    print("\n".join(lines))


# ---------------------------------------------------------------------------- side by side

# Modes ``--compare`` can measure (``--modes`` picks some); the simulator alone is the baseline.
COMPARE_MODES = {
    "local": "kakin, local accounting (SQLite + journal)",
    "local-nometrics": "kakin, local, metrics off",
    "shared-pg": "kakin, shared (PostgreSQL)",
    "shared-redis": "kakin, shared (PG) + Redis",
    "workers2": "kakin, shared (PG), --workers 2",
    "litellm": "LiteLLM proxy (no database)",
}
LITELLM_VENV = Path("/tmp/kakin-bench-litellm")
LITELLM_VERSION = "1.106.12"
LITELLM_MASTER_KEY = "sk-litellm-bench"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
# The same 2-delta pacing for LiteLLM, which does not pass a client's x-kakin-simulate header
# upstream: its "paced" model sends it itself (litellm_params.extra_headers).
PACED_MODEL = "gpt-4o-mini-paced"


def install_litellm(version: str) -> Path:
    """LiteLLM's proxy in a virtual environment of its own (never a kakin dependency),
    installed from the package registry with pip on first use; returns its ``litellm``."""
    executable = LITELLM_VENV / "bin" / "litellm"
    pip = LITELLM_VENV / "bin" / "pip"
    if executable.exists():
        shown = subprocess.run([str(pip), "show", "litellm"], capture_output=True, text=True).stdout
        if f"Version: {version}" in shown:
            return executable
    if not pip.exists():
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    print(f"  installing litellm[proxy]=={version} into {LITELLM_VENV} …", flush=True)
    subprocess.run([str(pip), "install", "-q", f"litellm[proxy]=={version}"], check=True)
    return executable


def litellm_config(path: Path, upstream: str) -> None:
    """Both models point at the simulator; a master key and no database_url (so no spend
    logging: LiteLLM's spend tracking needs PostgreSQL through Prisma, whose client and
    engines are generated and fetched at start, which cannot happen offline)."""
    models = []
    for name, headers in (("gpt-4o-mini", ""), (PACED_MODEL, f'{{"x-kakin-simulate": "{PACED}"}}')):
        models += [
            f"  - model_name: {name}",
            "    litellm_params:",
            "      model: openai/gpt-4o-mini",
            f"      api_base: {upstream}/v1",
            "      api_key: sk-simulated",
        ]
        if headers:
            models.append(f"      extra_headers: {headers}")
    path.write_text(
        "\n".join(["model_list:", *models, "general_settings:", f"  master_key: {LITELLM_MASTER_KEY}", ""])
    )


def pg_database() -> str:
    """A PostgreSQL database of this run's own (dropped at the end by drop_pg_database)."""
    import psycopg

    name = f"kakin_bench_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def prepare_tenant(database_url: str, name: str) -> tuple[str, str]:
    """As prepare_ledger, with rate limits on the key far above the load, so each request
    passes the limiter's check (in memory, or one EVALSHA in Redis) without being refused."""
    from kakin.ledger import Ledger

    with Ledger.open(database_url) as ledger:
        org = ledger.create_org(name, payment_method=True)
        project = ledger.create_project(org.id, "load")
        _, plaintext = ledger.create_key(project.id, "wrk", rpm=100_000_000, tpm=100_000_000_000)
        ledger.grant(org.id, "prepaid", Decimal("1000000"), idempotency_key="bench-prepaid")
        ledger.set_budget(org.id, period="month", limit=Decimal("900000"), hard_cap=True)
    return org.id, plaintext


def tenant_check(database_url: str, org_id: str) -> tuple[int, bool]:
    """Usage records of the org, and whether its ledger reconciles."""
    from sqlalchemy import text

    from kakin.ledger import Ledger

    with Ledger.open(database_url) as ledger:
        with ledger.engine.connect() as conn:
            records = conn.execute(
                text("SELECT count(*) FROM usage_records WHERE org_id = :org"), {"org": org_id}
            ).scalar_one()
        return int(records), ledger.reconcile(org_id).ok


def compare(args: argparse.Namespace) -> None:
    """kakin's accounting modes, with and without metrics, with two workers, and LiteLLM's
    proxy, against the simulator alone: req/s at c=1 and c=50, added p50 and time to first token."""
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in COMPARE_MODES]
    if unknown:
        raise SystemExit(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(COMPARE_MODES)}")
    rounds = args.rounds or (1 if args.quick else 3)
    seconds = 1 if args.quick else 2
    ttft_seconds = 1.0 if args.quick else 1.5
    wrk = None if args.no_wrk else shutil.which("wrk")
    started = time.monotonic()
    busy0, load0 = machine_busy_seconds(), os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="kakin-bench-cmp-"))
    servers = Servers(workdir)
    print("kakin gateway side by side")
    print(
        f"  machine: {os.cpu_count()} cores, load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} at start"
    )
    print(
        f"  load: {'wrk -t1' if wrk else 'Python aiohttp client'}, {rounds} round(s) of {seconds} s runs; TTFT {PACED}"
    )
    litellm = install_litellm(args.litellm_version) if "litellm" in modes else None
    pg_url = pg_database() if any(m in modes for m in ("shared-pg", "shared-redis", "workers2")) else ""
    redis_prefix = f"kakin-bench:{os.getpid()}:"
    checks: list[tuple[str, str, str]] = []  # (mode, database url, org id)
    targets: list[Target] = []
    answered: dict[str, int] = {}
    try:
        sim_port = free_port()
        simulator = servers.start("simulator", kakin_command("simulate", "--port", str(sim_port)), sim_port)
        targets.append(Target("direct", "direct (simulator)", simulator.url, server=simulator))
        for mode in modes:
            port = free_port()
            if mode == "litellm":
                assert litellm is not None
                config = workdir / "litellm.yaml"
                litellm_config(config, simulator.url)
                command = [str(litellm), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
                command += ["--num_workers", "1"]
                os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no fetch of the price list at start
                server = servers.start("litellm", command, port)
                targets.append(
                    Target(mode, COMPARE_MODES[mode], server.url, LITELLM_MASTER_KEY, server=server)
                )
                continue
            local = mode.startswith("local")
            database = f"sqlite:///{workdir / (mode + '.db')}" if local else pg_url
            org_id, key = prepare_tenant(database, f"bench-{mode}")
            checks.append((mode, database, org_id))
            config = workdir / f"{mode}.toml"
            write_config(config, database, simulator.url, "local" if local else "shared")
            extra = []
            if mode == "local-nometrics":
                extra = ["", "[metrics]", "enabled = false"]
            if mode == "shared-redis":
                extra = ["", "[redis]", f'url = "{REDIS_URL}"', f'prefix = "{redis_prefix}"']
            if extra:
                config.write_text(config.read_text() + "\n".join(extra) + "\n")
            command = ["serve", "--config", str(config), "--port", str(port)]
            if mode == "workers2":
                command += ["--workers", "2"]
            server = servers.start(mode, kakin_command(*command), port)
            if mode == "workers2":
                wait_for_workers(server.url, key)
            targets.append(Target(mode, COMPARE_MODES[mode], server.url, key, server=server))
        bodies = {
            "plain": workdir / "plain.json",
            "stream": workdir / "stream.json",
            "paced": workdir / "paced.json",
        }
        bodies["plain"].write_text(json.dumps(PROMPT))
        bodies["stream"].write_text(json.dumps({**PROMPT, "stream": True}))
        bodies["paced"].write_text(json.dumps({**PROMPT, "model": PACED_MODEL, "stream": True}))

        def ttft_body(target: Target) -> Path:
            return bodies["paced"] if target.name == "litellm" else bodies["stream"]

        def plain(target: Target, conns: int, secs: float) -> Run:
            watched = [s for s in (target.server, simulator) if s is not None]
            watched = list({s.name: s for s in watched}.values())
            if wrk:
                return measured(
                    lambda: run_wrk(wrk, target, bodies["plain"], conns, int(secs)), target, watched
                )
            return measured(lambda: run_python(target, bodies["plain"], conns, secs), target, watched)

        for target in targets[1:]:  # warm up: keys, account views, encoders, pools
            plain(target, 10, 1)
            run_ttft(target, ttft_body(target), 2, 0.3)
        results: dict[tuple[str, str], list[Run]] = {}
        for r in range(rounds):
            order = targets[r % len(targets) :] + targets[: r % len(targets)]
            for target in order:
                for kind, conns in (("c1", 1), ("c50", 50)):
                    run = plain(target, conns, seconds)
                    if run.errors:
                        raise RuntimeError(f"{target.label}, c={conns}: {run.errors} errors")
                    results.setdefault((kind, target.name), []).append(run)
                    answered[target.name] = answered.get(target.name, 0) + run.requests
                run = run_ttft(target, ttft_body(target), 1, ttft_seconds)
                if run.errors:
                    raise RuntimeError(f"{target.label}, ttft: {run.errors} errors")
                results.setdefault(("ttft", target.name), []).append(run)
            print(f"  round {r + 1}/{rounds} done at {time.monotonic() - started:.0f} s", flush=True)
        for target in targets[1:]:
            if target.server is not None and target.name != "litellm":
                servers.stop(target.server)
        ledgers = [(mode, *tenant_check(database, org_id)) for mode, database, org_id in checks]
    finally:
        servers.stop_all()
        if pg_url:
            drop_pg_database(pg_url)
        if "shared-redis" in modes:
            _drop_redis_keys(redis_prefix)
    wall = time.monotonic() - started
    others = max(0.0, machine_busy_seconds() - busy0)
    load1 = os.getloadavg()
    print_comparison(targets, results, rounds)
    print()
    for mode, records, ok in ledgers:
        print(
            f"ledger ({mode}): {records} usage records for {answered.get(mode, 0)} requests measured (plus warm-up); reconciles: {ok}"
        )
    print(
        f"load: {wall:.0f} s wall; the whole machine was busy {others / wall:.2f} cores on average "
        f"(this benchmark and everything else); load average {load0[0]:.2f} → {load1[0]:.2f}"
    )


def wait_for_workers(url: str, key: str, timeout: float = 120) -> None:
    """``--workers``: the port accepts once the supervisor listens; wait until a request is answered."""
    import urllib.request

    deadline = time.monotonic() + timeout
    request = urllib.request.Request(
        url + PATH,
        data=json.dumps(PROMPT).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status == 200:
                    time.sleep(5)  # the other worker may still be starting
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"--workers gateway at {url} did not answer within {timeout} s")
        time.sleep(0.5)


def _drop_redis_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def print_comparison(targets: list[Target], results: dict[tuple[str, str], list[Run]], rounds: int) -> None:
    print()
    print(
        f"non-streaming chat completion, zero-latency upstream (median of {rounds}); Δ = target − direct of the "
        "same round; CPU = the server process and its children (µs per request, c=50)"
    )
    head = f"  {'target':<44} {'req/s c=1':>9} {'req/s c=50':>10} {'Δp50 c=1':>9} {'ΔTTFT c=1':>10} {'CPU µs':>7}"
    print(head)
    base = {kind: results[(kind, "direct")] for kind in ("c1", "c50", "ttft")}
    rps50: dict[str, float] = {}
    for target in targets:
        c1, c50, ttft = (results[(k, target.name)] for k in ("c1", "c50", "ttft"))
        rps50[target.name] = med([r.rps for r in c50])
        cpu = med([r.cpu_us.get(target.name, 0) + r.child_cpu_us.get(target.name, 0) for r in c50])
        if target.name == "direct":
            cpu = med([r.cpu_us["simulator"] for r in c50])
            d50 = dttft = "—"
        else:
            d50 = f"{med([r.p50_ms - b.p50_ms for r, b in zip(c1, base['c1'], strict=True)]):+.3f}"
            dttft = f"{med([r.p50_ms - b.p50_ms for r, b in zip(ttft, base['ttft'], strict=True)]):+.3f}"
        print(
            f"  {target.label:<44} {med([r.rps for r in c1]):9,.0f} {rps50[target.name]:10,.0f} "
            f"{d50:>9} {dttft:>10} {cpu:7,.0f}"
        )
    if "litellm" in rps50:
        print()
        for name in ("local", "shared-pg", "shared-redis", "workers2"):
            if name in rps50:
                ratio = rps50[name] / rps50["litellm"]
                goal = (
                    " (target ≥ 40×: " + ("PASS" if ratio >= 40 else "FAIL") + ")" if name == "local" else ""
                )
                print(f"  {COMPARE_MODES[name]} ÷ LiteLLM, req/s at c=50: {ratio:,.1f}×{goal}")
    if "local" in rps50 and "local-nometrics" in rps50:
        on = med([r.cpu_us["local"] for r in results[("c50", "local")]])
        off = med([r.cpu_us["local-nometrics"] for r in results[("c50", "local-nometrics")]])
        print(
            f"  metrics on ÷ off, req/s at c=50: {rps50['local'] / rps50['local-nometrics']:.3f}; "
            f"event-loop CPU per request {on:,.0f} vs {off:,.0f} µs ({on - off:+,.0f} µs)"
        )
    if "workers2" in rps50 and "shared-pg" in rps50:
        print(
            f"  --workers 2 ÷ 1 worker (shared, PostgreSQL), req/s at c=50: {rps50['workers2'] / rps50['shared-pg']:.2f}"
        )


if __name__ == "__main__":
    main()

"""Ledger throughput: reserve + settle pairs per second and their latency.

Runs on SQLite (a temporary file) and on PostgreSQL (a temporary database made and dropped
here, when 127.0.0.1:5432 answers). For each backend:

* baseline — one writer, every operation its own transaction (reserve, commit, settle, commit);
* 16 writers — the same from 16 threads at once, each for its own organisation;
* group commit — C concurrent requests (asyncio tasks, as in the gateway) hand their
  operations to committer threads that run everything queued as one ``Ledger.batch``
  (with two committers: sharing one queue, or each serving its own organisations);
* batch driver — the ledger alone, no request overhead: each transaction carries N new
  reservations and the settles of the previous N.

Figures are ratios against the baseline of the same backend in the same run; each scenario
runs ``--repeat`` times and the fastest run is kept (on a shared machine the others measure
everyone else's load). CPU µs/pair is what this process and its PostgreSQL backends spend
per pair, which other load hardly changes. Every commit is
durable as its backend defines it: SQLite WAL with synchronous=NORMAL survives a process
crash (not power loss); PostgreSQL with synchronous_commit=on is on disk before it returns.

    .venv/bin/python bench/bench_ledger.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from decimal import Decimal
from pathlib import Path

from kakin.errors import KakinError
from kakin.ledger import Ledger, PostOp, ReserveOp, Scope, SettleOp, UsageDetail

PG_ADMIN = os.environ.get("KAKIN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
USAGE = UsageDetail(
    provider="sim", input_tokens=900, output_tokens=300, cost_items=[{"unit": "input", "n": 900}]
)
ESTIMATE = Decimal("0.002")
ACTUAL = Decimal("0.0015")
ORGS = 16


def scopes(ledger: Ledger, orgs: int) -> list[Scope]:
    """Organisations with free and prepaid credit, a payment method, an org and a project
    budget (hard caps, so every reserve checks them), a project and a key."""
    out = []
    for n in range(orgs):
        org = ledger.create_org(f"bench-{n}-{uuid.uuid4().hex[:6]}", payment_label="card")
        project = ledger.create_project(org.id, "api")
        key, _ = ledger.create_key(project.id, "k")
        ledger.grant(org.id, "promotional", "500", idempotency_key="promo")
        ledger.grant(org.id, "prepaid", "5000", idempotency_key="prepaid")
        ledger.set_budget(org.id, limit="1000000", hard_cap=True)
        ledger.set_budget(
            org.id, scope="project", scope_ref=project.id, period="day", limit="1000000", hard_cap=True
        )
        out.append(Scope(org.id, project.id, key.id, "gpt-4o-mini"))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Result:
    def __init__(self, label: str, pairs: int, seconds: float, latencies: list[float]) -> None:
        self.label, self.pairs, self.seconds, self.latencies = label, pairs, seconds, latencies
        self.cpu = 0.0  # seconds of CPU: this process plus its PostgreSQL backends

    @property
    def rate(self) -> float:
        return self.pairs / self.seconds

    @property
    def cpu_per_pair(self) -> float:
        return self.cpu / self.pairs


class CpuMeter:
    """CPU time of this process and of the PostgreSQL backends serving ``database``.

    On a shared machine wall-clock throughput moves with everyone else's load; the CPU spent
    per pair hardly does, so it is printed next to it (the server runs on this machine)."""

    def __init__(self, database: str | None) -> None:
        self.database = database
        self.tick = os.sysconf("SC_CLK_TCK")

    def _backends(self) -> dict[int, float]:
        """CPU seconds of each client backend of ``database`` (autovacuum and other
        background workers are left out: their work is not the ledger's)."""
        if self.database is None:
            return {}
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            query = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'"
            pids = [row[0] for row in conn.execute(query, (self.database,))]
        found = {}
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # ended meanwhile, or the server is on another machine
                continue
            found[pid] = (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime
        return found

    def read(self) -> tuple[float, dict[int, float]]:
        return time.process_time(), self._backends()

    @staticmethod
    def spent(before: tuple[float, dict[int, float]], after: tuple[float, dict[int, float]]) -> float:
        """CPU between two readings; a backend started in between counts from zero."""
        backends = sum(cpu - before[1].get(pid, 0.0) for pid, cpu in after[1].items())
        return after[0] - before[0] + backends


def analyze(ledger: Ledger) -> None:
    """PostgreSQL: refresh the planner's statistics, as autovacuum does in steady state. The
    tables here grow from nothing within seconds; plans made for an empty table (a sequential
    scan) would otherwise be kept while it grows, which no long-running database sees."""
    if ledger.backend == "postgresql":
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def measured(meter: CpuMeter, run: Callable[[], Result]) -> Result:
    before = meter.read()
    result = run()
    result.cpu = CpuMeter.spent(before, meter.read())
    return result


def one_op(ledger: Ledger, scope_list: list[Scope], pairs: int, tag: str) -> list[float]:
    latencies = []
    for i in range(pairs):
        scope = scope_list[i % len(scope_list)]
        start = time.perf_counter()
        held = ledger.reserve(scope, ESTIMATE, 1500, idempotency_key=f"{tag}-{i}")
        ledger.settle(held.id, ACTUAL, USAGE)
        latencies.append(time.perf_counter() - start)
    return latencies


def single_writer(ledger: Ledger, scope_list: list[Scope], pairs: int) -> Result:
    start = time.perf_counter()
    latencies = one_op(ledger, scope_list, pairs, uuid.uuid4().hex[:8])
    return Result("baseline: 1 writer, 1 op per transaction", pairs, time.perf_counter() - start, latencies)


def concurrent_writers(ledger: Ledger, scope_list: list[Scope], threads: int, pairs_each: int) -> Result:
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)

    def worker(n: int) -> None:
        barrier.wait()
        mine = one_op(ledger, [scope_list[n % len(scope_list)]], pairs_each, f"{n}-{uuid.uuid4().hex[:8]}")
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    return Result(
        f"{threads} writers, 1 op per transaction",
        threads * pairs_each,
        time.perf_counter() - start,
        latencies,
    )


def group_commit(
    ledger: Ledger,
    scope_list: list[Scope],
    clients: int,
    committers: int,
    pairs: int,
    partitioned: bool = False,
) -> Result:
    """``clients`` concurrent requests; ``committers`` threads each commit what is queued.
    ``partitioned``: each committer serves its own share of the organisations, so two
    batches never wait for each other's organisation locks and one committer's database
    time overlaps the other's Python time."""

    async def run() -> Result:
        loop = asyncio.get_running_loop()
        queues: list[asyncio.Queue[tuple[object, asyncio.Future[object]]]] = [
            asyncio.Queue() for _ in range(committers if partitioned else 1)
        ]
        latencies: list[float] = []
        tag = uuid.uuid4().hex[:8]
        done = asyncio.Event()
        pool = ThreadPoolExecutor(committers)

        async def committer(queue: asyncio.Queue[tuple[object, asyncio.Future[object]]]) -> None:
            while not done.is_set():
                try:
                    first = await asyncio.wait_for(queue.get(), 0.05)
                except TimeoutError:
                    continue
                items = [first]
                while not queue.empty() and len(items) < 512:
                    items.append(queue.get_nowait())
                results = await loop.run_in_executor(pool, ledger.batch, [op for op, _ in items])
                for (_, future), result in zip(items, results, strict=True):
                    future.set_result(result)

        async def call(op: object, org_index: int) -> object:
            future: asyncio.Future[object] = loop.create_future()
            await queues[org_index % len(queues)].put((op, future))
            result = await future
            if isinstance(result, KakinError):
                raise result
            return result

        async def client(n: int) -> None:
            for i in range(n, pairs, clients):
                start = time.perf_counter()
                org_index = i % len(scope_list)
                held = await call(ReserveOp(scope_list[org_index], ESTIMATE, 1500, f"{tag}-{i}"), org_index)
                await call(SettleOp(held.id, ACTUAL, USAGE), org_index)  # type: ignore[attr-defined]
                latencies.append(time.perf_counter() - start)

        workers = [asyncio.create_task(committer(queues[c % len(queues)])) for c in range(committers)]
        start = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        seconds = time.perf_counter() - start
        done.set()
        await asyncio.gather(*workers)
        pool.shutdown()
        label = f"group commit: {clients} requests, {committers} committer{'s' if committers > 1 else ''}"
        if partitioned:
            label += " by org"
        return Result(label, pairs, seconds, latencies)

    return asyncio.run(run())


def batch_driver(ledger: Ledger, scope_list: list[Scope], size: int, batches: int) -> Result:
    """The ledger alone in steady state, ``size`` requests in flight."""
    tag = uuid.uuid4().hex[:8]
    pending: list[str] = []
    commit_times: list[float] = []
    settled = 0
    start = time.perf_counter()
    for b in range(batches + 1):
        ops: list[object] = [SettleOp(r, ACTUAL, USAGE) for r in pending]
        if b < batches:
            ops += [
                ReserveOp(scope_list[(b * size + i) % len(scope_list)], ESTIMATE, 1500, f"{tag}-{b}-{i}")
                for i in range(size)
            ]
        began = time.perf_counter()
        results = ledger.batch(ops)  # type: ignore[arg-type]
        commit_times.append(time.perf_counter() - began)
        errors = [r for r in results if isinstance(r, KakinError)]
        if errors:
            raise SystemExit(f"batch refused an operation: {errors[0]}")
        settled += len(pending)
        pending = [r.id for r in results[len(pending) :]]  # type: ignore[union-attr]
    seconds = time.perf_counter() - start
    # A request waits for the transaction that reserves it and the one that settles it.
    pair_latency = [commit_times[i] + commit_times[i + 1] for i in range(len(commit_times) - 1)]
    return Result(f"batch driver: {2 * size} ops per transaction", settled, seconds, pair_latency)


def post_driver(ledger: Ledger, scope_list: list[Scope], size: int, batches: int) -> Result:
    """One-phase charges (PostOp, as the gateway writes in local accounting mode), ``size``
    per transaction; a charge's latency is its transaction's."""
    tag = uuid.uuid4().hex[:8]
    latencies: list[float] = []
    start = time.perf_counter()
    for b in range(batches):
        ops = [
            PostOp(scope_list[(b * size + i) % len(scope_list)], ACTUAL, USAGE, f"{tag}-{b}-{i}", 1500)
            for i in range(size)
        ]
        began = time.perf_counter()
        results = ledger.batch(ops)
        latencies += [time.perf_counter() - began] * size
        errors = [r for r in results if isinstance(r, KakinError)]
        if errors:
            raise SystemExit(f"batch refused a charge: {errors[0]}")
    return Result(f"post: {size} per transaction", batches * size, time.perf_counter() - start, latencies)


def view_holds(ledger: Ledger, scope: Scope, count: int) -> float:
    """CPU µs of one AccountView hold + release (the in-memory hold of local mode)."""
    view = ledger.account_view(scope.org_id)
    began = time.process_time()
    for _ in range(count):
        view.release(view.hold(scope, ESTIMATE, 1500))
    return (time.process_time() - began) / count * 1e6


def log_pages(ledger: Ledger, scope_list: list[Scope], size: int) -> str:
    """SQLite: pages of write-ahead log one transaction of ``size`` PostOps appends, counted on
    an emptied log over a few transactions (fewer pages than SQLite's checkpoint threshold,
    1000); the median of three, should a checkpoint restart the log meanwhile."""
    if ledger.backend != "sqlite":
        return "-"
    batches = {1: 20, 16: 4}.get(size, 1)
    counts = []
    with closing(sqlite3.connect(ledger.engine.url.database or "")) as log:
        log.execute("PRAGMA busy_timeout=60000")
        for _ in range(3):
            while log.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone() != (0, 0, 0):
                time.sleep(0.01)  # another checkpoint is running: empty the log once it is done
            post_driver(ledger, scope_list, size, batches)
            _busy, frames, _copied = log.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            counts.append(frames / batches)
    return f"{sorted(counts)[1]:.1f}"


def charges_table(name: str, ledger: Ledger, meter: CpuMeter, scope_list: list[Scope], quick: bool) -> None:
    """PostOps and reserve + settle pairs at the same batch sizes, in the same run."""
    total = 1000 if quick else 6000
    print(f"\n{name} — one-phase charges (PostOp) against reserve + settle pairs, same batch sizes")
    print(
        f"  {'':30} {'per s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU µs each':>12} {'log pages':>10}"
        f" {'pair CPU µs':>12} {'post/pair':>10}"
    )
    for size in (1, 16, 64, 256):
        batches = max(total // size // (4 if size == 1 else 1), 8)
        post_driver(ledger, scope_list, size, 4)  # warm up, then plan on current statistics
        analyze(ledger)
        post = measured(
            meter, lambda size=size, batches=batches: post_driver(ledger, scope_list, size, batches)
        )
        analyze(ledger)
        pair = measured(
            meter, lambda size=size, batches=batches: batch_driver(ledger, scope_list, size, batches)
        )
        p50, p99 = (percentile(post.latencies, q) * 1000 for q in (0.5, 0.99))
        ratio = post.cpu_per_pair / pair.cpu_per_pair
        pages = log_pages(ledger, scope_list, size)
        print(
            f"  {post.label:30} {post.rate:8,.0f} {p50:7.2f} {p99:7.2f} {post.cpu_per_pair * 1e6:12,.0f}"
            f" {pages:>10} {pair.cpu_per_pair * 1e6:12,.0f} {ratio:9.2f}x"
        )
    analyze(ledger)
    one = measured(meter, lambda: single_writer(ledger, scope_list, 100 if quick else 400))
    hold = view_holds(ledger, scope_list[0], 20_000 if quick else 100_000)
    print(
        f"  AccountView hold + release: {hold:.1f} CPU µs, {hold / (one.cpu_per_pair * 1e6):.4f}x "
        f"of a reserve + settle pair in two transactions ({one.cpu_per_pair * 1e6:,.0f} µs)"
    )


@contextlib.contextmanager
def rollups_written(which: str) -> Iterator[None]:
    """Bench only: the ledger in this process writes ``all`` rollups, the ``full`` tables only
    (as before the narrower ones) or ``none``."""
    from kakin.ledger import rollups
    from kakin.ledger.work import Work

    tables, roll_up = rollups.TABLES, Work._roll_up
    if which == "full":
        rollups.TABLES = tuple(table for table in tables if table.full)  # type: ignore[misc]
    elif which == "none":
        Work._roll_up = lambda self, usage, cost_items: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        rollups.TABLES, Work._roll_up = tables, roll_up  # type: ignore[misc, method-assign]


def rollups_table(name: str, ledger: Ledger, meter: CpuMeter, scope_list: list[Scope], rounds: int) -> None:
    """CPU per PostOp writing all, the full or no rollups, alternating in rounds."""
    variants = ("all", "full", "none")
    print(
        f"\n{name} — CPU µs per one-phase charge by the rollups it writes (median of {rounds} alternating rounds)"
    )
    print(f"  {'':30} {'all':>8} {'full':>8} {'none':>8} {'all/none':>9} {'all/full':>9}")
    for size in (1, 16, 64, 256):
        batches = max(1200 // size // (4 if size == 1 else 1), 8)
        spent: dict[str, list[float]] = {v: [] for v in variants}
        for r in range(rounds):
            for which in variants[r % 3 :] + variants[: r % 3]:
                with rollups_written(which):
                    post_driver(ledger, scope_list, size, 2)
                    run = measured(
                        meter,
                        lambda size=size, batches=batches: post_driver(ledger, scope_list, size, batches),
                    )
                spent[which].append(run.cpu_per_pair * 1e6)
        us = {v: statistics.median(spent[v]) for v in variants}
        print(
            f"  {f'post: {size} per transaction':30} {us['all']:8,.0f} {us['full']:8,.0f} {us['none']:8,.0f}"
            f" {us['all'] / us['none']:8.2f}x {us['all'] / us['full']:8.2f}x"
        )


def run_backend(
    name: str,
    url: str,
    quick: bool,
    repeat: int,
    durability: str,
    database: str | None = None,
    part: str = "all",
) -> None:
    ledger = Ledger.open(url, pool_size=20, max_overflow=20)
    meter = CpuMeter(database)
    n = 300 if quick else 1500
    batches = 8 if quick else 30
    scenarios: list[Callable[[list[Scope]], Result]] = [
        lambda sl: single_writer(ledger, sl, n),
        lambda sl: concurrent_writers(ledger, sl, 16, max(n // 16, 20)),
        lambda sl: group_commit(ledger, sl, 16, 1, n),
        lambda sl: group_commit(ledger, sl, 256, 1, 4 * n),
        lambda sl: group_commit(ledger, sl, 256, 2, 4 * n),
        lambda sl: group_commit(ledger, sl, 256, 2, 4 * n, partitioned=True),
        lambda sl: batch_driver(ledger, sl, 64, batches),
        lambda sl: batch_driver(ledger, sl, 256, batches),
    ]
    try:
        scope_list = scopes(ledger, ORGS)
        one_op(ledger, scope_list, 50, "warmup")
        if part == "rollups":
            rollups_table(name, ledger, meter, scope_list, 3 if quick else 5)
        elif part != "pairs":
            charges_table(name, ledger, meter, scope_list, quick)
        results = []
        for scenario in scenarios if part in ("all", "pairs") else ():  # best of ``repeat`` runs
            analyze(ledger)
            runs = [measured(meter, lambda s=scenario: s(scope_list)) for _ in range(repeat)]
            results.append(max(runs, key=lambda r: r.rate))
        for scope in scope_list if part != "rollups" else ():  # (charges were written without rollups)
            report = ledger.reconcile(scope.org_id)
            if not report.ok:
                raise SystemExit(f"{name}: reconcile failed {report.mismatches}")
    finally:
        ledger.close()
    if not results:
        return
    print(f"\n{name} — {durability}")
    print(f"  {'':48} {'pairs/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/pair':>12} {'vs baseline':>12}")
    base = results[0].rate
    for r in results:
        p50, p99 = percentile(r.latencies, 0.5) * 1000, percentile(r.latencies, 0.99) * 1000
        cpu = r.cpu_per_pair * 1e6
        print(f"  {r.label:48} {r.rate:9,.0f} {p50:8.2f} {p99:8.2f} {cpu:12,.0f} {r.rate / base:11.1f}x")


def with_pg_database(fn: Callable[[str, str, str], None]) -> None:
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=2)
    except Exception as error:  # PostgreSQL not running: say so and skip it
        print(f"\nPostgreSQL — skipped: {error.__class__.__name__}: {str(error).splitlines()[0]}")
        return
    name = f"kakin_bench_{os.getpid()}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            settings = [admin.execute(f"SHOW {s}").fetchone()[0] for s in ("synchronous_commit", "fsync")]  # type: ignore[index]
            url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
            fn(url, name, f"synchronous_commit={settings[0]}, fsync={settings[1]}")
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer pairs, one run each: a smoke run")
    parser.add_argument("--repeat", type=int, default=None, help="runs per scenario (default 3)")
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help="run one backend")
    parser.add_argument(
        "--part",
        choices=("all", "pairs", "charges", "rollups"),
        default="all",
        help="pairs: the reserve + settle "
        "scenarios; charges: PostOps and account views against pairs at the same batch sizes; "
        "rollups: PostOps writing all, the full or no rollups, alternating",
    )
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 3)
    print(f"kakin ledger benchmark ({os.cpu_count()} CPUs); a pair = reserve + settle of one request")
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as folder:
            run_backend(
                "SQLite",
                f"sqlite:///{Path(folder) / 'bench.db'}",
                args.quick,
                repeat,
                "WAL, synchronous=NORMAL: a commit survives a process crash, not an OS crash or power loss",
                part=args.part,
            )
    if args.only != "sqlite":
        durable = "a commit is flushed to disk before it returns"
        with_pg_database(
            lambda url, database, settings: run_backend(
                "PostgreSQL", url, args.quick, repeat, f"{settings}: {durable}", database, args.part
            )
        )


if __name__ == "__main__":
    main()

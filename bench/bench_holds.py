"""What deciding a hold and recording its charge costs, per request, in each accounting mode.

The accountants alone (no HTTP, no pricing): 50 concurrent requests at a time each take a
hold and charge it, against one organisation with a hard-capped budget. The baseline is local
accounting (an account view in memory, the charge journal, an SQLite ledger); against it,
shared accounting with holds in Redis (the Lua hold store, the charge journal, a PostgreSQL
ledger). Both post their journals through the ledger writer process, as ``kakin serve`` does.
Rounds alternate between the modes; CPU time is this process's (the event loop's), the
figure least disturbed by other work on a shared machine.

    .venv/bin/python bench/bench_holds.py [--postgres ADMIN_URL] [--redis URL] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import psycopg
import redis
import redis.asyncio

from kakin.gateway.accounting import LocalAccountant
from kakin.gateway.committer import ProcessCommitter
from kakin.gateway.holds import HoldStore
from kakin.gateway.journal import ChargeJournal, PostedCharges
from kakin.gateway.shared_holds import RedisAccountant
from kakin.ledger import Ledger
from kakin.ledger.records import Scope, UsageDetail

PREFIX = f"kakin-bench-holds:{os.getpid()}:"  # every Redis key of the run, deleted at its end
REQUESTS = 3000
CONCURRENCY = 50
USAGE = UsageDetail(provider="openai", input_tokens=60, output_tokens=40)


def org(url: str) -> Scope:
    with Ledger.open(url) as ledger:
        made = ledger.create_org("bench-" + uuid.uuid4().hex[:6], payment_method=True)
        project = ledger.create_project(made.id, "p")
        ledger.grant(made.id, "prepaid", Decimal("1000000"), idempotency_key="g")
        ledger.set_budget(made.id, period="month", limit=Decimal("900000"), hard_cap=True)
        return Scope(made.id, project.id, None, "gpt-4o-mini")


async def measure(mode: str, url: str, redis_url: str, workdir: Path) -> float:
    """CPU µs of this process per request (hold + charge), after a warm-up."""
    scope = org(url)
    posted = PostedCharges()
    path = str(workdir / f"journal-{uuid.uuid4().hex[:6]}")
    writer = ProcessCommitter(url, hold_seconds=900, journal=path, posted=posted)
    journal = ChargeJournal(path, waker=writer)
    await writer.start()
    if mode == "local":
        ledger = Ledger.open(url)
        accounts: object = LocalAccountant(ledger, writer, journal, posted)
    else:
        ledger = None
        prefix = f"{PREFIX}{uuid.uuid4().hex[:8]}:"
        store = HoldStore(redis.asyncio.Redis.from_url(redis_url), prefix)
        accounts = RedisAccountant(store, writer, journal, posted, hold_seconds=900)
    await accounts.start()  # type: ignore[attr-defined]
    count = 0

    async def one() -> None:
        nonlocal count
        count += 1
        ticket = await accounts.hold(scope, Decimal("0.001"), 200, f"r{count}")  # type: ignore[attr-defined]
        await accounts.charge(ticket, Decimal("0.0004"), USAGE)  # type: ignore[attr-defined]

    for _ in range(4):  # warm-up: the view or the Redis state, the scripts, the connections
        await asyncio.gather(*(one() for _ in range(CONCURRENCY)))
    cpu = time.process_time()
    for _ in range(REQUESTS // CONCURRENCY):
        await asyncio.gather(*(one() for _ in range(CONCURRENCY)))
    used = time.process_time() - cpu
    await accounts.close()  # type: ignore[attr-defined]
    await writer.stop()
    journal.close()
    if ledger is not None:
        ledger.close()
    return used / REQUESTS * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres", default="postgresql://postgres@127.0.0.1:5432/test", metavar="ADMIN_URL"
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", metavar="URL")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kakin-bench-holds-"))
    name = f"kakin_bench_holds_{os.getpid()}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    pg_url = args.postgres.rsplit("/", 1)[0] + "/" + name
    sqlite_url = f"sqlite:///{workdir / 'kakin.db'}"
    Ledger.open(sqlite_url).close()
    Ledger.open(pg_url).close()
    load0 = os.getloadavg()
    print("kakin hold + charge benchmark (the accountants alone)")
    print(
        f"  {os.cpu_count()} cores, load average {load0[0]:.2f} at start; {REQUESTS} requests, {CONCURRENCY} at a time"
    )
    results: dict[str, list[float]] = {"local": [], "redis": []}
    try:
        for _ in range(args.rounds):
            for mode in ("local", "redis"):
                url = sqlite_url if mode == "local" else pg_url
                results[mode].append(asyncio.run(measure(mode, url, args.redis, workdir)))
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        client = redis.Redis.from_url(args.redis)
        keys = list(client.scan_iter(match=PREFIX + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        shutil.rmtree(workdir, ignore_errors=True)
    base = statistics.median(results["local"])
    print(f"  {'mode':<46} {'CPU µs/request (median)':>24} {'× baseline':>11}")
    print(f"  {'baseline: local (account view, SQLite ledger)':<46} {base:>24.1f} {1:>11.2f}")
    shared = statistics.median(results["redis"])
    print(f"  {'shared, holds in Redis (PostgreSQL ledger)':<46} {shared:>24.1f} {shared / base:>11.2f}")
    print(f"  load average {os.getloadavg()[0]:.2f} at the end; every round: {results}")


if __name__ == "__main__":
    sys.exit(main())

"""Dashboard pages: the time to draw each one, fully rendered, over a ledger of many charges.

Seeds one Asia/Tokyo organisation (50 projects, 500 keys, 20 models) with ``--charges``
charges spread over the 90 days before the clock (posted in hourly batches, so the rollups
are written as the gateway writes them), signs in with the admin key and draws each page
``--repeat`` times in-process (Starlette's test client: no network), printing the p50 and
p90 of each and the CPU it took (p50, this process: the page, its queries on SQLite, and the
test client). Targets: the overview ≤ 300 ms, a request-log page ≤ 20 ms at any depth.
``bench_reports.py --part pages`` draws the same pages over its generated ledgers (10M).

    .venv/bin/python bench/bench_dashboard.py [--charges 50000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from starlette.testclient import TestClient

from kakin.ledger import Ledger, PostOp, Scope, UsageDetail
from kakin.reports import Reports
from kakin.web import create_web_app

ADMIN_KEY = "bench-admin-key"
NOW = datetime(2026, 3, 31, 3, 0, tzinfo=UTC)
DAYS = 90
MODELS = [f"model-{n:02}" for n in range(20)]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def seed(ledger: Ledger, clock: Clock, charges: int) -> None:
    rng = random.Random(7)
    clock.now = NOW - timedelta(days=DAYS + 1)
    org = ledger.create_org("bench", timezone="Asia/Tokyo", payment_label="card")
    projects = [ledger.create_project(org.id, f"project-{n:02}") for n in range(50)]
    keys = [ledger.create_key(projects[n % 50].id, f"key-{n:03}")[0] for n in range(500)]
    hours = DAYS * 24
    per_hour = max(1, charges // hours)
    made = 0
    for hour in range(hours):
        clock.now = NOW - timedelta(hours=hours - hour)
        batch = []
        for _ in range(min(per_hour, charges - made)):
            key = rng.choice(keys)
            given, out = rng.randint(100, 4000), rng.randint(10, 800)
            amount = Decimal(given * 25 + out * 100).scaleb(-7)
            items = [
                {"component": "input", "quantity": str(given), "unit": "token", "amount": str(Decimal(given * 25).scaleb(-7)),
                 "unit_price": "0.0000025", "tier": None, "effective_from": "2026-01-01", "source": "bench", "direction": "input"},
                {"component": "output", "quantity": str(out), "unit": "token", "amount": str(Decimal(out * 100).scaleb(-7)),
                 "unit_price": "0.00001", "tier": None, "effective_from": "2026-01-01", "source": "bench", "direction": "output"},
            ]  # fmt: skip
            usage = UsageDetail(provider="bench", input_tokens=given, output_tokens=out, cost_items=items)
            scope = Scope(org.id, key.project_id, key.id, rng.choice(MODELS))
            batch.append(PostOp(scope, amount, usage, f"c{made}"))
            made += 1
        if batch:
            ledger.batch(batch)
    clock.now = NOW


TARGETS_MS = {"overview": 300.0, "request log": 20.0}  # by the page name's start


def draw(
    client: TestClient, pages: dict[str, str], repeat: int, cpu_of: Callable[[], float] = lambda: 0.0
) -> None:
    """Draw each page ``repeat`` times (after one unmeasured draw) and print its timings.
    ``cpu_of``: CPU seconds so far spent elsewhere for the page (a database server)."""
    print(f"  {'page':<44} {'p50 ms':>8} {'p90 ms':>8} {'CPU ms':>8} {'target':>7}")
    for name, path in pages.items():
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text[:300])
        times, cpu = [], []
        server = cpu_of()
        for _ in range(repeat):
            begin, used = time.perf_counter(), time.process_time()
            answer = client.get(path)
            cpu.append((time.process_time() - used) * 1000)
            times.append((time.perf_counter() - begin) * 1000)
            assert answer.status_code == 200, (path, answer.text[:300])
        times.sort()
        cpu_ms = statistics.median(cpu) + (cpu_of() - server) * 1000 / repeat
        target = next((ms for start, ms in TARGETS_MS.items() if name.startswith(start)), None)
        verdict = (
            ""
            if target is None
            else f"≤{target:.0f}  {'PASS' if statistics.median(times) <= target else 'FAIL'}"
        )
        print(
            f"  {name:<44} {statistics.median(times):8.1f} {times[max(int(len(times) * 0.9) - 1, 0)]:8.1f} "
            f"{cpu_ms:8.1f} {verdict:>7}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--charges", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'kakin.db'}"
    clock = Clock()
    with Ledger.open(url, clock=clock) as ledger:
        started = time.perf_counter()
        seed(ledger, clock, args.charges)
        print(
            f"seeded {args.charges:,} charges over {DAYS} days in {time.perf_counter() - started:.1f} s ({ledger.backend})"
        )
        app = create_web_app(ledger, admin_key=ADMIN_KEY)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            client.post("/signin", data={"key": ADMIN_KEY}, follow_redirects=False)
            cursor = None
            for _ in range(args.charges // 100):  # half way down the log
                cursor = Reports(ledger).requests("bench", limit=50, after=cursor).next
            pages = {
                "overview": "/",
                "spend by day (month)": "/spend",
                "spend by hour (today)": "/spend?by=hour",
                "breakdown by key (90 days)": "/breakdown?by=key&from=2026-01-01&to=2026-04-01",
                "breakdown by unit": "/breakdown?by=unit",
                "request log, first page": "/requests",
                "request log, half way down": f"/requests?after={cursor}",
                "savings": "/savings",
            }
            draw(client, pages, args.repeat)


if __name__ == "__main__":
    main()

"""Issuing a month's invoices: 1,000 organisations, N usage records (default 10,000,000).

Generates one month (October 2026, each organisation's own local month) of usage into a
ledger on SQLite and on PostgreSQL with the generator of ``bench_reports.py`` (its priced
request templates, its charge rows and rollups, its loaders): 1,000 organisations in six
timezones with a Zipf share of the traffic (a few large, many small), 2 projects and 5 keys
each. Then, with the clock at 2 November 2026 (every cycle past its 24-hour grace), it times
``Billing.close_due()`` — what ``kakin serve`` runs — issuing every organisation's October
invoice, and checks the result: one invoice per organisation, numbers INV-000001, and the
invoices' charges adding up to the ledger's.

The baseline, measured in the same run: reading the same usage records' costs per
organisation with one indexed ``SUM`` each (what any invoice must at least read). The ratio
says what itemising lines, applying credit and storing the snapshots cost on top.

    .venv/bin/python bench/bench_invoices.py [--records 1000000] [--backend sqlite|postgresql|both]
        [--cache bench-data] [--drop]

Generated databases are kept (``--cache`` for SQLite; a PostgreSQL database named after the
size) and their invoices deleted before each run, so a run can be repeated.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

import bench_reports as gen
from kakin.billing import Billing
from kakin.billing import schema as b
from kakin.ledger import Ledger
from kakin.ledger import schema as s
from kakin.ledger.periods import period_bounds

VERSION = 1
SEED = 20261201
ORGS = 1000
ZONES = ("Asia/Tokyo", "America/Los_Angeles", "Europe/Berlin", "UTC", "Asia/Kolkata", "America/New_York")
MONTH = date(2026, 10, 1)
DAYS = 31
CREATED = datetime(2026, 10, 1, 12, tzinfo=UTC)  # inside every zone's 1 October
ISSUE_AT = datetime(2026, 11, 2, 18, tzinfo=UTC)  # every October cycle ended more than 24 h ago
PG_ADMIN = gen.PG_ADMIN


def make_world(ledger: Ledger, rng: random.Random) -> gen.World:
    world = gen.World(org_ids=[], zones={})
    model_weights = gen.zipf(len(gen.MODELS), 0.9)
    for n in range(ORGS):
        zone = ZONES[n % len(ZONES)]
        org = ledger.create_org(f"org-{n:04d}", timezone=zone, payment_label="invoice")
        world.org_ids.append(org.id)
        world.zones[org.id] = zone
        projects = [ledger.create_project(org.id, f"p{p}") for p in range(2)]
        plans = []
        for k in range(5):
            key, _ = ledger.create_key(projects[k % 2].id, f"k{k}")
            models = list(dict.fromkeys(rng.choices(gen.MODELS, weights=model_weights, k=2)))
            plans.append(
                gen.KeyPlan(
                    org.id, projects[k % 2].id, key.id, models, gen.cumulative(gen.zipf(len(models), 1.0))
                )
            )
        world.keys[org.id] = plans
        world.key_weights[org.id] = gen.cumulative(gen.zipf(5, 1.1))
    world.templates = gen.make_templates(rng)
    return world


def generate(url: str, backend: str, records: int) -> dict[str, float]:
    rng = random.Random(SEED)
    began = time.perf_counter()
    ledger = Ledger.open(url, clock=gen.clock(CREATED))
    world = make_world(ledger, rng)
    ledger.close()
    made_world = time.perf_counter()
    loader: gen.Loader = (
        gen.SqliteLoader(Path(url.removeprefix("sqlite:///")), world)
        if backend == "sqlite"
        else gen.PostgresLoader(url, world)
    )
    per_org = gen.allocate(records, gen.zipf(ORGS, 1.0))
    feed = gen.Feed(loader, world.org_ids)
    for day in range(DAYS):
        for org_id, total in zip(world.org_ids, per_org, strict=True):
            count = total // DAYS + (1 if day < total % DAYS else 0)
            if count:
                feed.add(org_id, gen.day_records(world, org_id, MONTH + timedelta(days=day), count, rng))
        print(f"    day {day + 1:>2}: {feed.written:>12,} records", flush=True)
    feed.flush()
    loaded = time.perf_counter()
    feed.finish()
    done = time.perf_counter()
    return {"world": made_world - began, "load": loaded - made_world, "index": done - loaded}


def sqlite_database(cache: Path, records: int) -> tuple[str, gen.Timings | None]:
    return gen.cached_sqlite(
        cache / f"invoices-{records}-v{VERSION}.db", lambda url: generate(url, "sqlite", records)
    )


def pg_database(records: int) -> tuple[str, gen.Timings | None]:
    name = f"kakin_bench_invoices_{records}_v{VERSION}"
    return gen.cached_pg(name, lambda url: generate(url, "postgresql", records))


def baseline(ledger: Ledger) -> tuple[float, int]:
    """Each organisation's October usage costs summed through the (org, occurred_at) index."""
    u = s.usage_records
    total = 0
    began = time.perf_counter()
    for org in ledger.list_orgs():
        start, end = period_bounds("month", org.timezone, datetime(2026, 10, 15, tzinfo=UTC))
        query = select(func.coalesce(func.sum(u.c.cost_pico), 0)).where(
            u.c.org_id == org.id, u.c.occurred_at >= start, u.c.occurred_at < end
        )
        total += int(ledger.read(lambda c, q=query: c.execute(q).scalar_one()))
    return time.perf_counter() - began, total


def itemising_rate(ledger: Ledger, limit: int = 200_000) -> tuple[int, float]:
    """Records itemised one by one (no two alike, as in traffic whose token counts all
    differ): the cost lines of up to ``limit`` records read and added into lines in Python."""
    from sqlalchemy import Text, cast

    from kakin.billing.lines import LineBook

    u = s.usage_records
    rows = ledger.read(
        lambda c: c.execute(select(u.c.model, u.c.cost_pico, cast(u.c.cost_items, Text)).limit(limit)).all()
    )
    book = LineBook()
    began = time.process_time()
    for model, cost, items in rows:
        book.add("current", "2026-10", model, cost, items)
    book.lines()
    return len(rows), time.process_time() - began


def run(backend: str, url: str) -> None:
    with Ledger.open(url, clock=gen.clock(ISSUE_AT)) as ledger:
        with ledger.engine.begin() as conn:  # a repeatable run: the previous run's invoices go
            for table in (b.credit_notes, b.invoices, b.billing_numbers):
                conn.execute(table.delete())
        spent = int(ledger.read(lambda c: c.execute(select(func.sum(s.orgs.c.spent_pico))).scalar_one()))
        base_seconds, base_total = baseline(ledger)
        cpu0, server0 = resource.getrusage(resource.RUSAGE_SELF), gen.server_cpu(ledger)
        began = time.perf_counter()
        issued = Billing(ledger).close_due()
        seconds = time.perf_counter() - began
        cpu1, server = resource.getrusage(resource.RUSAGE_SELF), gen.server_cpu(ledger) - server0
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        again = time.perf_counter()
        repeated = Billing(ledger).close_due()
        repeat_seconds = time.perf_counter() - again
        invoices = [i.invoice for i in issued]
        assert len(invoices) == ORGS and {i.month for i in invoices} == {"2026-10"}, len(invoices)
        assert {i.number for i in invoices} == {"INV-000001"}
        assert sum(i.charges_pico for i in invoices) == spent == base_total
        assert repeated == []
        lines = sum(len(i.lines) for i in invoices)
        records = sum(i.requests for i in invoices)
        itemised, itemising_cpu = itemising_rate(ledger)
        size = ledger.read(
            lambda c: c.execute(select(func.sum(func.length(b.invoices.c.document)))).scalar_one()
        )
    print(
        f"  {backend:<10} issued {len(invoices):,} invoices ({lines:,} lines) over {records:,} usage records "
        f"in {seconds:,.1f} s wall, {cpu:,.1f} s CPU in this process"
        + (
            f" + {server:,.1f} s in PostgreSQL's backends"
            if backend == "postgresql"
            else " (SQLite's work included)"
        )
        + f" ({records / seconds:,.0f} records/s); "
        f"stored documents {size / 1e6:,.1f} MB"
    )
    print(
        f"  {'':<10} baseline (Σ cost per organisation, indexed): {base_seconds:,.2f} s; "
        f"ratio issue / baseline {seconds / base_seconds:,.1f}×; a second close_due (nothing due): {repeat_seconds * 1000:,.0f} ms"
    )
    print(
        f"  {'':<10} itemising records one by one (none alike): {itemised / itemising_cpu:,.0f} records per CPU second "
        f"({itemised:,} records), the bound when no two records are alike"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--cache", type=Path, default=Path("bench-data"))
    parser.add_argument("--drop", action="store_true", help="remove the generated databases at the end")
    args = parser.parse_args()
    print(
        f"bench_invoices: {ORGS:,} organisations, {args.records:,} usage records in October 2026, pid {os.getpid()}"
    )
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        began = time.perf_counter()
        url, timings = (
            sqlite_database(args.cache, args.records) if backend == "sqlite" else pg_database(args.records)
        )
        if timings is not None:
            print(
                f"  {backend:<10} generated in {time.perf_counter() - began:,.0f} s "
                + ", ".join(f"{k} {v:,.0f} s" for k, v in timings.items())
            )
        run(backend, url)
        if args.drop:
            if backend == "sqlite":
                for path in args.cache.glob(f"invoices-{args.records}-v{VERSION}.db*"):
                    path.unlink()
            else:
                import psycopg

                with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                    admin.execute(
                        f"DROP DATABASE IF EXISTS kakin_bench_invoices_{args.records}_v{VERSION} WITH (FORCE)"
                    )


if __name__ == "__main__":
    main()

"""Spend reports on a large ledger: each report query against the same answer read naively.

Generates N usage records (default 10,000,000) into a ledger on SQLite and on PostgreSQL,
with the rows a charge writes (a settled reservation, its charge entry, its usage record)
and the rollups made from those very records by the ledger's own function
(``kakin.ledger.rollups.roll_up``, the one the charge path and migration 0005 use). The mix:

* 3 organisations in their own zones (Asia/Tokyo, America/Los_Angeles, Europe/Berlin), 50
  projects, 500 keys, 20 models priced from the installed catalog, 90 local days ending
  2026-10-31 (Berlin's 25-hour day included);
* skewed popularity (Zipf over keys and over each key's 1–4 models), office hours in the
  organisation's zone, quieter weekends, growth over the period; 2 % response-cache hits,
  5 % routed requests, 0.5 % charges posted without a key.

Generated databases are kept (SQLite: a file under ``--cache``; PostgreSQL: a database named
after the size) and reused by later runs; ``--drop`` removes them at the end. Generation is
checked: per organisation the rollups hold every record's requests and cost, a sample of
local days is rolled up again from its usage records and compared measure by measure, and
``Ledger.reconcile`` must pass.

Then each query the dashboard and the CLI use runs ``--runs`` times with varied parameters
(organisation, month, filters), p50 and p95 printed, and beside it the same answer computed
naively from the usage records (GROUP BY in the organisation's zone; the request log by
OFFSET) with the ratio naive / report.

    .venv/bin/python bench/bench_reports.py [--records 1000000] [--backend sqlite|postgresql|both]
        [--part queries|pages] [--runs 11] [--naive-runs 3] [--drop]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import os
import random
import sqlite3
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from kakin.ledger import Ledger
from kakin.ledger import rollups as r
from kakin.ledger import statements as q
from kakin.ledger.periods import period_bounds
from kakin.money import to_pico
from kakin.pricing import Usage, price
from kakin.reports import Reports

PG_ADMIN = os.environ.get("KAKIN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
VERSION = 1  # of the generator: a cached database made by another version is made again
SEED = 20261101
FIRST_DAY = date(2026, 8, 3)  # 90 local days: 2026-08-03 .. 2026-10-31
DAYS = 90
ORGS = (  # name, zone, share of the requests, projects, keys
    ("tokyo-labs", "Asia/Tokyo", 0.45, 20, 200),
    ("pacific-apps", "America/Los_Angeles", 0.35, 18, 180),
    ("berlin-data", "Europe/Berlin", 0.20, 12, 120),
)
MODELS = (  # by popularity; each prices from the installed catalog
    "gpt-4o-mini",
    "gpt-4.1-mini",
    "gemini-2.5-flash",
    "gpt-4o",
    "claude-sonnet-4-20250514",
    "gpt-4.1-nano",
    "gemini-2.0-flash",
    "gpt-4.1",
    "claude-3-5-haiku-20241022",
    "o4-mini",
    "gemini-2.5-pro",
    "gpt-5-mini",
    "o3-mini",
    "gpt-5",
    "gemini-2.5-flash-lite",
    "o3",
    "gpt-5-nano",
    "claude-opus-4-1-20250805",
    "claude-3-7-sonnet-20250219",
    "gemini-1.5-flash",
)
REASONING = ("o4-mini", "o3-mini", "o3", "gpt-5", "gpt-5-mini", "gpt-5-nano")
PRICED_AT = datetime(2026, 9, 15, tzinfo=UTC)
TEMPLATES = 48  # distinct requests per model
CHUNK = 50_000  # rows per write


def zipf(n: int, s: float = 1.1) -> list[float]:
    return [1 / (i + 1) ** s for i in range(n)]


def cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


# The generated world ---------------------------------------------------------------------


@dataclass
class Template:
    """One priced request of a model: what its usage record holds."""

    provider: str
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_pico: int
    cost_items: str  # JSON text, as the gateway hands it to the ledger


@dataclass
class KeyPlan:
    org_id: str
    project_id: str
    key_id: str | None
    models: list[str]
    model_weights: list[float]


@dataclass
class World:
    org_ids: list[str]
    zones: dict[str, str]
    keys: dict[str, list[KeyPlan]] = field(default_factory=dict)  # by org
    key_weights: dict[str, list[float]] = field(default_factory=dict)
    templates: dict[str, list[Template]] = field(default_factory=dict)


def provider_of(model: str) -> str:
    if model.startswith("claude"):
        return "anthropic"
    return "google" if model.startswith("gemini") else "openai"


def make_templates(rng: random.Random) -> dict[str, list[Template]]:
    out: dict[str, list[Template]] = {}
    for model in MODELS:
        found = []
        for _ in range(TEMPLATES):
            prompt = int(rng.lognormvariate(7.3, 1.0)) + 20  # median ~1,500 tokens
            cached = (prompt * rng.choice((0, 0, 0, 5, 7, 9)) // 10) // 128 * 128
            output = int(rng.lognormvariate(5.5, 0.9)) + 1  # median ~250
            reasoning = int(output * rng.uniform(0.3, 0.8)) if model in REASONING else 0
            output += reasoning
            usage = Usage(
                input_tokens=prompt,
                cache_read_tokens=cached,
                output_tokens=output,
                output_reasoning_tokens=reasoning,
                requests=1,
            )
            cost = price(usage, model, at=PRICED_AT)
            items = orjson.dumps([item.to_dict() for item in cost.items]).decode()
            found.append(
                Template(provider_of(model), prompt, cached, output, reasoning, to_pico(cost.total), items)
            )
        out[model] = found
    return out


def make_world(ledger: Ledger, rng: random.Random) -> World:
    """Organisations, projects and keys through the ledger's own API."""
    world = World(org_ids=[], zones={})
    model_weights = zipf(len(MODELS), 0.9)
    for name, zone, _share, projects, keys in ORGS:
        org = ledger.create_org(name, timezone=zone, payment_label="invoice")
        world.org_ids.append(org.id)
        world.zones[org.id] = zone
        made = [ledger.create_project(org.id, f"{name}-p{n:02d}") for n in range(projects)]
        # Keys go to projects by a skewed share too: a few projects hold most keys.
        project_pick = cumulative(zipf(projects, 0.8))
        plans = []
        for n in range(keys):
            project = rng.choices(made, cum_weights=project_pick)[0]
            key, _ = ledger.create_key(project.id, f"k{n:03d}")
            count = rng.choice((1, 1, 2, 2, 3, 4))
            models: list[str] = []
            while len(models) < count:
                m = rng.choices(MODELS, weights=model_weights)[0]
                if m not in models:
                    models.append(m)
            plans.append(KeyPlan(org.id, project.id, key.id, models, cumulative(zipf(count, 1.0))))
        world.keys[org.id] = plans
        world.key_weights[org.id] = cumulative(zipf(keys, 1.1))
    world.templates = make_templates(rng)
    return world


DIURNAL = [0.15, 0.1, 0.08, 0.08, 0.1, 0.15, 0.3, 0.5, 0.8, 1.0, 1.0, 1.0, 0.9, 1.0, 1.0, 1.0, 0.95, 0.85,
           0.7, 0.55, 0.45, 0.35, 0.25, 0.2]  # fmt: skip


def day_weights() -> list[float]:
    """Relative traffic of each of the 90 days: weekends quieter, growth over the period."""
    out = []
    for n in range(DAYS):
        day = FIRST_DAY + timedelta(days=n)
        out.append((0.45 if day.weekday() >= 5 else 1.0) * (1 + 0.6 * n / DAYS))
    return out


def allocate(total: int, weights: list[float]) -> list[int]:
    """``total`` split by ``weights`` into whole numbers that add up to it."""
    scale = total / sum(weights)
    out, carried, given = [], 0.0, 0
    for w in weights:
        carried += w * scale
        n = round(carried) - given
        out.append(n)
        given += n
    return out


def org_days(world: World, records: int) -> list[tuple[str, date, int]]:
    """(organisation, local day, records) in roughly time order."""
    per_org = allocate(records, [share for _, _, share, _, _ in ORGS])
    plan = {org: allocate(n, day_weights()) for org, n in zip(world.org_ids, per_org, strict=True)}
    return [(org, FIRST_DAY + timedelta(days=d), plan[org][d]) for d in range(DAYS) for org in world.org_ids]


LATENCIES = [timedelta(milliseconds=int(random.Random(n).lognormvariate(7.0, 0.8))) for n in range(997)]


def day_records(world: World, org_id: str, day: date, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """The usage records of one organisation's local day, in time order."""
    zone = world.zones[org_id]
    start, end = period_bounds("day", zone, datetime.combine(day, datetime.min.time(), ZoneInfo(zone)))
    assert end is not None
    hours = int((end - start).total_seconds()) // 3600  # 23, 24 or 25
    local = ZoneInfo(zone)
    hour_weights = cumulative(
        [DIURNAL[(start + timedelta(hours=h)).astimezone(local).hour] for h in range(hours)]
    )
    picked_hours = rng.choices(range(hours), cum_weights=hour_weights, k=count)
    offsets = sorted(h * 3_600_000_000 + rng.randrange(3_600_000_000) for h in picked_hours)
    plans = rng.choices(world.keys[org_id], cum_weights=world.key_weights[org_id], k=count)
    out = []
    for offset, plan in zip(offsets, plans, strict=True):
        at = start + timedelta(microseconds=offset)
        model = (
            plan.models[0]
            if len(plan.models) == 1
            else rng.choices(plan.models, cum_weights=plan.model_weights)[0]
        )
        t = world.templates[model][rng.randrange(TEMPLATES)]
        roll = rng.random()
        cost, items, saved_cache, routed, saved_routing = t.cost_pico, t.cost_items, 0, None, 0
        if roll < 0.02:  # answered from the response cache: nothing charged
            cost, items, saved_cache = 0, "[]", t.cost_pico
        elif roll < 0.07:
            routed, saved_routing = "gpt-4o", t.cost_pico // 2
        key_id = None if roll > 0.995 else plan.key_id
        request_id = f"req_{rng.getrandbits(96):024x}"
        ms = int(at.timestamp() * 1000)
        out.append(
            {
                "org_id": org_id,
                "project_id": plan.project_id,
                "key_id": key_id,
                "reservation_id": f"res_{ms:012x}{rng.getrandbits(56):014x}",
                "request_id": request_id,
                "model": model,
                "provider": t.provider,
                "input_tokens": t.input_tokens,
                "output_tokens": t.output_tokens,
                "cached_tokens": t.cached_tokens,
                "reasoning_tokens": t.reasoning_tokens,
                "cost_pico": cost,
                "cost_items": q.JsonText(items),
                "occurred_at": at,
                "settled_at": at + LATENCIES[offset % 997],
                "cache_hit": saved_cache > 0,
                "cache_saved_pico": saved_cache,
                "routed_from": routed,
                "routing_saved_pico": saved_routing,
            }
        )
    return out


def reservation_of(u: dict[str, Any]) -> dict[str, Any]:
    """The settled reservation a charge leaves (reserve, then settle, as the gateway does)."""
    cost, used = u["cost_pico"], u["input_tokens"] + u["output_tokens"]
    digest = hashlib.sha256(u["reservation_id"].encode()).hexdigest()
    charged = q.JsonText(
        f'{{"charged": "{cost / 10**12:.12f}", "from_credit": "0", "postpaid": "{cost / 10**12:.12f}", '
        '"overrun": "0", "late": false, "thresholds": []}'
    )
    return {
        "id": u["reservation_id"],
        "org_id": u["org_id"],
        "project_id": u["project_id"],
        "key_id": u["key_id"],
        "model": u["model"],
        "idempotency_key": u["request_id"],
        "params_hash": digest,
        "amount_pico": cost + cost // 2,
        "tokens": used + u["output_tokens"],
        "status": "settled",
        "created_at": u["occurred_at"],
        "expires_at": u["occurred_at"] + timedelta(seconds=900),
        "closed_at": u["settled_at"],
        "actual_pico": cost,
        "actual_tokens": used,
        "overrun_pico": 0,
        "late": False,
        "unbounded": False,
        "settle_hash": digest,
        "holds": [],
        "result": charged,
    }


POSTPAID = q.JsonText('{"postpaid": true}')


def entry_of(u: dict[str, Any]) -> dict[str, Any] | None:
    """The charge entry (postpaid: the organisations pay by invoice); none for a free answer."""
    if not u["cost_pico"]:
        return None
    return {
        "org_id": u["org_id"],
        "kind": "charge",
        "grant_id": None,
        "reservation_id": u["reservation_id"],
        "amount_pico": -u["cost_pico"],
        "occurred_at": u["settled_at"],
        "recorded_at": u["settled_at"],
        "detail": POSTPAID,
        "idempotency_key": None,
    }


# Loading ---------------------------------------------------------------------------------


class Loader:
    """Writes generated rows as fast as the backend takes them."""

    def write(self, usage: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def finish(self, counters: dict[str, tuple[int, int]]) -> None:
        raise NotImplementedError


class Feed:
    """Generated usage records to a loader in chunks of ``CHUNK``, each organisation's cost
    and tokens counted on the way (the loader's ``finish`` writes them)."""

    def __init__(self, loader: Loader, org_ids: list[str]) -> None:
        self.loader = loader
        self.counters = {org: [0, 0] for org in org_ids}
        self.pending: list[dict[str, Any]] = []
        self.written = 0

    def add(self, org_id: str, made: list[dict[str, Any]]) -> bool:
        """Queue one organisation's records; True when a chunk was written."""
        counter = self.counters[org_id]
        for u in made:
            counter[0] += u["cost_pico"]
            counter[1] += u["input_tokens"] + u["output_tokens"]
        self.pending += made
        if len(self.pending) < CHUNK:
            return False
        self.flush()
        return True

    def flush(self) -> None:
        if self.pending:
            self.loader.write(self.pending)
            self.written += len(self.pending)
            self.pending = []

    def finish(self) -> None:
        self.loader.finish({org: (c[0], c[1]) for org, c in self.counters.items()})


class SqliteLoader(Loader):
    """executemany in big transactions, with the ledger's own row conversion; secondary
    indexes dropped while loading and built once at the end."""

    def __init__(self, path: Path, world: World) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.world = world
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-1000000", "temp_store=MEMORY"):
            self.db.execute(f"PRAGMA {pragma}")
        self.indexes = self.db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN ('usage_records', 'entries', 'reservations')"
        ).fetchall()
        for name, _ in self.indexes:
            self.db.execute(f"DROP INDEX {name}")
        self.inserts = {t: q.sqlite_insert(t) for t in ("usage_records", "reservations", "entries")}
        self.db.execute("BEGIN")

    def write(self, usage: list[dict[str, Any]]) -> None:
        for table, rows in (
            ("reservations", map(reservation_of, usage)),
            ("entries", filter(None, map(entry_of, usage))),
            ("usage_records", usage),
        ):
            sql, convert = self.inserts[table]
            self.db.executemany(sql, map(convert, rows))
        for table, rollup in r.roll_up_tables(usage, self.world.zones):
            self.db.executemany(
                q.sqlite_upsert(table.name, table.dimensions, r.MEASURES), q.sqlite_rollup_rows(rollup)
            )

    def finish(self, counters: dict[str, tuple[int, int]]) -> None:
        for org_id, (spent, tokens) in counters.items():
            self.db.execute(
                "UPDATE orgs SET spent_pico = ?, due_pico = ?, spent_tokens = ? WHERE id = ?",
                (spent, spent, tokens, org_id),
            )
        self.db.execute("COMMIT")
        for _, sql in self.indexes:
            self.db.execute(sql)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.close()


def _pg_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, datetime):
        return value.isoformat()
    text = orjson.dumps(value).decode() if isinstance(value, list | dict) else str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:  # COPY's text format escapes
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


class PostgresLoader(Loader):
    """COPY through psycopg; secondary indexes dropped while loading and built at the end,
    foreign keys not checked row by row (every row names one of the three organisations)."""

    TABLES = ("reservations", "entries", "usage_records")

    def __init__(self, url: str, world: World) -> None:
        import psycopg

        self.conn = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True)
        self.world = world
        self.conn.execute("SET session_replication_role = replica")
        self.conn.execute("SET maintenance_work_mem = '512MB'")
        self.indexes = self.conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            (list(self.TABLES),),
        ).fetchall()
        for name, _ in self.indexes:
            self.conn.execute(f"DROP INDEX {name}")
        self.columns = {t: q.insert_columns(t) for t in self.TABLES}
        self.next_entry = (
            1 + (self.conn.execute("SELECT coalesce(max(id), 0) FROM entries").fetchone() or (0,))[0]
        )
        self.next_usage = 1

    def _copy(self, table: str, rows: Any, ids: bool) -> None:
        columns = self.columns[table]
        names = ("id", *columns) if ids else columns
        buffer = io.StringIO()
        for row in rows:
            if ids:
                buffer.write(str(row["id"]) + "\t")
            buffer.write("\t".join([_pg_text(row[c]) for c in columns]))
            buffer.write("\n")
        with self.conn.cursor().copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
            copy.write(buffer.getvalue())

    def write(self, usage: list[dict[str, Any]]) -> None:
        entries = [e for e in map(entry_of, usage) if e is not None]
        for e in entries:
            e["id"] = self.next_entry
            self.next_entry += 1
        for u in usage:
            u["id"] = self.next_usage
            self.next_usage += 1
        with self.conn.transaction():
            self._copy("reservations", map(reservation_of, usage), ids=False)
            self._copy("entries", entries, ids=True)
            self._copy("usage_records", usage, ids=True)
            for table, rollup in r.roll_up_tables(usage, self.world.zones):
                names = (*table.dimensions, *r.MEASURES)
                self.conn.execute(
                    q.pg_upsert(table.name, table.dimensions, r.MEASURES), q.pg_rollup_rows(rollup, names)
                )

    def finish(self, counters: dict[str, tuple[int, int]]) -> None:
        for org_id, (spent, tokens) in counters.items():
            self.conn.execute(
                "UPDATE orgs SET spent_pico = %s, due_pico = %s, spent_tokens = %s WHERE id = %s",
                (spent, spent, tokens, org_id),
            )
        for table, last in (("entries", self.next_entry), ("usage_records", self.next_usage)):
            self.conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {last})")
        self.conn.execute("SET session_replication_role = DEFAULT")
        for _, sql in self.indexes:
            self.conn.execute(sql)
        self.conn.execute("VACUUM ANALYZE")  # what autovacuum does to a table this size
        self.conn.close()


# Databases -------------------------------------------------------------------------------


def clock(at: datetime) -> Callable[[], datetime]:
    return lambda: at


CREATED = datetime(2026, 8, 1, tzinfo=UTC)  # organisations, projects and keys
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)  # the reports' "now": after the period


def generate(url: str, backend: str, records: int) -> dict[str, float]:
    """Fill the (empty) ledger at ``url``; returns timings."""
    rng = random.Random(SEED)
    began = time.perf_counter()
    ledger = Ledger.open(url, clock=clock(CREATED))
    world = make_world(ledger, rng)
    ledger.close()
    loader: Loader = (
        SqliteLoader(Path(url.removeprefix("sqlite:///")), world)
        if backend == "sqlite"
        else PostgresLoader(url, world)
    )
    feed = Feed(loader, world.org_ids)
    report_every, last = max(records // 10, 1), 0
    for org_id, day, count in org_days(world, records):
        wrote = feed.add(org_id, day_records(world, org_id, day, count, rng))
        if wrote and feed.written - last >= report_every:
            last = feed.written
            rate = feed.written / (time.perf_counter() - began)
            print(f"    {feed.written:>12,} records  {rate:>9,.0f}/s", flush=True)
    feed.flush()
    loaded = time.perf_counter()
    feed.finish()
    done = time.perf_counter()
    return {"load": loaded - began, "index": done - loaded, "total": done - began}


def verify(ledger: Ledger, samples: int = 12) -> list[str]:
    """Rollups = usage records: totals of every organisation in every rollup table, a sample
    of local days rolled up again from their records by the ledger's function, and the
    ledger's own reconcile (which compares each narrower table with its full one)."""
    from sqlalchemy import func, select

    from kakin.ledger import schema as s

    problems = []
    rng = random.Random(7)
    orgs = ledger.list_orgs()
    u = s.usage_records
    for org in orgs:
        counted = ledger.read(
            lambda c, o=org.id: c.execute(
                select(func.count(), func.sum(u.c.cost_pico)).where(u.c.org_id == o)
            ).one()
        )
        for table in s.ROLLUPS.values():
            rolled = ledger.read(
                lambda c, o=org.id, t=table: c.execute(
                    select(func.sum(t.c.requests), func.sum(t.c.cost_pico)).where(t.c.org_id == o)
                ).one()
            )
            if tuple(map(int, rolled)) != tuple(map(int, counted)):
                problems.append(f"{org.name}: {table.name} {tuple(rolled)} != usage records {tuple(counted)}")
    needed = [u.c[name] for name in (
        "org_id", "project_id", "key_id", "model", "input_tokens", "output_tokens", "cached_tokens",
        "reasoning_tokens", "cost_pico", "cost_items", "occurred_at", "cache_hit", "cache_saved_pico",
        "routed_from", "routing_saved_pico")]  # fmt: skip
    zones = {org.id: org.timezone for org in orgs}
    for _ in range(samples):
        org = rng.choice(orgs)
        day = FIRST_DAY + timedelta(days=rng.randrange(DAYS))
        start, end = period_bounds(
            "day", org.timezone, datetime.combine(day, datetime.min.time(), ZoneInfo(org.timezone))
        )
        found = ledger.read(
            lambda c, o=org.id, a=start, b=end: [
                dict(row._mapping)
                for row in c.execute(
                    select(*needed).where(u.c.org_id == o, u.c.occurred_at >= a, u.c.occurred_at < b)
                )
            ]
        )
        for spec, expected in r.roll_up_tables(found, zones):
            table, width = s.ROLLUPS[spec.name], len(spec.dimensions)
            stored = ledger.read(
                lambda c, o=org.id, a=start, b=end, t=table, w=width: {
                    tuple(row[:w]): [int(v) for v in row[w:]]
                    for row in c.execute(select(t).where(t.c.org_id == o, t.c.start >= a, t.c.start < b))
                }
            )
            if stored != expected:
                problems.append(
                    f"{org.name} {day}: {table.name} differs from its usage records rolled up again"
                )
    for org in orgs:
        check = ledger.reconcile(org.id)
        if not check.ok:
            problems.append(f"{org.name}: reconcile: {[c for c in check.checks if not c.ok]}")
    return problems


Timings = dict[str, float]


def cached_sqlite(path: Path, build: Callable[[str], Timings]) -> tuple[str, Timings | None]:
    """A SQLite database kept between runs: ``build(url)`` fills a side file, renamed to
    ``path`` once complete (no timings when it was there already)."""
    url = f"sqlite:///{path}"
    if path.exists():
        return url, None
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_suffix(".building.db")
    for leftover in path.parent.glob(building.name + "*"):
        leftover.unlink()
    timings = build(f"sqlite:///{building}")
    building.rename(path)
    return url, timings


def cached_pg(name: str, build: Callable[[str], Timings]) -> tuple[str, Timings | None]:
    """A PostgreSQL database kept between runs, marked complete by a comment once ``build(url)``
    has filled it (made again when a run stopped half way)."""
    import psycopg

    url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}".replace("postgresql://", "postgresql+psycopg://")
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        comment = admin.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if comment is not None and comment[0] == "complete":
            return url, None
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    timings = build(url)
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"COMMENT ON DATABASE {name} IS 'complete'")
    return url, timings


def sqlite_database(cache: Path, records: int) -> tuple[str, Timings | None]:
    return cached_sqlite(
        cache / f"reports-{records}-v{VERSION}.db", lambda url: generate(url, "sqlite", records)
    )


def pg_name(records: int) -> str:
    return f"kakin_bench_reports_{records}_v{VERSION}"


def pg_database(records: int) -> tuple[str, Timings | None]:
    return cached_pg(pg_name(records), lambda url: generate(url, "postgresql", records))


def drop(backend: str, cache: Path, records: int) -> None:
    if backend == "sqlite":
        for path in cache.glob(f"reports-{records}-v{VERSION}.db*"):
            path.unlink()
        return
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {pg_name(records)} WITH (FORCE)")


# Queries ---------------------------------------------------------------------------------

MONTHS = ((date(2026, 9, 1), date(2026, 10, 1)), (date(2026, 10, 1), date(2026, 11, 1)))
WHOLE = (FIRST_DAY, FIRST_DAY + timedelta(days=DAYS))
TARGET_MS = {"report": 50.0, "log": 20.0}


@dataclass
class Case:
    name: str
    kind: str  # report | log
    run: Callable[[int], Any]  # run number → result (parameters vary with it)
    naive: Callable[[int], Any] | None


@dataclass
class Org:
    id: str
    name: str
    zone: str
    projects: list[str]
    keys: list[str]
    models: list[str]


class Naive:
    """The same answers from the usage records, as a report without rollups would read them."""

    SUMS = (
        "count(*), sum(cost_pico), sum(input_tokens), sum(cached_tokens), sum(output_tokens), "
        "sum(reasoning_tokens), sum(cache_saved_pico), sum(routing_saved_pico), "
        "sum(CASE WHEN cache_hit THEN 1 ELSE 0 END)"
    )

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.postgres = ledger.backend == "postgresql"
        self.mark = "%({})s" if self.postgres else ":{}"

    def _bound(self, day: date, zone: str) -> Any:
        at = datetime.combine(day, datetime.min.time(), ZoneInfo(zone)).astimezone(UTC)
        return at if self.postgres else at.replace(tzinfo=None).isoformat(" ", "microseconds")

    def _run(self, sql: str, params: dict[str, Any]) -> list[Any]:
        with self.ledger.engine.connect() as conn:
            return conn.exec_driver_sql(sql, params).all()

    def spend(
        self, org: Org, by: str, first: date, last: date, models: tuple[str, ...] = (), **filters: str
    ) -> list[Any]:
        m = self.mark
        params: dict[str, Any] = {
            "org": org.id,
            "a": self._bound(first, org.zone),
            "b": self._bound(last, org.zone),
        }
        where = (
            f"org_id = {m.format('org')} AND occurred_at >= {m.format('a')} AND occurred_at < {m.format('b')}"
        )
        for column, value in filters.items():
            params[column] = value
            where += f" AND {column} = {m.format(column)}"
        for n, name in enumerate(models):  # by time and model, for these models
            params[f"m{n}"] = name
        if models:
            where += f" AND model IN ({', '.join(m.format(f'm{n}') for n in range(len(models)))})"
        if by in ("day", "hour"):
            if self.postgres:
                params["tz"] = org.zone
                group = f"date_trunc('{by}', occurred_at AT TIME ZONE %(tz)s)"
            else:  # SQLite knows no zones: the offset at the range's start, as naive code does
                offset = datetime.combine(first, datetime.min.time(), ZoneInfo(org.zone)).utcoffset()
                minutes = int(offset.total_seconds() // 60) if offset else 0
                shape = "%Y-%m-%d" if by == "day" else "%Y-%m-%dT%H"
                group = f"strftime('{shape}', occurred_at, '{minutes:+d} minutes')"
        elif by == "unit":
            return self._run(f"SELECT {self.SUMS} FROM usage_records WHERE {where}", params)
        else:
            group = {"model": "model", "project": "project_id", "key": "key_id"}[by]
        if models:
            return self._run(
                f"SELECT {group}, model, {self.SUMS} FROM usage_records WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2",
                params,
            )
        return self._run(
            f"SELECT {group}, {self.SUMS} FROM usage_records WHERE {where} GROUP BY 1 ORDER BY 1", params
        )

    def log_page(self, org: Org, depth: int, project: str | None = None) -> list[Any]:
        m = self.mark
        where = f"org_id = {m.format('org')}" + (f" AND project_id = {m.format('p')}" if project else "")
        sql = (
            "SELECT id, request_id, reservation_id, occurred_at, project_id, key_id, model, input_tokens, "
            f"cached_tokens, output_tokens, cost_pico, cache_hit, routed_from FROM usage_records WHERE {where} "
            f"ORDER BY occurred_at DESC, id DESC LIMIT 50 OFFSET {m.format('depth')}"
        )
        return self._run(sql, {"org": org.id, "p": project, "depth": depth})

    def request(self, request_id: str) -> list[Any]:
        return self._run(
            f"SELECT * FROM usage_records WHERE request_id = {self.mark.format('r')}", {"r": request_id}
        )


def load_orgs(ledger: Ledger) -> list[Org]:
    from sqlalchemy import func, select

    from kakin.ledger import schema as s

    out = []
    days = s.rollup_days
    for org in ledger.list_orgs():
        top = ledger.read(
            lambda c, o=org.id: [
                tuple(row)
                for row in c.execute(
                    select(days.c.project_id, days.c.key_id, days.c.model, func.sum(days.c.requests))
                    .where(days.c.org_id == o)
                    .group_by(days.c.project_id, days.c.key_id, days.c.model)
                    .order_by(func.sum(days.c.requests).desc())
                    .limit(40)
                )
            ]
        )
        ordered = lambda values: list(dict.fromkeys(v for v in values if v))  # noqa: E731
        out.append(
            Org(
                org.id,
                org.name,
                org.timezone,
                ordered(t[0] for t in top),
                ordered(t[1] for t in top),
                ordered(t[2] for t in top),
            )
        )
    return out


def cases(ledger: Ledger, orgs: list[Org]) -> list[Case]:
    reports, naive = Reports(ledger), Naive(ledger)
    out = []

    def org_of(i: int) -> Org:
        return orgs[i % len(orgs)]

    def month(i: int) -> tuple[date, date]:
        return MONTHS[(i // len(orgs)) % len(MONTHS)]

    for by in ("day", "hour", "model", "project", "key", "unit"):
        for span, window in (("month", month), ("90 days", lambda i: WHOLE)):
            out.append(
                Case(
                    f"spend by {by}, {span}",
                    "report",
                    lambda i, by=by, window=window: reports.spend(
                        org_of(i).id, by=by, start=window(i)[0], end=window(i)[1]
                    ),
                    lambda i, by=by, window=window: naive.spend(org_of(i), by, *window(i)),
                )
            )
    filtered = (  # name, grouping, window, filter: (reports' argument, usage column, the org's value)
        ("spend by day, month, one project", "day", month, ("project", "project_id", lambda o, i: o.projects[i % 3])),
        ("spend by model, 90 days, one key", "model", lambda i: WHOLE, ("key", "key_id", lambda o, i: o.keys[i % 5])),
        ("spend by hour, month, one model", "hour", month, ("model", "model", lambda o, i: o.models[i % 3])),
        ("spend by key, 90 days, one project", "key", lambda i: WHOLE, ("project", "project_id", lambda o, i: o.projects[i % 3])),
    )  # fmt: skip
    for name, by, window, (argument, column, pick) in filtered:
        out.append(
            Case(
                name,
                "report",
                lambda i, by=by, window=window, argument=argument, pick=pick: reports.spend(
                    org_of(i).id,
                    by=by,
                    start=window(i)[0],
                    end=window(i)[1],
                    **{argument: pick(org_of(i), i)},
                ),
                lambda i, by=by, window=window, column=column, pick=pick: naive.spend(
                    org_of(i), by, *window(i), **{column: pick(org_of(i), i)}
                ),
            )
        )
    for by, span, window in (("day", "90 days", lambda i: WHOLE), ("hour", "month", month)):
        out.append(
            Case(  # the spend page's chart: the organisation's six largest models over time
                f"spend by {by} of 6 models, {span}",
                "report",
                lambda i, by=by, window=window: reports.spend_by_model(
                    org_of(i).id, org_of(i).models[:6], by=by, start=window(i)[0], end=window(i)[1]
                ),
                lambda i, by=by, window=window: naive.spend(
                    org_of(i), by, *window(i), models=tuple(org_of(i).models[:6])
                ),
            )
        )
    out.append(
        Case(
            "what-if on 2 models, month",
            "report",
            lambda i: reports.whatif(
                org_of(i).id, ["gpt-4.1-mini", "gemini-2.5-flash"], start=month(i)[0], end=month(i)[1]
            ),
            lambda i: naive.spend(org_of(i), "model", *month(i)),
        )
    )
    # The request log: a cursor at a given depth is the `next` of a one-row page ending there.
    cursors: dict[tuple[str, str], tuple[str | None, int]] = {}
    for org in orgs:
        total = sum(
            line.spend.requests
            for line in reports.spend(org.id, by="model", start=WHOLE[0], end=WHOLE[1]).lines
        )
        for where, day in (
            ("middle", FIRST_DAY + timedelta(days=DAYS // 2)),
            ("end", FIRST_DAY + timedelta(days=1)),
        ):
            page = reports.requests(org.id, start=WHOLE[0], end=day, limit=1)
            before = reports.spend(org.id, by="unit", start=WHOLE[0], end=day).total.requests
            cursors[(org.id, where)] = (page.next, total - before)
        cursors[(org.id, "start")] = (None, 0)
    for where in ("start", "middle", "end"):
        out.append(
            Case(
                f"request log page (50), {where}",
                "log",
                lambda i, where=where: reports.requests(
                    org_of(i).id, limit=50, after=cursors[(org_of(i).id, where)][0]
                ),
                lambda i, where=where: naive.log_page(org_of(i), cursors[(org_of(i).id, where)][1]),
            )
        )
    out.append(
        Case(
            "request log page (50), one project, first",
            "log",
            lambda i: reports.requests(org_of(i).id, project=org_of(i).projects[i % 3], limit=50),
            lambda i: naive.log_page(org_of(i), 0, org_of(i).projects[i % 3]),
        )
    )
    rng = random.Random(3)
    from sqlalchemy import func, select

    from kakin.ledger import schema as s

    u = s.usage_records
    top = ledger.read(lambda c: c.execute(select(func.max(u.c.id))).scalar()) or 1
    sample_ids = []
    while len(sample_ids) < 40:
        found = ledger.read(
            lambda c, n=rng.randrange(1, top + 1): c.execute(
                select(u.c.request_id).where(u.c.id == n)
            ).scalar()
        )
        if found:
            sample_ids.append(found)
    out.append(
        Case(
            "one request's detail by request_id",
            "log",
            lambda i: reports.request(sample_ids[i % len(sample_ids)]),
            lambda i: naive.request(sample_ids[i % len(sample_ids)]),
        )
    )
    return out


def timed(fn: Callable[[int], Any], runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds (this process) of each run."""
    wall, cpu = [], []
    for i in range(runs):
        start, used = time.perf_counter(), time.process_time()
        fn(i)
        cpu.append((time.process_time() - used) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
    return wall, cpu


def server_cpu(ledger: Ledger) -> float:
    """CPU seconds so far of the PostgreSQL backends serving this ledger (0 on SQLite)."""
    if ledger.backend != "postgresql":
        return 0.0
    import psycopg

    name = ledger.engine.url.database
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        query = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type <> 'autovacuum worker'"
        pids = [row[0] for row in conn.execute(query, (name,))]
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def pct(values: list[float], q_: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q_ * len(ordered)) - 1)]


def run_queries(ledger: Ledger, runs: int, naive_runs: int) -> list[tuple[str, bool]]:
    orgs = load_orgs(ledger)
    verdicts = []
    # CPU ms: this process (p50), plus on PostgreSQL its backends (mean: the kernel counts
    # in 10 ms ticks). On a shared machine wall-clock moves with everyone else's load.
    header = f"  {'query':<44}{'p50 ms':>9}{'p95 ms':>9}{'CPU ms':>8}{'target':>8}{'naive p50':>11}{'naive/report':>14}"
    print(header)
    for case in cases(ledger, orgs):
        case.run(0)  # warm: plans, caches, imports
        before = server_cpu(ledger)
        times, cpu = timed(case.run, runs)
        cpu_ms = statistics.median(cpu) + (server_cpu(ledger) - before) * 1000 / runs
        p50, p95 = statistics.median(times), pct(times, 0.95)
        target = TARGET_MS[case.kind]
        ok = p50 <= target
        verdicts.append((case.name, ok))
        naive_text = ratio = ""
        if case.naive is not None and naive_runs:
            naive_times = timed(case.naive, naive_runs)[0]
            naive_p50 = statistics.median(naive_times)
            naive_text, ratio = f"{naive_p50:,.1f}", f"{naive_p50 / p50:,.1f}x"
        verdict = "PASS" if ok else "FAIL"
        print(
            f"  {case.name:<44}{p50:>9.2f}{p95:>9.2f}{cpu_ms:>8.1f}{f'≤{target:.0f}':>8}{naive_text:>11}{ratio:>14}  {verdict}",
            flush=True,
        )
    return verdicts


def run_pages(ledger: Ledger, runs: int) -> None:
    """The dashboard's pages over this ledger, drawn in-process as bench_dashboard.py draws
    them, for each organisation with the clock at the end of its last day."""
    from starlette.testclient import TestClient

    from bench_dashboard import draw
    from kakin.web import create_web_app

    reports = Reports(ledger)
    admin = "bench-admin-key"
    last = WHOLE[1] - timedelta(days=1)
    with TestClient(create_web_app(ledger, admin_key=admin), base_url="http://127.0.0.1") as client:
        client.post("/signin", data={"key": admin}, follow_redirects=False)
        for org in load_orgs(ledger):
            zone = ZoneInfo(org.zone)
            ledger.clock = clock(
                datetime.combine(last, datetime.min.time(), zone).replace(hour=20).astimezone(UTC)
            )
            middle = reports.requests(
                org.id, start=WHOLE[0], end=FIRST_DAY + timedelta(days=DAYS // 2), limit=1
            )
            end = reports.requests(org.id, start=WHOLE[0], end=FIRST_DAY + timedelta(days=1), limit=1)
            o, span = f"org={org.name}", f"from={WHOLE[0]}&to={WHOLE[1]}"
            print(f"  {org.name} ({org.zone}), clock {ledger.now().astimezone(zone):%Y-%m-%d %H:%M} local")
            draw(
                client,
                {
                    "overview (month to date)": f"/?{o}",
                    "spend by day, month (6 models charted)": f"/spend?{o}",
                    "spend by day, 90 days": f"/spend?{o}&{span}",
                    "spend by hour, today": f"/spend?{o}&by=hour",
                    "breakdown by model, 90 days": f"/breakdown?{o}&by=model&{span}",
                    "breakdown by key, 90 days": f"/breakdown?{o}&by=key&{span}",
                    "breakdown by unit, month": f"/breakdown?{o}&by=unit",
                    "savings, month": f"/savings?{o}",
                    "request log page, start": f"/requests?{o}",
                    "request log page, middle": f"/requests?{o}&after={middle.next}",
                    "request log page, end": f"/requests?{o}&after={end.next}",
                },
                runs,
                lambda: server_cpu(ledger),
            )


def sizes(ledger: Ledger) -> str:
    from sqlalchemy import func, select

    from kakin.ledger import schema as s

    counts = {
        t.name: ledger.read(lambda c, t=t: c.execute(select(func.count()).select_from(t)).scalar())
        for t in (s.usage_records, s.rollup_hours, s.rollup_days, s.entries)
    }
    return ", ".join(f"{name} {n:,}" for name, n in counts.items())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--part", choices=("queries", "pages", "all"), default="all")
    parser.add_argument("--runs", type=int, default=11, help="timed runs of each query (varied parameters)")
    parser.add_argument("--naive-runs", type=int, default=3, help="runs of each naive equivalent (0: none)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/kakin-bench-reports"), help="SQLite files")
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--verify", action="store_true", help="check the rollups of a reused database too")
    parser.add_argument("--drop", action="store_true", help="remove the generated databases at the end")
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"kakin reports benchmark: {args.records:,} usage records ({os.cpu_count()} CPUs, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"
    )
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    for backend in backends:
        print(f"\n{'SQLite' if backend == 'sqlite' else 'PostgreSQL'}")
        url, timings = (
            sqlite_database(args.cache, args.records) if backend == "sqlite" else pg_database(args.records)
        )
        if timings is None:
            print("  generated earlier: reused")
        else:
            rate = args.records / timings["total"]
            print(
                f"  generated in {timings['total']:,.1f} s ({timings['load']:,.1f} s rows and rollups, {timings['index']:,.1f} s indexes): {rate:,.0f} records/s"
            )
        ledger = Ledger.open(url, clock=clock(NOW))  # a database kept from an older head is migrated
        try:
            print(f"  {sizes(ledger)}")
            if (timings is not None or args.verify) and not args.no_verify:
                started = time.perf_counter()
                problems = verify(ledger)
                took = time.perf_counter() - started
                print(
                    f"  rollups = usage records (totals, 12 sampled days rolled up again, reconcile): {'OK' if not problems else 'FAILED'} ({took:.1f} s)"
                )
                for problem in problems:
                    print(f"    {problem}")
            if not args.generate_only:
                if args.part in ("queries", "all"):
                    run_queries(ledger, args.runs, args.naive_runs)
                if args.part in ("pages", "all"):
                    run_pages(ledger, args.runs)
        finally:
            ledger.close()
        if args.drop:
            drop(backend, args.cache, args.records)
    load = os.getloadavg()
    print(f"\nload at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()

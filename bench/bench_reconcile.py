"""Reconciling a 90-day provider export of about 100,000 rows, against plain parsing of it.

Two exports are generated, each covering 90 UTC days (2026-06-01 to 08-29):

* OpenAI ``/v1/organization/costs`` pages grouped by line item, project and API key: 21
  models × 3 line items (input, cached input, output) × 6 projects × 3 keys per day, amounts
  as JSON numbers and long decimal strings alternately — 102,060 results in 90 pages;
* Google Cloud Billing's BigQuery export as JSON lines: hourly rows of 15 Gemini models × 3
  SKUs plus one Compute Engine SKU, one row in 10 with a credit — 99,360 rows.

kakin's side is an organisation in Asia/Kolkata (its local hours start at :30 UTC, so the hour
that spans UTC midnight is split from usage records) with hour rollups for every model, hour and
two keys over the 90 days (written straight into ``rollup_hours``, as the charge path would), and
one metered request per model so the comparison knows which provider served it.

Measured in one run, CPU seconds (``time.process_time``: the machine is shared, wall clock is
noisy) and wall seconds, best of ``--runs``:

* baseline — plain parsing of the file: ``json.loads(text, parse_float=Decimal)`` (the whole
  document, or each line), nothing else;
* read — ``parse_bill``: parse, validate every field, map line items, add rows of one line up;
* import — ``BillStore.import_bill`` into a fresh ledger (read + store);
* compare — ``Reconciler.compare`` over the 90 days;
* import + compare, and its ratio to the baseline.

    .venv/bin/python bench/bench_reconcile.py [--runs 3] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from kakin.ledger import Ledger, Scope, UsageDetail
from kakin.ledger import rollups as r
from kakin.ledger import schema as s
from kakin.reconcile import BillStore, Reconciler, parse_bill

START = date(2026, 6, 1)
DAYS = 90
OPENAI_MODELS = [f"gpt-bench-{n}" for n in range(21)]
GEMINI_MODELS = [f"gemini-bench-{n}" for n in range(15)]
SEED = 20260601


def openai_export() -> bytes:
    rng = random.Random(SEED)
    pages = []
    for n in range(DAYS):
        day = datetime.combine(START + timedelta(days=n), datetime.min.time(), UTC)
        results = []
        for model in OPENAI_MODELS:
            for what in ("input", "cached input", "output"):
                for project in range(6):
                    for key in range(3):
                        value = Decimal(rng.randrange(1, 10**9)) / 10**10
                        amount: Any = float(value) if len(results) % 2 else f"{value}0000001"
                        results.append(
                            {
                                "object": "organization.costs.result",
                                "amount": {"value": amount, "currency": "usd"},
                                "line_item": f"{model}-2026-05-01, {what}",
                                "project_id": f"proj_{project}",
                                "api_key_id": f"key_{project}_{key}",
                            }
                        )
        bucket = {
            "object": "bucket",
            "start_time": int(day.timestamp()),
            "end_time": int(day.timestamp()) + 86400,
        }
        pages.append({"object": "page", "data": [{**bucket, "results": results}], "has_more": n < DAYS - 1})
    return json.dumps(pages).encode()


def google_export() -> bytes:
    rng = random.Random(SEED)
    lines = []
    for hour in range(DAYS * 24):
        at = datetime.combine(START, datetime.min.time(), UTC) + timedelta(hours=hour)
        stamp = at.strftime("%Y-%m-%d %H:%M:%S UTC")
        skus = [(m, k) for m in GEMINI_MODELS for k in ("Input", "Cached input", "Output")] + [(None, None)]
        for model, kind in skus:
            service = "Gemini API" if model else "Compute Engine"
            sku = f"{model.replace('-', ' ').title()} {kind} token count" if model else "E2 Instance Core"
            row = {
                "service": {"description": service},
                "sku": {"description": sku},
                "usage_start_time": stamp,
                "project": {"id": "gen-lang-client-1"},
                "cost": round(rng.random() / 100, 6),
                "currency": "USD",
                "usage": {"amount": rng.randrange(1000, 100000), "unit": "count"},
                "credits": [{"name": "Free tier", "amount": -0.0001}] if rng.random() < 0.1 else [],
                "cost_type": "regular",
            }
            lines.append(json.dumps(row))
    return ("\n".join(lines) + "\n").encode()


def seed_ledger(url: str, provider_models: dict[str, list[str]]) -> str:
    """An organisation with hour rollups for every model, hour and two keys over the days."""
    noon = datetime.combine(START, datetime.min.time(), UTC) + timedelta(hours=12, minutes=5)
    with Ledger.open(url, clock=lambda: noon) as ledger:  # the requests on the first day
        org = ledger.create_org("bench", timezone="Asia/Kolkata")
        project = ledger.create_project(org.id, "app")
        key, _ = ledger.create_key(project.id, "server")
        for provider, models in provider_models.items():
            for model in models:  # one record per model: the provider that served it
                usage = UsageDetail(provider=provider, input_tokens=10, output_tokens=1)
                ledger.post(
                    Scope(org.id, project.id, key.id, model), Decimal("0.0001"), usage, idempotency_key=model
                )
        rng = random.Random(SEED)
        rows = []
        first = datetime.combine(START, datetime.min.time(), UTC) - timedelta(minutes=30)
        for hour in range(DAYS * 24 + 1):
            start = first + timedelta(hours=hour)
            for models in provider_models.values():
                for model in models:
                    for key_id in ("key_a", "key_b"):
                        values = dict.fromkeys(r.MEASURES, 0)
                        values.update(
                            requests=10,
                            input_tokens=rng.randrange(10**5),
                            cached_tokens=rng.randrange(10**5),
                            output_tokens=rng.randrange(10**4),
                            input_pico=rng.randrange(10**9),
                            cached_input_pico=rng.randrange(10**8),
                            output_pico=rng.randrange(10**9),
                        )
                        values["cost_pico"] = (
                            values["input_pico"] + values["cached_input_pico"] + values["output_pico"]
                        )
                        dims = {
                            "org_id": org.id,
                            "start": start,
                            "project_id": "prj_bench",
                            "key_id": key_id,
                            "model": model,
                        }
                        rows.append(dims | values)

        def write(conn: Any) -> None:
            for at in range(0, len(rows), 5000):
                conn.execute(insert(s.rollup_hours), rows[at : at + 5000])

        with ledger.engine.begin() as conn:
            write(conn)
        return org.id


def best(runs: int, fn: Callable[[], Any]) -> tuple[float, float, Any]:
    cpu_best = wall_best = float("inf")
    result = None
    for _ in range(runs):
        cpu, wall = time.process_time(), time.perf_counter()
        result = fn()
        cpu_best = min(cpu_best, time.process_time() - cpu)
        wall_best = min(wall_best, time.perf_counter() - wall)
    return cpu_best, wall_best, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", help="a ledger to use (default: a fresh SQLite file per run)")
    args = parser.parse_args()
    exports = {"openai": openai_export(), "google": google_export()}
    models = {"openai": OPENAI_MODELS, "gemini": GEMINI_MODELS}
    print(
        f"{'export':<8} {'rows':>8} {'MB':>6} | {'step':<17} {'cpu s':>7} {'wall s':>7} {'× baseline (cpu)':>17}"
    )
    for provider, data in exports.items():
        text = data.decode()

        def baseline(text: str = text, provider: str = provider) -> int:
            if provider == "google":
                return len([json.loads(line, parse_float=Decimal) for line in text.splitlines()])
            return len(json.loads(text, parse_float=Decimal))

        base_cpu, base_wall, _ = best(args.runs, baseline)
        read_cpu, read_wall, bill = best(
            args.runs, lambda data=data, provider=provider: parse_bill(provider, data)
        )
        imports: list[tuple[float, float]] = []
        compares: list[tuple[float, float]] = []
        result = None
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as folder:
                url = args.database_url or f"sqlite:///{Path(folder) / 'kakin.db'}"
                org = seed_ledger(url, models)
                with Ledger.open(url) as ledger:
                    cpu, wall, _ = best(1, partial(BillStore(ledger).import_bill, org, provider, data))
                    imports.append((cpu, wall))
                    cpu, wall, result = best(1, partial(Reconciler(ledger).compare, org, provider))
                    compares.append((cpu, wall))
        imp = min(imports)
        cmp_ = min(compares)
        total = (imp[0] + cmp_[0], imp[1] + cmp_[1])
        assert result is not None
        rows = [
            ("baseline: parse", base_cpu, base_wall),
            ("read (parse_bill)", read_cpu, read_wall),
            ("import", *imp),
            ("compare", *cmp_),
            ("import + compare", *total),
        ]
        for n, (step, cpu, wall) in enumerate(rows):
            lead = f"{provider:<8} {bill.rows:>8} {len(data) / 1e6:>6.1f}" if n == 0 else " " * 24
            print(f"{lead} | {step:<17} {cpu:>7.2f} {wall:>7.2f} {cpu / base_cpu:>16.1f}×")
        print(
            f"{'':24} | {len(bill.lines):,} bill lines stored, {len(result.lines):,} lines compared, "
            f"{len(result.flagged):,} flagged (random figures)"
        )


if __name__ == "__main__":
    main()

"""Rollups are written with each charge and always equal the sum of the usage records: after
random sequences of charges (repeated, voided, batched), after a crash and a journal replay,
and day by day in the organisation's own timezone."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from kakin.errors import KakinError
from kakin.ledger import Ledger, PostOp, ReserveOp, Scope, SettleOp, UsageDetail, VoidOp, rollups
from kakin.ledger import schema as s

_names = itertools.count()
PICO = Decimal(1).scaleb(-12)

# (component, unit, direction) → the report unit its money belongs to
LINES = {
    ("input", "token", "input"): "input",
    ("cache_read", "token", "input"): "cached_input",
    ("cache_write", "token", "input"): "cache_write",
    ("output", "token", "output"): "output",
    ("output_reasoning", "token", "output"): "reasoning",
    ("image 1024x1024 high", "image", "output"): "images",
    ("audio", "second", "input"): "audio",
    ("request", "request", None): "requests",
    ("web_search", "search", None): "other",
}


def stored(ledger: Ledger, table) -> dict[tuple, dict[str, int]]:  # type: ignore[no-untyped-def]
    key = [c.name for c in table.primary_key.columns]
    with ledger.engine.connect() as conn:
        return {
            tuple(row._mapping[d] for d in key): {m: row._mapping[m] for m in rollups.MEASURES}
            for row in conn.execute(select(table))
        }


def every_table(ledger: Ledger) -> dict[str, dict[tuple, dict[str, int]]]:
    """What every rollup table holds, by table name."""
    return {spec.name: stored(ledger, s.ROLLUPS[spec.name]) for spec in rollups.TABLES}


def rebuilt(ledger: Ledger) -> dict[str, dict[tuple, dict[str, int]]]:
    """Every rollup table computed afresh from every usage record in the database."""
    with ledger.engine.connect() as conn:
        zones = {row.id: row.timezone for row in conn.execute(select(s.orgs.c.id, s.orgs.c.timezone))}
        records = [dict(row._mapping) for row in conn.execute(select(s.usage_records))]
    as_rows = lambda rollup: {  # noqa: E731
        k: dict(zip(rollups.MEASURES, v, strict=True)) for k, v in rollup.items()
    }
    return {spec.name: as_rows(rollup) for spec, rollup in rollups.roll_up_tables(records, zones)}


def totals(rollup: dict[tuple, dict[str, int]]) -> Counter[str]:
    out: Counter[str] = Counter()
    for values in rollup.values():
        out.update(values)
    return out


line = st.tuples(st.sampled_from(sorted(LINES, key=str)), st.integers(1, 5000), st.integers(0, 10**9))
charge = st.tuples(
    st.sampled_from(["post", "post", "pair", "batch", "void", "advance"]),
    st.integers(0, 8),  # idempotency key number: small, so keys repeat
    st.lists(line, max_size=4),
    st.integers(0, 3),  # project/key/model choice
    st.booleans(),  # cache hit
)


def units_of(lines: list) -> Counter[str]:
    out: Counter[str] = Counter()
    for component, _, pico in lines:
        out[LINES[component]] += pico
    return out


def usage_of(lines: list, choice: int, hit: bool, input_tokens: int) -> tuple[Decimal, UsageDetail]:
    items = [
        {
            "component": c,
            "quantity": str(q),
            "unit": u,
            "direction": d,
            "amount": str(Decimal(p) * PICO),
        }
        for (c, u, d), q, p in lines
    ]
    amount = sum((Decimal(p) * PICO for _, _, p in lines), Decimal(0))
    detail = UsageDetail(
        provider="sim",
        input_tokens=input_tokens,
        output_tokens=choice * 7,
        cached_tokens=input_tokens // 3,
        cost_items=json.dumps(items) if choice % 2 else items,
        request_id=f"req-{input_tokens}-{choice}",
        cache_hit=hit,
        cache_saved=Decimal("0.001") if hit else Decimal(0),
        routed_from="big-model" if choice == 3 else None,
        routing_saved=Decimal("0.0005") if choice == 3 else Decimal(0),
    )
    return amount, detail


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(charge, min_size=1, max_size=15))
def test_rollups_equal_the_usage_records_after_any_sequence(ledger: Ledger, clock, steps) -> None:  # type: ignore[no-untyped-def]
    zone = ["Asia/Tokyo", "America/Los_Angeles", "Asia/Kolkata"][next(_names) % 3]
    org = ledger.create_org(f"roll-{next(_names)}", timezone=zone, payment_label="card")
    projects = [ledger.create_project(org.id, f"p{i}") for i in range(2)]
    keys = [ledger.create_key(projects[0].id, "k")[0].id, None]
    scopes = [Scope(org.id, projects[i % 2].id, keys[i % 2], f"model-{i % 3}") for i in range(4)]
    expected_units: Counter[str] = Counter()
    posted: set[str] = set()
    open_holds: list[str] = []
    for n, (kind, key_no, lines, choice, hit) in enumerate(steps):
        amount, usage = usage_of(lines, choice, hit, 100 * key_no + choice)
        key = f"k{key_no}-{choice}"
        try:
            if kind == "advance":
                clock.advance(minutes=37 * (key_no + 1))
            elif kind == "post":
                ledger.post(scopes[choice], amount, usage, idempotency_key=key)
                if key not in posted:
                    expected_units.update(units_of(lines))
                posted.add(key)
            elif kind == "batch":  # a retried batch: the same charges twice, sharing buckets
                ops = [
                    PostOp(scopes[choice], amount, usage, key),
                    PostOp(scopes[choice], amount, usage, f"b{n}"),
                ]
                ledger.batch([*ops, *ops])
                for k in (key, f"b{n}"):
                    if k not in posted:
                        expected_units.update(units_of(lines))
                    posted.add(k)
            elif kind == "pair":
                held = ledger.reserve(scopes[choice], amount + 1, 10, idempotency_key=f"r{n}")
                ledger.batch([SettleOp(held.id, amount, usage), SettleOp(held.id, amount, usage)])
                expected_units.update(units_of(lines))
            elif kind == "void":
                held = ledger.reserve(scopes[choice], amount + 1, 10, idempotency_key=f"v{n}")
                open_holds.append(held.id)
                ledger.batch([VoidOp(held.id), ReserveOp(scopes[choice], amount, 5, f"v{n}")])
        except KakinError:
            pass  # a key reused with other parameters: refused, nothing written

    tables = every_table(ledger)
    assert tables == rebuilt(ledger)
    usage = ledger.usage(org.id)
    for table in tables.values():
        sums = totals({k: v for k, v in table.items() if k[0] == org.id})
        assert sums["requests"] == len(usage)
        assert sums["cost_pico"] == sum(round(u.cost / PICO) for u in usage)
        assert sums["cache_hits"] == sum(u.cache_hit for u in usage)
        assert sums["cached_tokens"] == sum(u.cached_tokens for u in usage)
        assert sums["cache_saved_pico"] == sum(round(u.cache_saved / PICO) for u in usage)
        assert sums["routing_saved_pico"] == sum(round(u.routing_saved / PICO) for u in usage)
        assert {unit: sums[f"{unit}_pico"] for unit in rollups.UNITS if sums[f"{unit}_pico"]} == {
            unit: value for unit, value in expected_units.items() if value
        }
    assert ledger.reconcile(org.id).ok


def test_a_replayed_journal_counts_each_charge_once(tmp_path: Path) -> None:
    from kakin.gateway.committer import ProcessCommitter
    from kakin.gateway.journal import ChargeJournal

    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    org = ledger.create_org("replay", timezone="Asia/Tokyo", payment_label="card")
    project = ledger.create_project(org.id, "p")
    scope = Scope(org.id, project.id, None, "m")
    items = [
        {"component": "output", "quantity": "5", "unit": "token", "direction": "output", "amount": "0.01"}
    ]
    usage = UsageDetail(provider="sim", input_tokens=10, output_tokens=5, cost_items=items)
    path = str(tmp_path / "ledger.db.charges")

    async def journal_only() -> None:
        journal = ChargeJournal(path)
        for i in range(20):
            await journal.append(PostOp(scope, Decimal("0.01"), usage, f"req-{i}", 15))
        journal.close()  # the process dies before posting anything

    asyncio.run(journal_only())
    segments = {file: file.read_bytes() for file in Path(path).glob("*.log")}

    def start_and_stop() -> None:
        writer = ProcessCommitter(str(ledger.engine.url), hold_seconds=900, max_batch=8, journal=path)

        async def run() -> None:
            await writer.start()  # applies the journal left behind
            await writer.stop()

        asyncio.run(run())

    start_and_stop()
    first = every_table(ledger)
    for file, content in segments.items():  # died after posting, before deleting the journal
        file.write_bytes(content)
    start_and_stop()
    assert every_table(ledger) == first == rebuilt(ledger)
    (day,) = first["rollup_days"].values()
    assert all(list(table.values()) == [day] for name, table in first.items() if "days" in name)
    assert (day["requests"], day["cost_pico"], day["output_pico"]) == (20, 20 * 10**10, 20 * 10**10)
    assert (day["input_tokens"], day["output_tokens"]) == (200, 100)
    assert ledger.reconcile(org.id).ok
    ledger.close()


def test_days_follow_each_organisations_local_calendar(ledger: Ledger, clock) -> None:  # type: ignore[no-untyped-def]
    tokyo = ledger.create_org("tokyo", timezone="Asia/Tokyo", payment_label="card")
    la = ledger.create_org("la", timezone="America/Los_Angeles", payment_label="card")
    usage = UsageDetail(provider="sim", input_tokens=1, output_tokens=1)
    # Hours apart across one UTC day: 14:30 UTC is 23:30 in Tokyo, 07:30 in Los Angeles;
    # 15:30 UTC is already the next day in Tokyo.
    moments = [datetime(2024, 3, 9, h, 30, tzinfo=UTC) for h in (7, 8, 14, 15, 23)]
    for org in (tokyo, la):
        project = ledger.create_project(org.id, "p")
        for i, moment in enumerate(moments):
            clock.set(moment)
            ledger.post(Scope(org.id, project.id, None, "m"), Decimal(i + 1), usage, idempotency_key=f"c{i}")
    days = stored(ledger, s.rollup_days)

    def by_day(org_id: str, zone: str) -> dict[str, int]:
        from zoneinfo import ZoneInfo

        out: dict[str, int] = {}
        for (owner, start, *_), values in days.items():
            if owner == org_id:
                local = start.astimezone(ZoneInfo(zone))
                assert (local.hour, local.minute) == (0, 0)  # a bucket starts at local midnight
                out[local.date().isoformat()] = values["cost_pico"] // 10**12
        return out

    # Tokyo: 07:30 and 08:30 and 14:30 UTC are 3/9 local; 15:30 and 23:30 UTC are 3/10.
    assert by_day(tokyo.id, "Asia/Tokyo") == {"2024-03-09": 1 + 2 + 3, "2024-03-10": 4 + 5}
    # Los Angeles (UTC−8): 07:30 UTC is 3/8 23:30 local; the rest are 3/9.
    assert by_day(la.id, "America/Los_Angeles") == {"2024-03-08": 1, "2024-03-09": 2 + 3 + 4 + 5}
    for org in (tokyo, la):
        assert sum(by_day(org.id, org.timezone).values()) == 15  # the days add up to the total
    hours = stored(ledger, s.rollup_hours)
    assert {start for (owner, start, *_) in hours if owner == tokyo.id} == {
        m - timedelta(minutes=30) for m in moments
    }


def test_hours_of_a_half_hour_zone_start_at_half_past(ledger: Ledger, clock) -> None:  # type: ignore[no-untyped-def]
    org = ledger.create_org("kolkata", timezone="Asia/Kolkata", payment_label="card")
    project = ledger.create_project(org.id, "p")
    clock.set(datetime(2024, 5, 1, 10, 10, tzinfo=UTC))  # 15:40 IST
    ledger.post(
        Scope(org.id, project.id, None, "m"), Decimal(1), UsageDetail(provider="sim"), idempotency_key="a"
    )
    ((_, start, *_),) = stored(ledger, s.rollup_hours)
    assert start == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)  # 15:00 IST
    ((_, day, *_),) = stored(ledger, s.rollup_days)
    assert day == datetime(2024, 4, 30, 18, 30, tzinfo=UTC)  # 00:00 IST


def test_money_by_unit_adds_up_to_the_charge() -> None:
    base = {
        "cache_hit": False,
        "routed_from": None,
        "cache_saved_pico": 0,
        "routing_saved_pico": 0,
        "input_tokens": 1000,
        "output_tokens": 10,
        "cached_tokens": 200,
    }
    items = [
        {
            "component": "input",
            "quantity": "700",
            "unit": "token",
            "direction": "input",
            "amount": "0.0000001",
        },
        {
            "component": "cache_write",
            "quantity": "100",
            "unit": "token",
            "direction": "input",
            "amount": "0.00000005",
        },
        {
            "component": "output",
            "quantity": "10",
            "unit": "token",
            "direction": "output",
            "amount": "0.0000003",
        },
    ]
    named = lambda values: dict(zip(rollups.MEASURES, values, strict=True))  # noqa: E731
    # The charged total one picodollar above the lines (rounding): to the largest line.
    got = named(rollups.measures({**base, "cost_pico": 450_001, "cost_items": items}))
    assert (got["input_pico"], got["cache_write_pico"], got["output_pico"], got["other_pico"]) == (
        100_000,
        50_000,
        300_001,
        0,
    )
    assert (got["input_tokens"], got["cached_tokens"], got["cache_write_tokens"]) == (700, 200, 100)
    # Lines that do not add up to the charge, or are not priced lines, explain nothing.
    for odd in (items[:1], [*items, {"component": "x", "unit": ["?"], "amount": {"no": 1}}]):
        got = named(rollups.measures({**base, "cost_pico": 450_001, "cost_items": odd}))
        assert (got["other_pico"], got["input_pico"], got["cache_write_tokens"]) == (450_001, 0, 0)
    huge = [{**items[1], "quantity": "1e30", "amount": "0.000000450001"}]
    assert (
        named(rollups.measures({**base, "cost_pico": 450_001, "cost_items": huge}))["other_pico"] == 450_001
    )
    for amount in ("1e999999999", "9" * 5000, "NaN", "-Infinity"):
        odd = [{**items[0], "amount": amount}]
        assert named(rollups.measures({**base, "cost_pico": 7, "cost_items": odd}))["other_pico"] == 7
    # No itemised cost: all of it is "other"; tokens still counted.
    got = named(rollups.measures({**base, "cost_pico": 5, "cost_items": {"note": "imported"}}))
    assert (got["other_pico"], got["cost_pico"], got["input_tokens"], got["output_tokens"]) == (5, 5, 800, 10)


def test_the_migration_builds_the_rollups_of_an_existing_ledger(ledger: Ledger, clock) -> None:  # type: ignore[no-untyped-def]
    from alembic import command

    from kakin.ledger.db import alembic_config, migrate

    org = ledger.create_org("old", timezone="America/Los_Angeles", payment_label="card")
    project = ledger.create_project(org.id, "p")
    items = [{"component": "input", "quantity": "9", "unit": "token", "direction": "input", "amount": "0.5"}]
    for i in range(30):
        clock.advance(hours=5)
        usage = UsageDetail(provider="sim", input_tokens=9, output_tokens=i, cost_items=items)
        ledger.post(
            Scope(org.id, project.id, None, f"m{i % 2}"), Decimal("0.5"), usage, idempotency_key=f"c{i}"
        )
    written = every_table(ledger)
    assert written == rebuilt(ledger)
    for before in ("0005_rollups", "0004_provider_objects"):  # before the summaries, the rollups
        with ledger.engine.begin() as conn:
            command.downgrade(alembic_config(conn), before)
        migrate(ledger.engine)
        assert every_table(ledger) == written
    assert totals(written["rollup_days"])["input_pico"] == 30 * 5 * 10**11
    assert len(written["rollup_hours_total"]) == 30 and len(written["rollup_days_by_model"]) > 2
    assert ledger.reconcile(org.id).ok


def test_reconcile_finds_a_summary_row_that_differs(ledger: Ledger, clock) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    org = ledger.create_org("drift", payment_label="card")
    scope = Scope(org.id, ledger.create_project(org.id, "p").id, None, "m")
    for i in range(3):
        clock.advance(hours=7)
        ledger.post(scope, Decimal("0.25"), UsageDetail(provider="sim"), idempotency_key=f"c{i}")
    assert ledger.reconcile(org.id).ok
    table = s.ROLLUPS["rollup_hours_by_model"]
    with ledger.engine.begin() as conn:  # one hour moved to another model: totals unchanged
        conn.execute(
            update(table)
            .where(
                table.c.org_id == org.id,
                table.c.start
                == select(table.c.start).where(table.c.org_id == org.id).limit(1).scalar_subquery(),
            )
            .values(model="other")
        )
    failed = [c for c in ledger.reconcile(org.id).checks if not c.ok]
    assert [c.name for c in failed] == ["rollup_hours_by_model rows ≠ its full table summed"]
    assert failed[0].counter == 2  # the summed row missing, the moved one extra


def test_reasoning_tokens_take_their_share_of_the_output_line(ledger: Ledger) -> None:
    org = ledger.create_org("thinker", payment_label="card")
    project = ledger.create_project(org.id, "p")
    out = {"component": "output", "quantity": "1000", "unit": "token", "direction": "output"}
    items = [{**out, "unit_price": "0.00001", "amount": "0.01"}]
    usage = UsageDetail(
        provider="sim", input_tokens=5, output_tokens=1000, reasoning_tokens=600, cost_items=items
    )
    ledger.post(Scope(org.id, project.id, None, "o3"), Decimal("0.01"), usage, idempotency_key="a")
    ((_, day),) = ((k, v) for k, v in stored(ledger, s.rollup_days).items() if k[0] == org.id)
    assert (day["output_tokens"], day["reasoning_tokens"]) == (400, 600)
    assert (day["output_pico"], day["reasoning_pico"]) == (4 * 10**9, 6 * 10**9)  # 600 × $0.00001
    assert ledger.usage(org.id)[0].reasoning_tokens == 600
    too_many = UsageDetail(provider="sim", output_tokens=10, reasoning_tokens=11)
    try:
        ledger.post(Scope(org.id, project.id, None, "o3"), Decimal(0), too_many, idempotency_key="b")
    except KakinError as refused:
        assert "reasoning_tokens" in str(refused)
    else:
        raise AssertionError("more reasoning than output tokens was accepted")


def test_after_a_timezone_change_every_bucket_still_counts_once(ledger: Ledger, clock) -> None:  # type: ignore[no-untyped-def]
    from kakin.reports import Reports

    org = ledger.create_org("mover", timezone="UTC", payment_label="card")
    scope = Scope(org.id, ledger.create_project(org.id, "p").id, None, "m")
    usage = UsageDetail(provider="sim")
    for n, moment in enumerate([datetime(2024, 3, 9, 1, 0), datetime(2024, 3, 9, 20, 0)]):
        clock.set(moment.replace(tzinfo=UTC))
        ledger.post(scope, Decimal(n + 1), usage, idempotency_key=f"utc{n}")  # one UTC day bucket
    ledger.update_org(org.id, timezone="Asia/Tokyo")
    clock.set(datetime(2024, 3, 9, 23, 0, tzinfo=UTC))  # 3/10 08:00 in Tokyo
    ledger.post(scope, Decimal(4), usage, idempotency_key="tokyo")
    report = Reports(ledger).spend(org.id, by="day", start="2024-03-09", end="2024-03-11")
    # The UTC day bucket starts at 3/9 09:00 in Tokyo: it stays whole, in Tokyo's 3/9.
    assert [(line.group, line.spend.cost) for line in report.lines] == [("2024-03-09", 3), ("2024-03-10", 4)]
    assert report.total.cost == 7 == sum(line.spend.cost for line in report.lines)


def test_the_hour_lived_twice_when_clocks_go_back_is_two_hours(ledger: Ledger, clock) -> None:  # type: ignore[no-untyped-def]
    from kakin.reports import Reports

    org = ledger.create_org("berlin", timezone="Europe/Berlin", payment_label="card")
    scope = Scope(org.id, ledger.create_project(org.id, "p").id, None, "m")
    usage = UsageDetail(provider="sim")
    # 2024-10-27, Berlin: 02:00-03:00 is lived at +02:00 (00:00 UTC), then again at +01:00 (01:00 UTC).
    for n, minute in enumerate((30, 90, 105)):
        clock.set(datetime(2024, 10, 27, tzinfo=UTC) + timedelta(minutes=minute))
        ledger.post(scope, Decimal(n + 1), usage, idempotency_key=f"c{n}")
    reports = Reports(ledger)
    report = reports.spend(org.id, by="hour", start="2024-10-27", end="2024-10-28")
    groups = [(line.group, line.spend.requests, line.spend.cost) for line in report.lines]
    assert groups == [("2024-10-27T02:00+02:00", 1, 1), ("2024-10-27T02:00+01:00", 2, 5)]
    assert [line.start.astimezone(UTC).hour for line in report.lines] == [0, 1]
    series = reports.spend_by_model(org.id, ["m"], by="hour", start="2024-10-27", end="2024-10-28")
    assert series["m"] == {line.group: line.spend for line in report.lines}
    (day,) = reports.spend(org.id, by="day", start="2024-10-27", end="2024-10-28").lines
    assert day.spend == report.total and day.spend.cost == 6


def test_reports_pick_the_narrowest_table_that_holds_their_grouping_and_filters() -> None:
    assert rollups.narrowest("day", set()).name == "rollup_days_total"
    assert rollups.narrowest("hour", set()).name == "rollup_hours_total"
    assert rollups.narrowest("day", {"model"}).name == "rollup_days_by_model"
    assert rollups.narrowest("hour", {"model"}).name == "rollup_hours_by_model"
    assert rollups.narrowest("day", {"key_id"}).name == "rollup_days_by_key"
    assert rollups.narrowest("day", {"project_id", "key_id"}).name == "rollup_days_by_key"
    assert rollups.narrowest("hour", {"key_id"}).name == "rollup_hours"
    assert rollups.narrowest("day", {"project_id", "model"}).name == "rollup_days"


def test_every_table_gives_the_reports_of_the_full_one(ledger: Ledger, clock, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from kakin.reports import Reports

    org = ledger.create_org("narrow", timezone="America/Los_Angeles", payment_label="card")
    projects = [ledger.create_project(org.id, f"p{i}") for i in range(2)]
    keys = [ledger.create_key(projects[i % 2].id, f"k{i}")[0].id for i in range(3)] + [None]
    items = [
        {"component": "output", "quantity": "5", "unit": "token", "direction": "output", "amount": "0.01"}
    ]
    start = clock.now
    for i in range(60):
        clock.advance(minutes=47)
        key = keys[i % 4]
        project = projects[0].id if key is None else ledger.get_key(key).project_id
        usage = UsageDetail(provider="sim", input_tokens=i, output_tokens=5, cost_items=items)
        scope = Scope(org.id, project, key, f"m{i % 3}")
        ledger.post(scope, Decimal("0.01") * (1 + i % 5), usage, idempotency_key=f"c{i}")
    zone = ZoneInfo(org.timezone)
    first, last = start.astimezone(zone).date(), clock.now.astimezone(zone).date() + timedelta(days=1)
    reports = Reports(ledger)
    filters = [{}, {"model": "m1"}, {"key": keys[0]}, {"project": "p1"}, {"project": "p0", "model": "m0"}]

    def every_report() -> list:  # type: ignore[type-arg]
        return [
            reports.spend(org.id, by=by, start=first, end=last, **chosen)
            for by in ("day", "hour", "model", "project", "key", "unit")
            for chosen in filters
        ]

    for by, chosen in (("hour", {}), ("day", {"project": "p0"}), ("day", {"key": keys[1]})):
        series = reports.spend_by_model(org.id, ["m0", "m1", "none"], by=by, start=first, end=last, **chosen)
        for name in ("m0", "m1"):  # one read, the same as each model's own report
            alone = reports.spend(org.id, by=by, start=first, end=last, model=name, **chosen)
            assert series[name] == {line.group: line.spend for line in alone.lines}
        assert series["none"] == {}
    assert set(ledger.get_keys([keys[0], "key_missing"])) == {keys[0]}

    read: list[str] = []
    narrowest = rollups.narrowest
    monkeypatch.setattr(rollups, "narrowest", lambda *a: read.append(narrowest(*a).name) or narrowest(*a))
    narrow = every_report()
    assert {"rollup_days_total", "rollup_hours_total", "rollup_days_by_key", "rollup_days_by_model"} <= set(
        read
    )
    full = {"day": rollups.TABLES[1], "hour": rollups.TABLES[0]}
    monkeypatch.setattr(rollups, "narrowest", lambda grain, needed: full[grain])
    assert narrow == every_report()
    assert sum(line.spend.requests for line in narrow[0].lines) == 60
    for report in narrow:  # a total read apart from its lines (by model, project, key) is theirs
        if report.by != "unit":
            added = [sum(column) for column in zip(*(line.spend for line in report.lines), strict=True)]
            assert list(report.total) == (added or [0] * len(report.total))
        assert sum(unit.cost for unit in report.units) == report.total.cost

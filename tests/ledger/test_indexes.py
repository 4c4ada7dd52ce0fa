"""The ledger's reads of its big tables (reservations, usage records, entries) find their rows
through an index — reports, expiry of holds, reconcile — whatever the tables' size."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import event

from kakin.ledger import Ledger, PostOp, UsageDetail, rollups

BIG_TABLES = ("reservations", "usage_records", "entries", *(table.name for table in rollups.TABLES))
USAGE = UsageDetail(provider="sim", input_tokens=10, output_tokens=5)


def statements_of(ledger: Ledger, run: Any) -> list[tuple[str, Any]]:
    """The SELECTs ``run`` sends through SQLAlchemy that read a big table."""
    seen: list[tuple[str, Any]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        text = statement.lstrip().upper()
        if text.startswith("SELECT") and any(f"FROM {t.upper()}" in text for t in BIG_TABLES):
            seen.append((statement, parameters))

    event.listen(ledger.engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(ledger.engine, "before_cursor_execute", record)
    return seen


def full_scans(ledger: Ledger, statement: str, parameters: Any) -> list[str]:
    """The big tables ``statement`` would read from end to end."""
    with ledger.engine.connect() as conn:
        if ledger.backend == "sqlite":
            plan = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            return [step for step in plan if any(step == f"SCAN {t}" for t in BIG_TABLES)]
        conn.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: ask whether an index could serve
        plan = [row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters)]
        return [
            step for step in plan if "Seq Scan on" in step and any(f" {t} " in f"{step} " for t in BIG_TABLES)
        ]


def test_reads_of_the_big_tables_go_through_an_index(ledger: Ledger, setup, clock) -> None:
    org, project, key, scope = setup
    ledger.grant(org.id, "promotional", "5", idempotency_key="promo")
    ledger.batch([PostOp(scope, Decimal("0.01"), USAGE, f"p{n}", 15) for n in range(3)])
    for n in range(3):
        ledger.reserve(scope, Decimal("0.02"), 15, idempotency_key=f"r{n}")
    clock.advance(seconds=ledger.context.hold_seconds + 1)  # the holds are now due to expire
    since = clock.now - timedelta(days=1)

    def reports() -> None:
        ledger.expire_holds()
        ledger.reconcile(org.id)
        ledger.usage(org.id, since=since)
        ledger.usage(org.id, project_id=project.id)
        ledger.usage(org.id, key_id=key.id)
        ledger.entries(org.id, since=since)
        ledger.balance(org.id)

    statements = statements_of(ledger, reports)
    assert len(statements) >= 8
    scans = {statement: full_scans(ledger, statement, parameters) for statement, parameters in statements}
    assert {statement: steps for statement, steps in scans.items() if steps} == {}


def test_reports_read_through_an_index(ledger: Ledger, setup, clock) -> None:
    from kakin.reports import Reports

    org, project, key, scope = setup
    ledger.batch(
        [
            PostOp(scope, Decimal("0.01"), UsageDetail(provider="sim", request_id=f"q{n}"), f"p{n}")
            for n in range(3)
        ]
    )
    reports = Reports(ledger)
    today = clock.now.date()

    def run() -> None:
        for by in ("day", "hour", "model", "project", "key", "unit"):
            for filters in ({"project": "web", "key": key.id}, {}, {"model": "m"}, {"key": key.id}):
                reports.spend(org.id, by=by, start=today, end=today + timedelta(days=1), **filters)
        reports.request("q1")
        page = reports.requests(org.id, limit=1)
        reports.requests(org.id, limit=1, after=page.next, project=project.id)
        reports.requests(org.id, limit=1, key=key.id, start=today)

    statements = statements_of(ledger, run)
    assert len(statements) >= 10
    scans = {statement: full_scans(ledger, statement, parameters) for statement, parameters in statements}
    assert {statement: steps for statement, steps in scans.items() if steps} == {}

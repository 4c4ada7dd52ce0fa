"""The 0002_alerts migration matches the tables, downgrades cleanly, and the fired-alert
table lets exactly one of many concurrent writers fire an alert (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import inspect

import kakin.alerts.schema  # noqa: F401  (registers the tables on the shared metadata)
from conftest import schema_drift
from kakin.alerts.model import Alert
from kakin.alerts.store import AlertStore
from kakin.ledger.db import alembic_config, make_engine, migrate
from kakin.ledger.schema import metadata

from .conftest import add_org

ALERT_TABLES = {"alert_channels", "alert_rules", "alert_fired", "alert_deliveries", "alert_delivery_attempts"}


def _alert(org_id: str) -> Alert:
    return Alert(
        kind="budget_threshold",
        org_id=org_id,
        scope="org",
        scope_ref="",
        dedupe_key="budget:bud_1:2025-06-01T00:00:00+00:00:80",
        title="t",
        message="m",
        occurred_at=datetime(2025, 6, 3, tzinfo=UTC),
    )


def test_migration_matches_the_tables_and_downgrades(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    with engine.connect() as conn:
        assert schema_drift(conn, metadata, ALERT_TABLES) == []
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0001_ledger")
    assert not ALERT_TABLES & set(inspect(engine).get_table_names())
    migrate(engine)
    assert set(inspect(engine).get_table_names()) >= ALERT_TABLES
    engine.dispose()


def _race(store: AlertStore, org_id: str) -> list[str | None]:
    results: list[str | None] = []
    gate = threading.Barrier(8)

    def fire() -> None:
        gate.wait()
        results.append(store.record_fired(_alert(org_id)))

    threads = [threading.Thread(target=fire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_only_one_concurrent_writer_fires_on_sqlite(store):
    results = _race(store, "org_1")
    assert sum(r is not None for r in results) == 1


@pytest.mark.postgres
def test_only_one_concurrent_writer_fires_on_postgresql(pg_database_url):
    engine = make_engine(pg_database_url)
    migrate(engine)
    with engine.connect() as conn:
        assert schema_drift(conn, metadata, ALERT_TABLES) == []
    org_id = f"org_{uuid.uuid4().hex[:12]}"
    add_org(engine, org_id)
    store = AlertStore(engine)
    results = _race(store, org_id)
    assert sum(r is not None for r in results) == 1
    channel = store.add_channel(org_id, "email", "team", "ops@example.test")
    [alert_id] = [r for r in results if r]
    [delivery_id] = store.create_deliveries(alert_id, [channel])
    assert store.deliveries(org_id)[0].id == delivery_id
    engine.dispose()

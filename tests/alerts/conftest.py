"""A migrated ledger database (real SQLite file) with one organisation, and a dispatcher
with fast retries."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

# tests/conftest.py: a migrated SQLite ledger copied per test.
from conftest import sqlite_copy
from kakin.alerts.delivery import Dispatcher, RetryPolicy
from kakin.alerts.store import AlertStore
from kakin.ledger.db import make_engine
from kakin.ledger.schema import orgs

FAST = RetryPolicy(max_attempts=3, base_seconds=0.05, max_seconds=0.2)


def add_org(engine, org_id: str) -> None:
    zero = {
        c: 0
        for c in (
            "credit_pico",
            "held_pico",
            "held_tokens",
            "spent_pico",
            "spent_tokens",
            "due_pico",
            "paid_pico",
        )
    }
    with engine.begin() as conn:
        conn.execute(
            insert(orgs).values(
                id=org_id,
                name=f"{org_id} name",
                currency="USD",
                timezone="UTC",
                payment_method=False,
                created_at=datetime(2025, 1, 1, tzinfo=UTC),
                **zero,
            )
        )


@pytest.fixture()
def db_engine(tmp_path, sqlite_template):
    engine = make_engine(sqlite_copy(sqlite_template, tmp_path))
    add_org(engine, "org_1")
    yield engine
    engine.dispose()


@pytest.fixture()
def store(db_engine):
    return AlertStore(db_engine)


@pytest.fixture()
def db_dispatcher(store):
    dispatcher = Dispatcher(store, policy=FAST, rng=random.Random(2))
    yield dispatcher
    dispatcher.close()

"""Every ledger test runs on SQLite (a temporary file) and on PostgreSQL (a schema of its own
inside the test run's PostgreSQL database, dropped afterwards)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

# tests/conftest.py: the clock and the PostgreSQL helpers every area shares.
from conftest import Clock, emptied_schema, sqlite_copy
from kakin.ledger import Ledger, Scope


@pytest.fixture(scope="session")
def pg_schema_url(migrated_pg_schema: Callable[[str], str]) -> str:
    """A schema of our own in the test run's PostgreSQL database, migrated once."""
    return migrated_pg_schema("ledger")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path)
    return emptied_schema(request.getfixturevalue("pg_schema_url"))


@pytest.fixture()
def clock() -> Clock:
    return Clock(datetime(2024, 1, 31, 3, 0, tzinfo=UTC))


@pytest.fixture()
def ledger(db_url: str, clock: Clock) -> Iterator[Ledger]:
    with Ledger.open(db_url, clock=clock) as opened:
        yield opened


@pytest.fixture()
def setup(ledger: Ledger):  # type: ignore[no-untyped-def]
    """An organisation with a payment method, a project and a key: (org, project, key, scope)."""
    org = ledger.create_org("acme", timezone="Asia/Tokyo", payment_label="visa 4242")
    project = ledger.create_project(org.id, "web")
    key, _plaintext = ledger.create_key(project.id, "server")
    return org, project, key, Scope(org.id, project.id, key.id, "gpt-4o-mini")

"""A seeded ledger (tests/reconcile/seed.py) on SQLite and on PostgreSQL, and the sample bills."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

# tests/conftest.py: the migrated SQLite template and the PostgreSQL helpers every area shares.
from conftest import emptied_schema, sqlite_copy
from kakin.ledger import Ledger

from .seed import Clock, seed

DATA = Path(__file__).parent.parent / "data" / "reconcile"


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.fixture(scope="session")
def reconcile_pg_url(migrated_pg_schema: Callable[[str], str]) -> str:
    """A schema of our own in the session's PostgreSQL database, migrated once."""
    return migrated_pg_schema("reconcile")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A ledger of the test's own: a copy of the migrated SQLite template, or the schema emptied."""
    if request.param == "sqlite":
        return sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path)
    return emptied_schema(request.getfixturevalue("reconcile_pg_url"))


@pytest.fixture()
def ledger(db_url: str) -> Iterator[Ledger]:
    clock = Clock(datetime(2026, 2, 1, tzinfo=UTC))
    with Ledger.open(db_url, clock=clock) as opened:
        opened.test_clock = clock  # type: ignore[attr-defined]
        yield opened


@pytest.fixture()
def acme(ledger: Ledger) -> str:
    """The seeded organisation's id."""
    return seed(ledger, ledger.test_clock)  # type: ignore[attr-defined]

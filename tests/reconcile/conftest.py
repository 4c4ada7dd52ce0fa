"""A seeded ledger (tests/reconcile/seed.py) on SQLite and on PostgreSQL, and the sample bills."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kakin.ledger import Ledger

from .seed import Clock, seed

DATA = Path(__file__).parent.parent / "data" / "reconcile"


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kakin.db'}"
    make: Callable[[str], str] = request.getfixturevalue("migrated_pg_schema")
    return make("reconcile")


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

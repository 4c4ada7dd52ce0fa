"""Billing tests run on SQLite (a temporary file) and on PostgreSQL (a schema of their own in
the test run's database), with a clock the test moves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

# tests/conftest.py: the clock and the PostgreSQL helpers every area shares.
from conftest import Clock, emptied_schema, sqlite_copy
from kakin.billing import Billing
from kakin.ledger import Ledger, Scope, UsageDetail


@pytest.fixture(scope="session")
def billing_pg_url(migrated_pg_schema: Callable[[str], str]) -> str:
    return migrated_pg_schema("billing")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path)
    return emptied_schema(request.getfixturevalue("billing_pg_url"))


@pytest.fixture()
def clock() -> Clock:
    return Clock(datetime(2026, 1, 20, 3, 0, tzinfo=UTC))


@pytest.fixture()
def ledger(db_url: str, clock: Clock) -> Iterator[Ledger]:
    with Ledger.open(db_url, clock=clock) as opened:
        yield opened


@pytest.fixture()
def billing(ledger: Ledger) -> Billing:
    return Billing(ledger)


def token_items(model_price: str, tokens: int, output_price: str = "0.00001", output: int = 0) -> list[dict]:
    """Cost lines as kakin.pricing writes them: input tokens, and output tokens when given."""
    lines = [
        {
            "component": "input",
            "quantity": str(tokens),
            "unit": "token",
            "unit_price": model_price,
            "amount": str(Decimal(model_price) * tokens),
            "tier": None,
            "effective_from": "2026-01-01",
            "source": "test prices",
            "direction": "input",
            "mode": "standard",
        }
    ]
    if output:
        lines.append(
            {
                "component": "output",
                "quantity": str(output),
                "unit": "token",
                "unit_price": output_price,
                "amount": str(Decimal(output_price) * output),
                "tier": None,
                "effective_from": "2026-01-01",
                "source": "test prices",
                "direction": "output",
                "mode": "standard",
            }
        )
    return lines


def post(ledger: Ledger, scope: Scope, items: list[dict], key: str, model: str = "gpt-4o") -> Decimal:
    """Charge a served request priced by ``items``; returns its cost."""
    cost = sum((Decimal(i["amount"]) for i in items), Decimal(0))
    usage = UsageDetail(provider="openai", input_tokens=0, output_tokens=0, cost_items=items)
    ledger.post(Scope(scope.org_id, scope.project_id, scope.key_id, model), cost, usage, idempotency_key=key)
    return cost

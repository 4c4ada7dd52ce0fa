"""Requests in flight: a gateway in local accounting keeps their holds in memory, outside the
ledger; the overview counts them in the available credit and the budget gauges, as the
admin API does."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from kakin.ledger import Ledger, Scope
from kakin.ledger.views import Hold, LiveHolds
from kakin.money import format_amount, to_pico
from kakin.web import create_web_app

from .conftest import ADMIN_KEY, NOW, Clock, seed

IN_FLIGHT = Decimal("0.25")


class OneRequestInFlight:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def live_holds(self, org_id: str) -> LiveHolds:
        if org_id != self.scope.org_id:
            return LiveHolds()
        return LiveHolds((Hold(self.scope, to_pico(IN_FLIGHT), 0),))


@pytest.fixture()
def ledger(tmp_path: Path) -> Iterator[tuple[Ledger, Scope]]:
    clock = Clock(NOW)
    with Ledger.open(f"sqlite:///{tmp_path / 'kakin.db'}", clock=clock) as opened:
        seeded = seed(opened, clock)
        tokyo, web, server = seeded["tokyo"], seeded["projects"]["web"], seeded["server"]  # type: ignore[index]
        yield opened, Scope(tokyo.id, web.id, server.id, "gpt-4o")  # type: ignore[union-attr]


def test_the_overview_counts_holds_in_flight(ledger: tuple[Ledger, Scope]) -> None:
    book, scope = ledger
    app = create_web_app(book, admin_key=ADMIN_KEY, holds=OneRequestInFlight(scope))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        client.post("/signin", data={"key": ADMIN_KEY}, follow_redirects=False)
        page = client.get("/", params={"org": "tokyo"}).text
    balance = book.balance("tokyo")
    assert f'data-testid="available">{format_amount(balance.available - IN_FLIGHT)}<' in page
    assert f'data-testid="held-web monthly">+{format_amount(IN_FLIGHT)}<' in page
    assert 'data-testid="held-batch monthly"' not in page  # another project's budget holds none of it

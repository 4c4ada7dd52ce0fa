"""A gateway with its dashboard over a ledger seeded with known charges, on a fixed clock.

Organisation "tokyo" (Asia/Tokyo) has two projects: "web" (key "server") and "batch" (key
"worker"); organisation "elsewhere" (America/Los_Angeles) one charge of $1.23 that no
tokyo reader may ever see. The clock stands at 2026-03-15 12:00 in Tokyo.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

# tests/conftest.py: the clock every area shares (test_holds takes it from here).
from conftest import Clock
from kakin.alerts import Alert, AttemptRecord
from kakin.alerts.channels import Outcome
from kakin.config import load_settings
from kakin.ledger import Ledger, Scope, UsageDetail
from kakin.server import RunningGateway, start_in_thread

ADMIN_KEY = "admin-secret-for-the-dashboard-tests"
NOW = datetime(2026, 3, 15, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo


def item(component: str, quantity: int, amount: str, direction: str) -> dict[str, str | None]:
    return {
        "component": component,
        "quantity": str(quantity),
        "unit": "token",
        "unit_price": str(Decimal(amount) / quantity),
        "amount": amount,
        "tier": None,
        "effective_from": "2026-01-01",
        "source": "test prices",
        "direction": direction,
    }


# (UTC instant, model, project, key, input, cached, output, cost lines, cache saved, routed from, routing saved)
CHARGES = [
    # Tokyo 3/10 10:00
    (datetime(2026, 3, 10, 1, 0, tzinfo=UTC), "gpt-4o", "web", "server", 1000, 0, 200,
     [item("input", 1000, "0.0025", "input"), item("output", 200, "0.002", "output")], "0", None, "0"),
    # Tokyo 3/15 01:30 (still 3/14 in UTC and in any zone west of it)
    (datetime(2026, 3, 14, 16, 30, tzinfo=UTC), "claude-sonnet", "batch", "worker", 2000, 500, 100,
     [item("input", 1500, "0.003", "input"), item("cache_read", 500, "0.0001", "input"),
      item("output", 100, "0.0015", "output")], "0", None, "0"),
    # Tokyo 3/15 10:00: a cache hit that saved $0.0045
    (datetime(2026, 3, 15, 1, 0, tzinfo=UTC), "gpt-4o", "web", "server", 0, 0, 0, [], "0.0045", None, "0"),
    # Tokyo 3/15 11:00: routed from gpt-4.1, which saved $0.001
    (datetime(2026, 3, 15, 2, 0, tzinfo=UTC), "gpt-4o", "web", "server", 100, 0, 10,
     [item("input", 100, "0.00025", "input"), item("output", 10, "0.0001", "output")], "0", "gpt-4.1", "0.001"),
]  # fmt: skip
TOTAL = Decimal("0.0045") + Decimal("0.0046") + Decimal("0.00035")  # 0.00945
WEB_TOTAL = Decimal("0.0045") + Decimal("0.00035")  # 0.00485
OTHER_ORG_COST = Decimal("1.23")


@dataclass
class Site:
    url: str
    ledger: Ledger
    web_key: str
    batch_key: str
    web_key_id: str
    tokyo_id: str
    request_ids: list[str]

    @property
    def ui(self) -> str:
        return f"{self.url}/ui"


def seed(ledger: Ledger, clock: Clock) -> dict[str, object]:
    clock.now = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    tokyo = ledger.create_org("tokyo", timezone="Asia/Tokyo", payment_label="card")
    projects = {name: ledger.create_project(tokyo.id, name) for name in ("web", "batch")}
    server, server_secret = ledger.create_key(projects["web"].id, "server")
    worker, worker_secret = ledger.create_key(projects["batch"].id, "worker")
    keys = {"server": server, "worker": worker}
    ledger.grant(
        tokyo.id,
        "prepaid",
        "10",
        idempotency_key="g1",
        expires_at="2026-12-31T15:00:00+00:00",
        note="starter",
    )
    ledger.set_budget(tokyo.id, limit="1", name="monthly")
    ledger.set_budget(
        tokyo.id, scope="project", scope_ref=projects["web"].id, limit="0.5", name="web monthly"
    )
    ledger.set_budget(
        tokyo.id, scope="project", scope_ref=projects["batch"].id, limit="0.25", name="batch monthly"
    )
    elsewhere = ledger.create_org("elsewhere", timezone="America/Los_Angeles", payment_label="card")
    far = ledger.create_project(elsewhere.id, "far")
    request_ids = []
    for n, (at, model, project, key, given, cached, out, items, saved, routed, rsaved) in enumerate(CHARGES):
        clock.now = at
        request_id = f"req-{n}"
        request_ids.append(request_id)
        usage = UsageDetail(
            provider="simulator",
            input_tokens=given,
            output_tokens=out,
            cached_tokens=cached,
            cost_items=items,
            request_id=request_id,
            cache_hit=Decimal(saved) > 0,
            cache_saved=Decimal(saved),
            routed_from=routed,
            routing_saved=Decimal(rsaved),
        )
        cost = sum((Decimal(i["amount"]) for i in items), Decimal(0))
        scope = Scope(tokyo.id, projects[project].id, keys[key].id, model)
        ledger.post(scope, cost, usage, idempotency_key=f"c{n}")
    clock.now = datetime(2026, 3, 12, 0, 0, tzinfo=UTC)
    ledger.post(
        Scope(elsewhere.id, far.id, None, "gpt-4o"),
        OTHER_ORG_COST,
        UsageDetail(provider="simulator", input_tokens=5, output_tokens=5, request_id="far-0"),
        idempotency_key="far",
    )
    clock.now = NOW
    return {
        "tokyo": tokyo,
        "projects": projects,
        "server": server,
        "server_secret": server_secret,
        "worker_secret": worker_secret,
        "request_ids": request_ids,
    }


def alerts_for(gateway: RunningGateway, tokyo_id: str, web_project_id: str) -> None:
    store = gateway.gateway.alerts.store
    channel = store.add_channel(tokyo_id, "webhook", "ops hook", "http://127.0.0.1:9/hook")
    for scope, ref, title in (("project", web_project_id, "web at 80%"), ("org", "", "tokyo at 80%")):
        alert_id = store.record_fired(
            Alert(
                kind="budget_threshold",
                org_id=tokyo_id,
                scope=scope,
                scope_ref=ref,
                dedupe_key=f"test:{scope}",
                title=title,
                message=f"{title} of its monthly budget",
                occurred_at=NOW,
            )
        )
        assert alert_id is not None
        (delivery,) = store.create_deliveries(alert_id, [channel], now=NOW)
        store.record_attempt(
            AttemptRecord(
                delivery, channel.id, 1, NOW, Outcome(ok=True, response_code=200), "delivered", None
            )
        )


@contextmanager
def running_site(url: str) -> Iterator[Site]:
    """The gateway and its dashboard over a freshly seeded ledger at ``url``."""
    settings = load_settings(
        env={"KAKIN_DATABASE_URL": url, "KAKIN_ADMIN_KEY": ADMIN_KEY, "KAKIN_SERVER__ACCESS_LOG": "true"}
    )
    clock = Clock(NOW)
    ledger = Ledger.open(url, clock=clock, hold_seconds=settings.gateway.hold_seconds)
    seeded = seed(ledger, clock)
    gateway = start_in_thread(settings, ledger, dashboard=True)
    tokyo = seeded["tokyo"]
    projects = seeded["projects"]
    alerts_for(gateway, tokyo.id, projects["web"].id)  # type: ignore[index,union-attr]
    try:
        yield Site(
            gateway.url,
            ledger,
            str(seeded["server_secret"]),
            str(seeded["worker_secret"]),
            seeded["server"].id,  # type: ignore[union-attr]
            tokyo.id,  # type: ignore[union-attr]
            list(seeded["request_ids"]),  # type: ignore[arg-type]
        )
    finally:
        gateway.stop()
        ledger.close()


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The seeded site on SQLite (the browser tests)."""
    path: Path = tmp_path_factory.mktemp("web") / "kakin.db"
    with running_site(f"sqlite:///{path}") as running:
        yield running


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The seeded site on SQLite and on PostgreSQL (a schema of its own)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('web') / 'kakin.db'}"
    else:
        url = request.getfixturevalue("migrated_pg_schema")("web")
    with running_site(url) as running:
        yield running

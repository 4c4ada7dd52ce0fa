"""Alerts wired to a real ledger: budget thresholds reported by settle fire once per period
and again the next day, a runaway key is suspended in the ledger, and credit alerts read the
ledger's balance and grants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from kakin.alerts import AlertEngine, AlertStore, Dispatcher, SettleEvent
from kakin.ledger import Ledger
from kakin.ledger.errors import KeySuspended
from kakin.ledger.records import Scope, UsageDetail

from .conftest import FAST
from .servers import start_http_receiver

START = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture()
def world(tmp_path):
    clock = Clock()
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", clock=clock)
    org = ledger.create_org("acme")
    project = ledger.create_project(org.id, "web")
    key, secret = ledger.create_key(project.id, "ci")
    store = AlertStore(ledger.engine)
    dispatcher = Dispatcher(store, policy=FAST)
    engine = AlertEngine(store, dispatcher, suspend=ledger.suspend_key, balance=ledger.balance)
    yield ledger, clock, org, project, key, secret, engine
    engine.close()
    ledger.close()


def charge(ledger, clock, org, project, key, engine, amount: str, n: int):
    scope = Scope(org.id, project.id, key.id, "gpt-4o-mini")
    usage = UsageDetail(provider="simulator", input_tokens=1000, output_tokens=200)
    settlement = ledger.charge(scope, Decimal(amount), usage, idempotency_key=f"req-{n}")
    return engine.on_settle(SettleEvent.from_settlement(scope, settlement, usage, clock.now, key.prefix))


def test_daily_budget_thresholds_fire_once_a_day(world):
    ledger, clock, org, project, key, _, engine = world
    ledger.grant(org.id, "prepaid", "50", idempotency_key="top-up")
    ledger.set_budget(
        org.id, scope="project", scope_ref=project.id, period="day", limit="1", thresholds=(50, 80, 100)
    )
    state, server = start_http_receiver([])
    engine.store.add_channel(org.id, "webhook", "ops", state.url)
    fired = []
    for n in range(6):  # $0.30 each: 30 %, 60 %, 90 %, 120 %, …
        clock.now += timedelta(minutes=30)
        fired += [
            a.data["threshold_percent"] for a in charge(ledger, clock, org, project, key, engine, "0.30", n)
        ]
    assert fired == [50, 80, 100]
    clock.now = START + timedelta(days=1)
    fired_next_day = []
    for n in range(6, 9):
        clock.now += timedelta(minutes=30)
        fired_next_day += [
            a.data["threshold_percent"] for a in charge(ledger, clock, org, project, key, engine, "0.30", n)
        ]
    assert fired_next_day == [50, 80]
    assert engine.dispatcher.idle(10)
    server.shutdown()
    assert len(state.received) == 5
    assert len(engine.store.fired(org.id)) == 5


def test_runaway_suspends_the_key_in_the_ledger(world):
    ledger, clock, org, project, key, secret, engine = world
    ledger.grant(org.id, "prepaid", "500", idempotency_key="top-up")
    engine.store.add_rule(org.id, "runaway", params={"floor_usd": "3"}, auto_suspend=True)
    engine.reload_rules()
    kinds = []
    n = 0
    while not kinds:  # a loop: $0.25 every 10 s, until the detector speaks
        clock.now += timedelta(seconds=10)
        n += 1
        kinds += [a.kind for a in charge(ledger, clock, org, project, key, engine, "0.25", n)]
        assert n < 100
    assert kinds == ["runaway"] and n == 12  # $3.00, the rule's floor
    assert engine.dispatcher.idle(10)  # suspension happens off the request path
    assert ledger.get_key(key.id).suspend_reason.startswith("runaway spend: key ")
    with pytest.raises(KeySuspended):
        ledger.verify_key(secret)
    with pytest.raises(KeySuspended):  # the loop's next request is refused: spending stops
        charge(ledger, clock, org, project, key, engine, "0.25", n + 1)


def test_credit_low_and_expiring_read_the_ledger(world):
    ledger, clock, org, project, key, _, engine = world
    ledger.update_org(org.id, phone="+81 90 1234 5678")
    ledger.grant(org.id, "free_trial", "5", idempotency_key="trial", expires_in=timedelta(days=5))
    engine.store.add_rule(org.id, "credit_low", scope="org", params={"min_usd": "2"})
    engine.reload_rules()
    charge(ledger, clock, org, project, key, engine, "3.50", 1)
    assert engine.dispatcher.idle(10)  # the settle queued a credit check in the background
    [low] = [alert for _, alert in engine.store.fired(org.id) if alert.kind == "credit_low"]
    assert engine.check_credit(org.id, clock.now) == []  # once a day
    assert low.message.startswith(f"org {org.id} has $1.50 of credit left: below the $2.00 floor")
    [expiring] = engine.sweep(clock.now, {org.id})
    assert expiring.kind == "credit_expiring"
    assert expiring.title == "$1.50 of free trial credit expires in 5.0 days"
    assert engine.sweep(clock.now + timedelta(hours=1), {org.id}) == []

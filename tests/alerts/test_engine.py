"""The alert engine over a real SQLite ledger database and real receivers: thresholds fire
once per period (also across processes) and again the next period, runaway keys are
suspended through the callback, credit alerts, and the delivery log."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from kakin.alerts.delivery import Dispatcher
from kakin.alerts.engine import AlertEngine, SettleEvent
from kakin.alerts.signing import verify
from kakin.errors import Conflict, InvalidInput, NotFound
from kakin.ledger.records import Balance, Grant, ThresholdCrossed

from .conftest import FAST
from .servers import free_port, start_http_receiver

JUNE = datetime(2025, 6, 1, tzinfo=UTC)


def crossing(
    threshold: int, period_start: datetime, *, unit="usd", scope="project", ref="prj_1"
) -> ThresholdCrossed:
    return ThresholdCrossed(
        budget_id="bud_1",
        budget_name="monthly",
        org_id="org_1",
        scope=scope,
        scope_ref=ref,
        period="month",
        period_start=period_start,
        period_end=None,
        unit=unit,
        threshold=threshold,
        spent=Decimal("80.50") if unit == "usd" else Decimal(800_000),
        limit=Decimal(100) if unit == "usd" else Decimal(1_000_000),
    )


def settle(at: datetime, cost="0.01", thresholds=(), key="key_1") -> SettleEvent:
    return SettleEvent(
        "org_1", "prj_1", key, "gpt-4o-mini", Decimal(cost), 100, at, tuple(thresholds), "kk_ab12"
    )


@pytest.fixture()
def receiver(store):
    state, server = start_http_receiver([])
    channel = store.add_channel("org_1", "webhook", "ops", state.url)
    yield state, channel
    server.shutdown()


def test_threshold_fires_once_per_period_and_again_next_period(store, db_dispatcher, receiver):
    state, channel = receiver
    engine = AlertEngine(store, db_dispatcher)
    first = engine.on_settle(settle(JUNE + timedelta(days=3), thresholds=[crossing(80, JUNE)]))
    assert [a.kind for a in first] == ["budget_threshold"]
    assert first[0].message.startswith("project prj_1 reached 80% of its $100.00 monthly budget 'monthly'")
    # a repeated settle reports the same crossing: nothing new
    assert engine.on_settle(settle(JUNE + timedelta(days=3), thresholds=[crossing(80, JUNE)])) == []
    # another gateway process sees it too: the database refuses the second firing
    assert db_dispatcher.idle(10)
    other = AlertEngine(store, db_dispatcher)
    assert other.fire(first[0]) is None
    # next month, the same threshold fires again
    july = datetime(2025, 7, 1, tzinfo=UTC)
    again = engine.on_settle(settle(july + timedelta(hours=5), thresholds=[crossing(80, july)]))
    assert len(again) == 1
    assert db_dispatcher.idle(10)

    assert len(state.received) == 2
    bodies = [orjson.loads(hit.body) for hit in state.received]
    assert [b["data"]["period_start"][:7] for b in bodies] == ["2025-06", "2025-07"]
    assert all(b["type"] == "alert.budget_threshold" and b["data"]["spent"] == "80.5" for b in bodies)
    for hit in state.received:
        verify(channel.secret, hit.headers["Kakin-Signature"], hit.body)
    assert len(store.fired("org_1")) == 2
    assert {d.status for d in store.deliveries("org_1")} == {"delivered"}


def test_token_and_model_thresholds_have_their_own_kinds(store, db_dispatcher):
    engine = AlertEngine(store, db_dispatcher)
    alerts = engine.on_settle(
        settle(
            JUNE,
            thresholds=[
                crossing(100, JUNE, unit="tokens", scope="key", ref="key_1"),
                crossing(50, JUNE, scope="model", ref="gpt-4o"),
            ],
        )
    )
    assert [a.kind for a in alerts] == ["token_threshold", "model_threshold"]
    assert alerts[0].severity == "critical"
    assert "800,000 tokens used" in alerts[0].message
    assert alerts[1].title == "model gpt-4o (org org_1) reached 50% of its monthly budget"


def test_runaway_key_is_suspended_through_the_callback(store, db_dispatcher, receiver):
    state, _ = receiver
    store.add_rule(
        "org_1", "runaway", scope="key", params={"floor_usd": "2", "factor": "10"}, auto_suspend=True
    )
    suspended = []
    engine = AlertEngine(
        store, db_dispatcher, suspend=lambda key_id, reason: suspended.append((key_id, reason))
    )
    start = JUNE + timedelta(hours=20)
    fired = []
    for i in range(600):  # a loop: $0.05 every 5 s
        fired += engine.on_settle(settle(start + timedelta(seconds=5 * i), cost="0.05"))
    assert [a.kind for a in fired] == ["runaway"]  # once, though the loop went on
    assert db_dispatcher.idle(10)
    assert [key for key, _ in suspended] == ["key_1"]
    assert suspended[0][1].startswith("runaway spend: key kk_ab12… spent $2.00 in the last 15 minutes")
    body = orjson.loads(state.received[0].body)
    assert body["type"] == "alert.runaway"
    assert body["data"]["key_suspended"] is True
    assert body["message"].endswith("the key has been suspended")


def test_runaway_without_auto_suspend_only_alerts(store, db_dispatcher):
    suspended = []
    engine = AlertEngine(store, db_dispatcher, suspend=lambda key_id, reason: suspended.append(key_id))
    start = JUNE + timedelta(hours=2)
    fired = [
        a for i in range(200) for a in engine.on_settle(settle(start + timedelta(seconds=i), cost="0.05"))
    ]
    assert [a.kind for a in fired] == ["runaway"]  # the default rule: $5 floor, no history
    assert db_dispatcher.idle(10)
    assert suspended == []


def test_settlements_in_batches_raise_what_they_raise_one_by_one(store, db_dispatcher):
    """The gateway hands the engine each batch the ledger posted: per scope the batch's spend
    is added once, and the alerts are those of the same settlements told one by one — the
    runaway found at the same spend, each threshold crossing reported."""
    start = JUNE + timedelta(hours=2)
    events = [
        settle(
            start + timedelta(seconds=i),
            cost="0.05",
            key=f"key_{i % 2}",
            thresholds=[crossing(50, JUNE)] * (i == 7),
        )
        for i in range(300)
    ]
    one_by_one = AlertEngine(store, db_dispatcher)
    single = [(a.kind, a.dedupe_key) for e in events for a in one_by_one.on_settle(e)]
    batched_engine = AlertEngine(store, db_dispatcher)
    batched = [
        (a.kind, a.dedupe_key)
        for n in range(0, 300, 10)
        for a in batched_engine.on_settled(events[n : n + 10])
    ]
    assert sorted(kind for kind, _ in single) == ["budget_threshold", "runaway", "runaway"]
    assert sorted(batched) == sorted(single)  # each engine decides alone what it raised


def test_a_failing_suspend_is_recorded_and_the_alert_still_goes_out(store, db_dispatcher, receiver):
    state, _ = receiver
    store.add_rule("org_1", "runaway", params={"floor_usd": "1"}, auto_suspend=True)

    def broken(key_id, reason):
        raise RuntimeError("ledger unavailable")

    engine = AlertEngine(store, db_dispatcher, suspend=broken)
    for i in range(30):
        engine.on_settle(settle(JUNE + timedelta(seconds=i), cost="0.05"))
    assert db_dispatcher.idle(10)
    body = orjson.loads(state.received[0].body)
    assert body["data"]["key_suspended"] is False
    assert "ledger unavailable" in body["data"]["suspend_error"]


def _balance(credit: str, *, grants=(), payment_method=False) -> Balance:
    amount = Decimal(credit)
    return Balance(
        "org_1", amount, Decimal(0), amount, Decimal(0), Decimal(0), Decimal(0), payment_method, grants, JUNE
    )


def _grant(grant_id: str, remaining: str, expires_at: datetime | None) -> Grant:
    return Grant(
        grant_id, "org_1", "free_trial", "free", 0, Decimal(5), Decimal(remaining), Decimal(0), JUNE, expires_at,
        None, "trial", JUNE,
    )  # fmt: skip


def test_credit_low_by_floor_fires_once_a_day(store, db_dispatcher):
    store.add_rule("org_1", "credit_low", scope="org", params={"min_usd": "5", "min_days": None})
    engine = AlertEngine(store, db_dispatcher, balance=lambda org: _balance("2.40"))
    first = engine.check_credit("org_1", JUNE)
    assert [a.kind for a in first] == ["credit_low"]
    assert "has $2.40 of credit left: below the $5.00 floor" in first[0].message
    assert "requests will be refused (no payment method)" in first[0].message
    assert engine.check_credit("org_1", JUNE + timedelta(hours=3)) == []
    assert len(engine.check_credit("org_1", JUNE + timedelta(days=1))) == 1


def test_credit_low_by_days_of_burn(store, db_dispatcher):
    engine = AlertEngine(store, db_dispatcher, balance=lambda org: _balance("20", payment_method=True))
    for hour in range(24):  # $12 a day
        engine.on_settle(settle(JUNE + timedelta(hours=hour), cost="0.5", key=f"key_{hour}"))
    assert db_dispatcher.idle(10)  # the first settle queued a background check: 40 days left then
    alerts = engine.check_credit("org_1", JUNE + timedelta(hours=23, minutes=30))
    assert len(alerts) == 1
    assert "about 1.7 days at the last 24 hours' rate of $12.00/day" in alerts[0].message
    assert "billing continues postpaid" in alerts[0].message


def test_expiring_credit_is_reported_once_per_grant(store, db_dispatcher):
    grants = (
        _grant("grt_soon", "3.10", JUNE + timedelta(days=5)),
        _grant("grt_later", "5", JUNE + timedelta(days=40)),
        _grant("grt_used", "0", JUNE + timedelta(days=2)),
    )
    engine = AlertEngine(store, db_dispatcher, balance=lambda org: _balance("8.10", grants=grants))
    alerts = engine.sweep(JUNE, {"org_1"})
    assert [a.data["grant_id"] for a in alerts] == ["grt_soon"]
    assert alerts[0].title == "$3.10 of free trial credit expires in 5.0 days"
    assert engine.sweep(JUNE + timedelta(days=1), {"org_1"}) == []


def test_failed_delivery_is_logged_and_resumed_by_a_new_process(store, db_engine):
    dead_port = free_port()
    channel = store.add_channel("org_1", "webhook", "flaky", f"http://127.0.0.1:{dead_port}/hook")
    first = Dispatcher(store, policy=FAST)
    engine = AlertEngine(store, first)
    engine.on_settle(settle(JUNE, thresholds=[crossing(50, JUNE)]))
    assert first.idle(10)
    first.close()
    [delivery] = store.deliveries("org_1")
    assert (delivery.status, delivery.attempts, delivery.last_code) == ("failed", 3, None)
    assert "ConnectError" in delivery.last_error
    assert [a["attempt"] for a in store.attempts(delivery.id)] == [1, 2, 3]

    # a delivery left "retrying" by a stopped process is picked up by the next one
    state, server = start_http_receiver([])
    moved = store.add_channel("org_1", "webhook", "moved", state.url)
    engine2 = AlertEngine(store, Dispatcher(store, policy=FAST))
    alert = store.fired("org_1")[0][1]
    alert_id = store.record_fired(replace(alert, dedupe_key="resumed"))
    [pending_id] = store.create_deliveries(alert_id, [moved])
    assert engine2.resume_deliveries() == 1
    assert engine2.dispatcher.idle(10)
    engine2.close()
    server.shutdown()
    assert [d.status for d in store.deliveries("org_1") if d.id == pending_id] == ["delivered"]
    assert channel.id != moved.id


def test_channels_only_get_the_kinds_they_asked_for(store, db_dispatcher):
    state, server = start_http_receiver([])
    store.add_channel("org_1", "webhook", "runaway-only", state.url, kinds=["runaway"])
    engine = AlertEngine(store, db_dispatcher)
    engine.on_settle(settle(JUNE, thresholds=[crossing(50, JUNE)]))
    assert db_dispatcher.idle(10)
    server.shutdown()
    assert state.received == []


def test_channel_and_rule_input_errors_change_nothing(store):
    with pytest.raises(InvalidInput, match="webhook URL must be http"):
        store.add_channel("org_1", "webhook", "x", "ftp://example")
    with pytest.raises(InvalidInput, match="valid addresses"):
        store.add_channel("org_1", "email", "x", "not-an-address")
    with pytest.raises(InvalidInput, match="unknown alert kind"):
        store.add_channel("org_1", "email", "x", "a@b.test", kinds=["everything"])
    with pytest.raises(InvalidInput, match="password_env must name an environment variable"):
        store.add_channel("org_1", "email", "x", "a@b.test", settings={"password_env": "hunter2!"})
    with pytest.raises(NotFound, match="no organisation 'org_nope'"):
        store.add_channel("org_nope", "email", "x", "a@b.test")
    with pytest.raises(InvalidInput, match="factor must be above 1"):
        store.add_rule("org_1", "runaway", params={"factor": "0.5"})
    with pytest.raises(InvalidInput, match="auto_suspend applies only to runaway rules with scope 'key'"):
        store.add_rule("org_1", "runaway", scope="project", auto_suspend=True)
    assert store.channels("org_1") == [] and store.rules("org_1") == []
    store.add_channel("org_1", "email", "team", "a@b.test")
    with pytest.raises(Conflict, match="already has an alert channel named 'team'"):
        store.add_channel("org_1", "webhook", "team", "http://127.0.0.1:1/")
    assert len(store.channels("org_1")) == 1

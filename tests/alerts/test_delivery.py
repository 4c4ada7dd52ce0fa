"""Deliveries to real receivers on 127.0.0.1: webhook retries with growing, jittered delays
until success; giving up after the last attempt with a record; e-mail through aiosmtpd;
and none of it blocks the caller."""

from __future__ import annotations

import email
import random
import time
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest

from kakin.alerts.channels import Channel
from kakin.alerts.delivery import Dispatcher, MemoryDeliveryLog, RetryPolicy
from kakin.alerts.model import Alert
from kakin.alerts.signing import new_secret, verify

from .servers import free_port, start_http_receiver, start_smtp

ALERT = Alert(
    kind="runaway",
    org_id="org_1",
    scope="key",
    scope_ref="key_1",
    dedupe_key="runaway:key:key_1:2025-06-06",
    title="key key_1 is spending 40x its usual rate",
    message="key key_1 spent $12.50 in the last 15 minutes",
    occurred_at=datetime(2025, 6, 6, 19, 5, tzinfo=UTC),
    severity="critical",
)
FAST = RetryPolicy(max_attempts=4, base_seconds=0.1, max_seconds=1.0)


@pytest.fixture()
def delivery_log():
    return MemoryDeliveryLog()


@pytest.fixture()
def dispatcher(delivery_log):
    d = Dispatcher(delivery_log, policy=FAST, rng=random.Random(5))
    yield d
    d.close()


def test_webhook_fails_twice_then_succeeds_with_backoff(dispatcher, delivery_log):
    receiver, server = start_http_receiver([500, 503, 200])
    secret = new_secret()
    channel = Channel("ch_1", "org_1", "webhook", "ops", receiver.url, secret)
    started = time.monotonic()
    dispatcher.submit("dlv_1", channel, "alr_1", ALERT)
    assert time.monotonic() - started < 0.05  # queued, not sent inline
    assert dispatcher.idle(10)
    server.shutdown()

    attempts = delivery_log.for_delivery("dlv_1")
    assert [(a.attempt, a.status, a.outcome.response_code) for a in attempts] == [
        (1, "retrying", 500),
        (2, "retrying", 503),
        (3, "delivered", 200),
    ]
    assert attempts[0].outcome.error.startswith("HTTP 500")
    assert attempts[0].next_attempt_at is not None and attempts[2].next_attempt_at is None
    gap1 = receiver.received[1].at - receiver.received[0].at
    gap2 = receiver.received[2].at - receiver.received[1].at
    assert 0.05 <= gap1 <= 0.1 + 0.05  # base 0.1 s with equal jitter: 0.05..0.1
    assert 0.1 <= gap2 <= 0.2 + 0.05  # doubled: 0.1..0.2
    for hit, attempt in zip(receiver.received, (1, 2, 3), strict=True):
        assert hit.headers["Kakin-Attempt"] == str(attempt)
        assert hit.headers["Kakin-Delivery"] == "dlv_1"
        verify(secret, hit.headers["Kakin-Signature"], hit.body)
    body = orjson.loads(receiver.received[2].body)
    assert body["id"] == "alr_1" and body["type"] == "alert.runaway" and body["scope_ref"] == "key_1"


def test_gives_up_after_max_attempts_and_records_why(dispatcher, delivery_log):
    channel = Channel(
        "ch_2", "org_1", "webhook", "dead", f"http://127.0.0.1:{free_port()}/gone", new_secret()
    )
    dispatcher.submit("dlv_2", channel, "alr_2", ALERT)
    assert dispatcher.idle(10)
    attempts = delivery_log.for_delivery("dlv_2")
    assert [a.status for a in attempts] == ["retrying", "retrying", "retrying", "failed"]
    assert all(a.outcome.response_code is None and "ConnectError" in a.outcome.error for a in attempts)


def test_one_broken_receiver_does_not_hold_up_another(delivery_log):
    slow_policy = RetryPolicy(max_attempts=3, base_seconds=5, max_seconds=5)
    dispatcher = Dispatcher(delivery_log, policy=slow_policy)
    try:
        receiver, server = start_http_receiver([200])
        dead = Channel("ch_d", "org_1", "webhook", "dead", f"http://127.0.0.1:{free_port()}/", "s")
        good = Channel("ch_g", "org_1", "webhook", "good", receiver.url, "s")
        dispatcher.submit("dlv_d", dead, "alr_3", ALERT)
        dispatcher.submit("dlv_g", good, "alr_3", ALERT)
        deadline = time.monotonic() + 5
        while not delivery_log.for_delivery("dlv_g") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert delivery_log.for_delivery("dlv_g")[0].status == "delivered"
        assert delivery_log.for_delivery("dlv_d")[0].status == "retrying"
        server.shutdown()
    finally:
        dispatcher.close()


def test_email_is_received_by_a_real_smtp_server(dispatcher, delivery_log):
    inbox, controller = start_smtp()
    try:
        channel = Channel(
            "ch_m",
            "org_1",
            "email",
            "on-call",
            "ops@example.test, cto@example.test",
            settings={"host": "127.0.0.1", "port": controller.port, "sender": "alerts@kakin.test"},
        )
        dispatcher.submit("dlv_m", channel, "alr_4", ALERT)
        assert dispatcher.idle(10)
    finally:
        controller.stop()
    assert [a.status for a in delivery_log.for_delivery("dlv_m")] == ["delivered"]
    mail_from, rcpt, content = inbox.messages[0]
    assert mail_from == "alerts@kakin.test"
    assert rcpt == ["ops@example.test", "cto@example.test"]
    message = email.message_from_bytes(content)
    assert message["Subject"] == "[kakin] key key_1 is spending 40x its usual rate"
    assert "key key_1 spent $12.50 in the last 15 minutes" in message.get_payload()


def test_smtp_server_down_is_retried_then_recorded(dispatcher, delivery_log):
    channel = Channel("ch_x", "org_1", "email", "x", "ops@example.test", settings={"port": free_port()})
    dispatcher.submit("dlv_x", channel, "alr_5", ALERT)
    assert dispatcher.idle(10)
    attempts = delivery_log.for_delivery("dlv_x")
    assert len(attempts) == FAST.max_attempts and attempts[-1].status == "failed"
    assert "ConnectionRefusedError" in attempts[-1].outcome.error


def test_backoff_grows_and_is_capped():
    policy = RetryPolicy(max_attempts=10, base_seconds=2, max_seconds=60)
    rng = random.Random(1)
    for attempt, full in [(1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (9, 60)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert max(delays) - min(delays) > full / 4  # jitter really spreads them


def test_a_long_alert_title_is_the_subject_on_its_first_line(dispatcher, delivery_log):
    title = "org org_01a244f4de80bde5772b243dae credit is running low ($0.50 left)"
    inbox, controller = start_smtp()
    try:
        channel = Channel(
            "ch_m", "org_1", "email", "on-call", "ops@example.test", settings={"port": controller.port}
        )
        dispatcher.submit("dlv_s", channel, "alr_5", replace(ALERT, title=title))
        assert dispatcher.idle(10)
    finally:
        controller.stop()
    content = inbox.messages[0][2]
    assert f"Subject: [kakin] {title}\r\n".encode() in content  # not "Subject:\r\n [kakin] …"
    assert email.message_from_bytes(content)["Subject"] == f"[kakin] {title}"

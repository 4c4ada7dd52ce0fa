"""Alerts: budget, token and per-model thresholds, credit running low or expiring, and
runaway spend — evaluated on every settle in memory, delivered in the background to signed
webhooks and e-mail with retries and a delivery log.

Wiring (the gateway does this once)::

    store = AlertStore(engine)                       # the ledger's SQLAlchemy engine
    alerts = AlertEngine(store, Dispatcher(store), suspend=ledger.suspend_key, balance=ledger.balance)
    alerts.warm_up(); alerts.resume_deliveries()
    ...
    alerts.on_settle(SettleEvent.from_settlement(scope, settlement, usage, now, key_label=key.prefix))

See docs/alerts.md for the detectors, their parameters, and how to verify a webhook.
"""

from __future__ import annotations

from kakin.alerts.channels import Channel, EmailSender, Outcome, WebhookSender
from kakin.alerts.credit import CreditLowParams, ExpiringParams, credit_low_alert, expiring_alerts
from kakin.alerts.delivery import AttemptRecord, Dispatcher, MemoryDeliveryLog, RetryPolicy
from kakin.alerts.engine import AlertEngine, KeySuspender, SettleEvent
from kakin.alerts.model import ALERT_KINDS, Alert
from kakin.alerts.runaway import RunawayDetector, RunawayFinding, RunawayParams
from kakin.alerts.signing import HEADER as SIGNATURE_HEADER
from kakin.alerts.signing import SignatureInvalid, new_secret, sign, verify
from kakin.alerts.store import AlertStore, DeliveryView, Rule
from kakin.alerts.thresholds import threshold_alerts

__all__ = [
    "ALERT_KINDS",
    "SIGNATURE_HEADER",
    "Alert",
    "AlertEngine",
    "AlertStore",
    "AttemptRecord",
    "Channel",
    "CreditLowParams",
    "DeliveryView",
    "Dispatcher",
    "EmailSender",
    "ExpiringParams",
    "KeySuspender",
    "MemoryDeliveryLog",
    "Outcome",
    "RetryPolicy",
    "Rule",
    "RunawayDetector",
    "RunawayFinding",
    "RunawayParams",
    "SettleEvent",
    "SignatureInvalid",
    "WebhookSender",
    "credit_low_alert",
    "expiring_alerts",
    "new_secret",
    "sign",
    "threshold_alerts",
    "verify",
]
